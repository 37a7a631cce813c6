//! The Outreach agent: drafts, sends under the accounts' limits, reads replies, follows up.
//!
//! - [`agent`]: the facade ([`OutreachAgent`]): the `outreach` subscription's handler, `tick`
//!   (the work that is due) and `check_replies` (the inboxes).
//! - [`draft`]: the template variant per lead and the text, by the LLM or the templates.
//! - [`sequence`]: what a lead's sequence asks for next, from its folded stream (pure).
//! - [`replies`]: a reply's analysis (LLM, rules as fallback) and the command recording it.
//! - [`send`]: the at-most-once send path (slot on the account stream, provider call with an
//!   idempotency key, record on the lead; reconciliation after a crash).
//! - [`inbox`]: replies and accepted invitations polled from each account's provider and
//!   recorded on their leads (the backstop of webhooks).
//! - [`handover`]: one mail to the team per qualified lead, then `human_notified`.

pub mod agent;
pub mod draft;
pub mod handover;
pub mod inbox;
pub mod replies;
pub mod send;
pub mod sequence;

pub use agent::{
    OUTREACH_SUBSCRIPTION, OutreachAgent, OutreachError, OutreachSettings, OutreachTick,
};
pub use draft::{MessageGenerationMode, WrittenMessage, choose_variant};
pub use handover::{HandOver, HandOverConfig, HandOverHandler, HandOverResult};
pub use inbox::{Inbox, InboxPass};
pub use replies::AnalysedReply;
pub use send::{Bound, SendError, SendRequest, SendResult, Sender, SendingAccount};
pub use sequence::{SequencePolicy, Step};
