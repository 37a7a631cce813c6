//! The event log of salesdept: the envelope every fact is stored in, the [`EventStore`] trait
//! with its PostgreSQL and SQLite implementations, durable subscriptions, and the sales
//! domain's events and rules.
//!
//! This crate knows nothing of HTTP, of configuration files or of any agent.

pub mod domain;
pub mod envelope;
pub mod error;
pub mod lease;
pub mod pii_vault;
pub mod store;
pub mod subscription;
pub mod trace;

pub use subscription::{
    Handler, HandlerContext, HandlerError, Subscription, SubscriptionError, SubscriptionOptions,
    subscription_lags,
};
pub mod upcast;

pub use envelope::{
    Actor, AppendResult, Checkpoint, ExpectedVersion, LlmUsage, Metadata, NewEvent, RecordedEvent,
    step_event_id,
};
pub use error::{StoreError, is_transient_error};
pub use lease::Lease;
pub use store::{EventStore, Store, StoreTx};
pub use upcast::Upcasters;
