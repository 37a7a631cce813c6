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
pub use handler::{CacheFilter, CommandError, CommandHandler, Executed, Loaded};
pub use lead::{FollowUpPolicy, InvitationPolicy, LeadCommand, LeadEvent, LeadState};
pub use pii::Pii;
pub use search::{SearchEvent, SearchState};
pub use status::{LeadStatus, LeadTransition, PipelineStage};
pub use streams::{
    DEPARTMENT_STREAM, StreamKind, account_stream, is_account_stream, lead_stream, search_stream,
    url_stream,
};
pub use upcasters::upcasters;
pub use url::{UrlReservation, UrlReservationEvent};
pub use values::{
    AccountId, Classification, Confidence, Intent, InvalidValue, LinkedInUrl, QualityScore,
    Sentiment,
};

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every event the seed and DESIGN.md name, each in exactly one stream kind's enum.
    #[test]
    fn every_named_event_exists_once() {
        let named = [
            "lead_discovered",
            "lead_profile_updated",
            "lead_classified",
            "quality_score_calculated",
            "lead_allocation",
            "strategy_update",
            "performance_alert",
            "message_sent",
            "response_received",
            "lead_qualified",
            "agent_error",
            "search_request",
            "search_completed",
            "classification_feedback",
            "invitation_sent",
            "invitation_accepted",
            "invitation_withdrawn",
            "message_drafted",
            "review_requested",
            "message_approved",
            "message_rejected",
            "message_send_failed",
            "response_analysed",
            "human_notified",
            "follow_up_scheduled",
            "pipeline_stage_changed",
            "lead_closed",
            "do_not_contact",
            "note_added",
            "lead_forgotten",
            "daily_report_generated",
            "url_reserved",
            "send_slot_reserved",
            "send_slot_released",
        ];
        let all: Vec<&str> = [
            LeadEvent::EVENT_TYPES,
            UrlReservationEvent::EVENT_TYPES,
            AccountEvent::EVENT_TYPES,
            SearchEvent::EVENT_TYPES,
            DepartmentEvent::EVENT_TYPES,
        ]
        .concat();
        let unique: BTreeSet<&str> = all.iter().copied().collect();
        assert_eq!(
            unique.len(),
            all.len(),
            "an event type is in two stream kinds"
        );
        for name in named {
            assert!(unique.contains(name), "{name} is missing");
        }
        for name in &unique {
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name} is not snake_case"
            );
        }
    }
}
