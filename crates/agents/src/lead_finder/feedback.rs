//! Where the Lead Finder learns from the team: the latest `classification_feedback` events (a
//! human's override of a classification or a score), reduced to [`Correction`]s — position,
//! industry, company size and what was changed, nothing personal. The LLM gets them as
//! few-shot examples; the rules apply them to similar profiles.

use std::sync::Arc;

use async_trait::async_trait;
use salesdept_events::domain::lead::{LeadEvent, LeadState};
use salesdept_events::domain::{CommandHandler, DomainEvent};
use salesdept_events::store::{EventCursor, EventOrder, EventQuery};
use salesdept_events::{Store, StoreError};

use crate::rules::Correction;

/// The event type of a human's correction.
pub const CLASSIFICATION_FEEDBACK: &str = "classification_feedback";

/// Hands the Lead Finder the team's latest corrections, oldest first.
#[async_trait]
pub trait CorrectionSource: Send + Sync {
    async fn latest_corrections(&self, limit: usize) -> Result<Vec<Correction>, StoreError>;
}

/// The corrections read from the event log: every `classification_feedback` of a lead stream,
/// the last `limit` of them, each with the corrected lead's non-personal profile facts.
#[async_trait]
impl CorrectionSource for Store {
    async fn latest_corrections(&self, limit: usize) -> Result<Vec<Correction>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Feedback is rare (a human's override), so a scan of its own type is short.
        let mut latest = std::collections::VecDeque::with_capacity(limit);
        let mut query = EventQuery {
            event_type: Some(CLASSIFICATION_FEEDBACK.into()),
            stream_prefix: Some("lead-".into()),
            order: EventOrder::Global,
            limit: 500,
            ..EventQuery::default()
        };
        loop {
            let page = self.query_events(&query).await?;
            let Some(last) = page.last() else { break };
            query.after = EventCursor::after(last, EventOrder::Global);
            let full = page.len() as i64 == query.limit;
            for event in page {
                if latest.len() == limit {
                    latest.pop_front();
                }
                latest.push_back(event);
            }
            if !full {
                break;
            }
        }
        let handler = CommandHandler::new(Arc::new(self.clone()));
        let mut corrections = Vec::with_capacity(latest.len());
        for event in latest {
            let LeadEvent::ClassificationFeedback(feedback) = LeadEvent::from_recorded(&event)?
            else {
                continue;
            };
            let lead = handler.load::<LeadState>(&event.stream_id).await?.state;
            if lead.forgotten {
                continue;
            }
            let correction = Correction {
                position: lead.position.clone(),
                industry: lead.industry.clone().unwrap_or_default(),
                company_size: lead.company_size.clone().unwrap_or_default(),
                previous_classification: feedback.previous_classification,
                corrected_classification: feedback.corrected_classification,
                previous_score: feedback.previous_score,
                corrected_score: feedback.corrected_score,
            };
            if correction.is_informative() {
                corrections.push(correction);
            }
        }
        Ok(corrections)
    }
}
