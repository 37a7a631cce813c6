//! The sales domain: typed events per stream kind, aggregates as pure `decide`/`evolve`
//! functions, and the generic command handler that runs them against the store.
//!
//! | stream | aggregate | events |
//! |---|---|---|
//! | `lead-<uuid>` ([`lead_stream`]) | [`lead::LeadState`] | [`lead::LeadEvent`] |
//! | `linkedin-url-<hash>` ([`url_stream`]) | [`url::UrlReservation`] | [`url::UrlReservationEvent`] |
//! | `account-<id>` ([`account_stream`]) | [`account::AccountState`] | [`account::AccountEvent`] |
//! | `search-<uuid>` ([`search_stream`]) | [`search::SearchState`] | [`search::SearchEvent`] |
//! | `department` ([`DEPARTMENT_STREAM`]) | [`department::DepartmentState`] | [`department::DepartmentEvent`] |
//!
//! Personal data sits only in the `pii` object of event bodies ([`Pii`]). Stores must be
//! opened with [`upcasters()`] so older event shapes read as the current ones.

pub mod account;
pub mod department;
pub mod error;
pub mod event;
pub mod handler;
pub mod lead;
pub mod pii;
pub mod search;
pub mod status;
pub mod streams;
pub mod testing;
pub mod upcasters;
pub mod url;
pub mod values;

pub use account::{AccountEvent, AccountLimits, AccountState, RateLimit, SendAction, WorkingHours};
pub use department::{DepartmentEvent, DepartmentState};
pub use error::DomainError;
pub use event::{Aggregate, CommandMetadata, DecisionContext, DomainEvent};
pub use handler::{CommandError, CommandHandler, Executed, Loaded};
pub use lead::{FollowUpPolicy, InvitationPolicy, LeadCommand, LeadEvent, LeadState};
pub use pii::Pii;
pub use search::{SearchEvent, SearchState};
pub use status::{LeadStatus, LeadTransition, PipelineStage};
pub use streams::{
    DEPARTMENT_STREAM, StreamKind, account_stream, lead_stream, search_stream, url_stream,
};
pub use upcasters::upcasters;
pub use url::{UrlReservation, UrlReservationEvent};
pub use values::{
    AccountId, Classification, Confidence, Intent, InvalidValue, LinkedInUrl, QualityScore,
    Sentiment,
};
