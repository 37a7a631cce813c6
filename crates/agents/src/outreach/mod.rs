//! The Outreach agent: drafts, sends under the accounts' limits, reads replies, follows up.
//!
//! - [`send`]: the at-most-once send path (slot on the account stream, provider call with an
//!   idempotency key, record on the lead; reconciliation after a crash).
//! - [`inbox`]: replies and accepted invitations polled from each account's provider and
//!   recorded on their leads (the backstop of webhooks).
//! - [`handover`]: one mail to the team per qualified lead, then `human_notified`.

pub mod handover;
pub mod inbox;
pub mod send;

pub use handover::{HandOver, HandOverConfig, HandOverHandler, HandOverResult};
pub use inbox::{Inbox, InboxPass};
pub use send::{Bound, SendError, SendRequest, SendResult, Sender, SendingAccount};
