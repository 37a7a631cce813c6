//! The deterministic rules engine: the embedded default of every LLM task and the last step of
//! every fallback chain. Pure functions, no I/O, no clock, no randomness: the same input gives
//! the same answer on every machine.
//!
//! - [`profile`]: reading a profile (seniority, function, company size, industry fit,
//!   speaking and sponsoring signals, activity), Speaker / Sponsor / Other with a confidence,
//!   and the quality score with its named factors ([`assess_profile`]).
//! - [`reply`]: intent, sentiment, return date and referred person of a reply
//!   ([`analyse_reply`]); biased toward DoNotContact.
//! - [`templates`]: the outreach messages in named variants, personalised only with checked
//!   facts from the profile ([`draft_message`]).
//! - [`feedback`]: the team's classification corrections applied to similar profiles.
//! - [`evaluation`]: accuracy and confusion matrices against labelled examples.
//! - [`text`]: token and phrase matching with clause-aware negation.
//!
//! Their answers have the types the LLM is asked for ([`crate::llm::answers`]), so an agent
//! passes them as the fallback of `LlmPort::complete`.

pub mod evaluation;
pub mod feedback;
pub mod profile;
pub mod reply;
pub mod templates;
pub mod text;

pub use feedback::{Correction, apply_corrections};
pub use profile::{Profile, assess_profile};
pub use reply::{ReturnDate, analyse_reply};
pub use templates::{MessageContext, MessageKind, TemplateVariant, draft_message};
