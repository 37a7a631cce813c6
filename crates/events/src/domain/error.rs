//! Why a command was refused.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use super::account::RateLimit;
use super::status::{LeadStatus, LeadTransition};

/// A command `decide` refused: the rule it broke, with what the caller needs to react (when to
/// try again, which lead already holds a URL…). Refusals are answers, not failures: nothing was
/// appended.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DomainError {
    // --- any stream ---
    #[error("invalid command: {0}")]
    InvalidCommand(String),
    #[error("{action} needs a human actor")]
    HumanRequired { action: &'static str },

    // --- lead ---
    #[error("lead {lead_id} is already discovered")]
    LeadAlreadyDiscovered { lead_id: Uuid },
    #[error("the lead has not been discovered")]
    LeadNotDiscovered,
    #[error("{transition} is not allowed for a lead in status {status}")]
    TransitionNotAllowed {
        status: LeadStatus,
        transition: LeadTransition,
    },
    #[error("the lead is marked do-not-contact")]
    LeadIsDoNotContact,
    #[error("the lead is closed")]
    LeadIsClosed,
    #[error("the lead's personal data was forgotten")]
    LeadForgotten,
    #[error("a human set this; automatic results no longer replace it")]
    OverriddenByHuman,
    #[error("the lead has no classification yet")]
    NotClassified,
    #[error("the lead has no quality score yet")]
    NotScored,
    #[error("the first message was already sent")]
    FirstMessageAlreadySent,
    #[error("the person is not a connection: send an invitation first")]
    NotConnected,
    #[error("the person is already a connection")]
    AlreadyConnected,
    #[error("the invitation note has {chars} characters, at most {max} are allowed")]
    InvitationNoteTooLong { chars: usize, max: usize },
    #[error("there is no pending invitation")]
    NoPendingInvitation,
    #[error("the person's invitation was withdrawn: no new invitation before {not_before}")]
    ReinviteTooSoon { not_before: DateTime<Utc> },
    #[error("the invitation is pending until {expires_at}")]
    InvitationNotExpired { expires_at: DateTime<Utc> },
    #[error("there is no draft {draft_id}")]
    UnknownDraft { draft_id: Uuid },
    #[error("draft {draft_id} already exists")]
    DraftAlreadyExists { draft_id: Uuid },
    #[error("draft {draft_id} is not waiting for a decision")]
    DraftNotPending { draft_id: Uuid },
    #[error("draft {draft_id} is not approved (or already sent)")]
    DraftNotApproved { draft_id: Uuid },
    #[error("at most {max} follow-ups per lead")]
    FollowUpLimitReached { max: u32 },
    #[error("no follow-up before {not_before}")]
    FollowUpTooEarly { not_before: DateTime<Utc> },
    #[error("the person replied: no follow-up")]
    ReplyReceived,
    #[error("there is no response number {response_number}")]
    UnknownResponse { response_number: u32 },
    #[error("response number {response_number} is already analysed")]
    ResponseAlreadyAnalysed { response_number: u32 },
    #[error("the lead is not qualified")]
    NotQualified,
    #[error("a human was already notified about this lead")]
    AlreadyNotified,

    // --- LinkedIn URL reservation ---
    #[error("the LinkedIn profile is already lead {lead_id}")]
    UrlAlreadyClaimed { lead_id: Uuid },

    // --- sending account ---
    #[error("outside the account's working hours: next window opens at {next_opening}")]
    OutsideWorkingHours { next_opening: DateTime<Utc> },
    #[error("{limit} reached: try again at {retry_at}")]
    RateLimited {
        limit: RateLimit,
        retry_at: DateTime<Utc>,
    },
    #[error("there is no send slot {slot_id} on this account")]
    UnknownSlot { slot_id: Uuid },

    // --- search ---
    #[error("search {search_id} was already requested")]
    SearchAlreadyRequested { search_id: Uuid },
    #[error("the search was never requested")]
    SearchNotRequested,
    #[error("the search is already completed")]
    SearchAlreadyCompleted,

    // --- department ---
    #[error("the daily report for {date} was already generated")]
    ReportAlreadyGenerated { date: NaiveDate },
    #[error(
        "allocating {daily_allocation} leads a day exceeds what the accounts can send ({capacity})"
    )]
    AllocationExceedsCapacity {
        daily_allocation: u32,
        capacity: u32,
    },
}
