//! The Lead Finder at work: a subscription handler that runs every `search_request` in the log
//! (the Sales Manager's, a human's, or its own), and its own schedule — a search every
//! `interval` (default 24 h) when nobody asked for one within that time.
//!
//! The handler is at-least-once like every subscription: a redelivered request finds its search
//! completed and does nothing ([`LeadFinder::run_search`] is idempotent step by step). A search
//! the provider could not run fails the handler, so the subscription retries it with backoff and
//! parks it as a dead letter in the end, for an operator.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use salesdept_events::domain::search::{SearchCommand, SearchCriteria, SearchState};
use salesdept_events::domain::{
    CommandError, CommandHandler, CommandMetadata, DomainError, search_stream,
};
use salesdept_events::store::EventQuery;
use salesdept_events::{
    Actor, EventStore, Handler, HandlerContext, HandlerError, RecordedEvent, Store, step_event_id,
};
use uuid::Uuid;

use super::{LEAD_FINDER, LeadFinder, SearchOutcome};
use crate::clock::Clock;
use crate::llm::LlmPort;

/// The subscription name the Lead Finder's handler runs under.
pub const LEAD_FINDER_SUBSCRIPTION: &str = "lead_finder";

/// The namespace of the Lead Finder's self-scheduled search ids (one per due time).
const SCHEDULED_SEARCH_NAMESPACE: Uuid = Uuid::from_u128(0x5ea7_c4ed_0000_4000_8000_1ead_f1de_0001);

/// Called with what each search run found.
pub type OutcomeCallback = Box<dyn Fn(&SearchOutcome) + Send + Sync>;

/// Runs every `search_request` it is given.
pub struct LeadFinderHandler<S: EventStore + ?Sized, L: LlmPort> {
    finder: Arc<LeadFinder<S, L>>,
    /// What each completed run found, for the caller's progress (the log holds the facts).
    on_outcome: Option<OutcomeCallback>,
}

impl<S: EventStore + ?Sized, L: LlmPort> LeadFinderHandler<S, L> {
    pub fn new(finder: Arc<LeadFinder<S, L>>) -> Self {
        Self {
            finder,
            on_outcome: None,
        }
    }

    /// Called with the outcome of every search run (not of redelivered, completed ones).
    pub fn on_outcome(mut self, callback: impl Fn(&SearchOutcome) + Send + Sync + 'static) -> Self {
        self.on_outcome = Some(Box::new(callback));
        self
    }
}

#[async_trait]
impl<S: EventStore + ?Sized + 'static, L: LlmPort + 'static> Handler for LeadFinderHandler<S, L> {
    async fn handle(
        &self,
        event: &RecordedEvent,
        _context: &mut HandlerContext,
    ) -> Result<(), HandlerError> {
        if event.event_type != "search_request" {
            return Ok(());
        }
        let outcome = self.finder.run_search(event).await?;
        if !outcome.already_completed
            && let Some(callback) = &self.on_outcome
        {
            callback(&outcome);
        }
        Ok(())
    }
}

/// The Lead Finder's own schedule: requests a search when none was requested within
/// `interval`, so leads keep coming even when the Sales Manager does not ask.
pub struct ScheduledSearch {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    criteria: SearchCriteria,
    interval: TimeDelta,
}

/// What a scheduled run did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScheduledSearchResult {
    /// A search was requested now (the handler runs it).
    Requested { search_id: Uuid },
    /// Someone requested one at `at`, within the interval: nothing to do.
    RecentlyRequested { at: DateTime<Utc> },
}

impl ScheduledSearch {
    pub fn new(
        store: Arc<Store>,
        clock: Arc<dyn Clock>,
        criteria: SearchCriteria,
        interval: TimeDelta,
    ) -> Self {
        Self {
            store,
            clock,
            criteria,
            interval,
        }
    }

    /// Requests a search unless one was requested within the interval. The search id derives
    /// from the due time, so a rerun after a crash requests the same search once.
    #[tracing::instrument(skip_all, err)]
    pub async fn run(&self) -> Result<ScheduledSearchResult, CommandError> {
        let now = self.clock.now();
        // Within the interval, with a minute's slack: a request made at the same time of day
        // yesterday counts as "within 24 h".
        let since = now - self.interval + TimeDelta::minutes(1);
        let recent = self
            .store
            .query_events(&EventQuery {
                occurred_from: Some(since),
                occurred_to: Some(now),
                event_type: Some("search_request".into()),
                stream_prefix: Some("search-".into()),
                limit: 1,
                ..EventQuery::default()
            })
            .await?;
        if let Some(request) = recent.first() {
            return Ok(ScheduledSearchResult::RecentlyRequested {
                at: request.metadata.occurred_at,
            });
        }
        let search_id = step_event_id(SCHEDULED_SEARCH_NAMESPACE, &now.to_rfc3339());
        let command = SearchCommand::Request {
            search_id,
            criteria: self.criteria.clone(),
            reason: format!(
                "the Lead Finder's own schedule: no search requested in the last {} h",
                self.interval.num_hours()
            ),
        };
        let metadata = CommandMetadata::new(Actor::agent(LEAD_FINDER), now)
            .with_step(search_id, "scheduled_search")
            .with_correlation(search_id);
        let handler = CommandHandler::new(Arc::clone(&self.store));
        match handler
            .execute::<SearchState>(&search_stream(search_id), &command, &metadata)
            .await
        {
            Ok(_) | Err(CommandError::Rejected(DomainError::SearchAlreadyRequested { .. })) => {
                Ok(ScheduledSearchResult::Requested { search_id })
            }
            Err(error) => Err(error),
        }
    }
}
