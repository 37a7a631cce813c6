//! What a run did, computed from the event log alone (never from in-memory counters): a run
//! resumed after a crash, or one read back later from the database, gives the same summary.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use salesdept_events::domain::account::{AccountEvent, SendAction};
use salesdept_events::domain::lead::{LeadEvent, MessageKind, SendOutcome};
use salesdept_events::domain::search::SearchEvent;
use salesdept_events::domain::{Classification, DomainEvent, Intent};
use salesdept_events::store::{EventCursor, EventOrder, EventQuery};
use salesdept_events::{RecordedEvent, Store, StoreError};
use serde::Serialize;
use uuid::Uuid;

/// Every event of the log, in global order (a committed-now query, not a feed).
pub async fn read_log(store: &Store) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut events = Vec::new();
    let mut after = EventCursor::Start;
    loop {
        let page = store
            .query_events(&EventQuery {
                order: EventOrder::Global,
                after: after.clone(),
                limit: 5000,
                ..EventQuery::default()
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = EventCursor::after(last, EventOrder::Global);
        events.extend(page);
    }
    Ok(events)
}

/// One send that reached the provider, as the log records it.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedSend {
    pub lead_id: Uuid,
    pub account_id: String,
    pub action: SendAction,
    /// Initial / follow-up for messages.
    pub kind: Option<MessageKind>,
    pub follow_up_number: Option<u32>,
    pub draft_id: Option<Uuid>,
    pub slot_id: Uuid,
    /// When the account's slot was taken: the time the provider was called.
    pub at: DateTime<Utc>,
    pub global_position: i64,
}

/// One reserved slot of an account.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedSlot {
    pub account_id: String,
    pub slot_id: Uuid,
    pub lead_id: Uuid,
    pub action: SendAction,
    pub at: DateTime<Utc>,
    pub released: bool,
}

/// The log, decoded into what the summary and the checks look at.
#[derive(Clone, Debug, Default)]
pub struct LogView {
    pub events: usize,
    pub slots: Vec<RecordedSlot>,
    pub sends: Vec<RecordedSend>,
    /// Per lead: its events in stream order.
    pub leads: BTreeMap<Uuid, Vec<(RecordedEvent, LeadEvent)>>,
    pub searches_completed: Vec<salesdept_events::domain::search::SearchCompleted>,
    pub department_events: BTreeMap<String, u64>,
    /// LLM calls (answers not from the cache or the rules) and tokens, from event metadata.
    pub llm_calls: u64,
    pub llm_prompt_tokens: u64,
    pub llm_completion_tokens: u64,
}

impl LogView {
    pub fn new(events: &[RecordedEvent]) -> Result<Self, StoreError> {
        let mut view = LogView {
            events: events.len(),
            ..LogView::default()
        };
        let mut slot_index: HashMap<Uuid, usize> = HashMap::new();
        // One LLM answer is often carried by two events (a classification and its score): count
        // it once per (stream, cause, usage).
        let mut usages_seen = std::collections::HashSet::new();
        for event in events {
            if let Some(usage) = &event.metadata.llm
                && !usage.cached
                && usage.model != "rules"
                && usages_seen.insert((
                    event.stream_id.clone(),
                    event.metadata.causation_id,
                    usage.model.clone(),
                    usage.prompt_tokens,
                    usage.completion_tokens,
                ))
            {
                view.llm_calls += 1;
                view.llm_prompt_tokens += u64::from(usage.prompt_tokens);
                view.llm_completion_tokens += u64::from(usage.completion_tokens);
            }
            if let Some(account) = event.stream_id.strip_prefix("account-") {
                match AccountEvent::from_recorded(event)? {
                    AccountEvent::SendSlotReserved(slot) => {
                        slot_index.insert(slot.slot_id, view.slots.len());
                        view.slots.push(RecordedSlot {
                            account_id: account.to_owned(),
                            slot_id: slot.slot_id,
                            lead_id: slot.lead_id,
                            action: slot.action,
                            at: slot.at,
                            released: false,
                        });
                    }
                    AccountEvent::SendSlotReleased(released) => {
                        if let Some(&index) = slot_index.get(&released.slot_id) {
                            view.slots[index].released = true;
                        }
                    }
                }
            } else if event.stream_id.starts_with("search-") {
                if let SearchEvent::SearchCompleted(completed) = SearchEvent::from_recorded(event)?
                {
                    view.searches_completed.push(completed);
                }
            } else if let Some(lead) = event.stream_id.strip_prefix("lead-") {
                let Ok(lead_id) = Uuid::parse_str(lead) else {
                    continue;
                };
                let typed = LeadEvent::from_recorded(event)?;
                view.leads
                    .entry(lead_id)
                    .or_default()
                    .push((event.clone(), typed));
            } else if event.stream_id == salesdept_events::domain::DEPARTMENT_STREAM {
                *view
                    .department_events
                    .entry(event.event_type.clone())
                    .or_default() += 1;
            }
        }
        // Sends, timed by their slots (the record of a send reconciled after a crash comes
        // later than the send itself; the slot says when the provider was called).
        let slot_time = |slot_id: Uuid, fallback: DateTime<Utc>| {
            slot_index
                .get(&slot_id)
                .map_or(fallback, |&index| view.slots[index].at)
        };
        let mut sends = Vec::new();
        for (lead_id, events) in &view.leads {
            for (recorded, event) in events {
                match event {
                    LeadEvent::MessageSent(sent) => sends.push(RecordedSend {
                        lead_id: *lead_id,
                        account_id: sent.account_id.to_string(),
                        action: SendAction::Message,
                        kind: Some(sent.kind),
                        follow_up_number: sent.follow_up_number,
                        draft_id: Some(sent.draft_id),
                        slot_id: sent.slot_id,
                        at: slot_time(sent.slot_id, sent.sent_at),
                        global_position: recorded.global_position,
                    }),
                    LeadEvent::InvitationSent(sent) => sends.push(RecordedSend {
                        lead_id: *lead_id,
                        account_id: sent.account_id.to_string(),
                        action: SendAction::Invitation,
                        kind: None,
                        follow_up_number: None,
                        draft_id: None,
                        slot_id: sent.slot_id,
                        at: slot_time(sent.slot_id, sent.sent_at),
                        global_position: recorded.global_position,
                    }),
                    _ => {}
                }
            }
        }
        sends.sort_by_key(|send| (send.at, send.global_position));
        view.sends = sends;
        Ok(view)
    }
}

/// The final summary of a simulated run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SimulationSummary {
    pub events: u64,
    pub searches: u64,
    pub profiles_found: u64,
    pub leads_discovered: u64,
    pub duplicates_skipped: u64,
    /// Leads by their latest classification (Speaker, Sponsor, Other).
    pub classified: BTreeMap<String, u64>,
    pub allocated: u64,
    pub invitations_sent: u64,
    pub invitations_accepted: u64,
    pub invitations_withdrawn: u64,
    /// Messages sent: first messages and follow-ups.
    pub messages_sent: u64,
    pub first_messages_sent: u64,
    pub follow_ups_sent: u64,
    pub follow_ups_scheduled: u64,
    pub send_failures: u64,
    pub send_outcomes_unknown: u64,
    /// The most messages one account sent on one (UTC) day.
    pub max_messages_per_account_day: u64,
    /// The most invitations one account sent on one (UTC) day.
    pub max_invitations_per_account_day: u64,
    /// Per account, its busiest day's messages and invitations.
    pub sends_per_account: BTreeMap<String, AccountSends>,
    /// The shortest time between two sends of one account, in seconds (None with < 2 sends).
    pub min_gap_seconds: Option<i64>,
    pub replies: u64,
    /// Replies by their (latest) analysed intent.
    pub replies_per_intent: BTreeMap<String, u64>,
    pub qualified: u64,
    /// `human_notified`: one hand-over mail each.
    pub human_emails: u64,
    pub do_not_contact: u64,
    pub daily_reports: u64,
    pub strategy_updates: u64,
    pub performance_alerts: u64,
    pub agent_errors: u64,
    pub llm_calls: u64,
    pub llm_tokens: u64,
    pub llm_prompt_tokens: u64,
    pub llm_completion_tokens: u64,
}

/// One account's totals and busiest day.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AccountSends {
    pub messages: u64,
    pub invitations: u64,
    pub max_messages_per_day: u64,
    pub max_invitations_per_day: u64,
}

impl SimulationSummary {
    /// Reads the whole log and summarises it.
    pub async fn from_store(store: &Store) -> Result<Self, StoreError> {
        let events = read_log(store).await?;
        Ok(Self::from_view(&LogView::new(&events)?))
    }

    pub fn from_view(view: &LogView) -> Self {
        let mut summary = SimulationSummary {
            events: view.events as u64,
            searches: view.searches_completed.len() as u64,
            profiles_found: view
                .searches_completed
                .iter()
                .map(|search| u64::from(search.profiles_found))
                .sum(),
            duplicates_skipped: view
                .searches_completed
                .iter()
                .map(|search| u64::from(search.duplicates))
                .sum(),
            llm_calls: view.llm_calls,
            llm_prompt_tokens: view.llm_prompt_tokens,
            llm_completion_tokens: view.llm_completion_tokens,
            llm_tokens: view.llm_prompt_tokens + view.llm_completion_tokens,
            ..SimulationSummary::default()
        };
        let department = |name: &str| view.department_events.get(name).copied().unwrap_or(0);
        summary.daily_reports = department("daily_report_generated");
        summary.strategy_updates = department("strategy_update");
        summary.performance_alerts = department("performance_alert");
        summary.agent_errors = department("agent_error");

        for events in view.leads.values() {
            let mut classification: Option<Classification> = None;
            let mut intents: BTreeMap<u32, Intent> = BTreeMap::new();
            let mut allocated = false;
            for (_, event) in events {
                match event {
                    LeadEvent::LeadDiscovered(_) => summary.leads_discovered += 1,
                    LeadEvent::LeadClassified(classified) => {
                        classification = Some(classified.classification);
                    }
                    LeadEvent::LeadAllocation(_) => allocated = true,
                    LeadEvent::InvitationAccepted(_) => summary.invitations_accepted += 1,
                    LeadEvent::InvitationWithdrawn(_) => summary.invitations_withdrawn += 1,
                    LeadEvent::FollowUpScheduled(_) => summary.follow_ups_scheduled += 1,
                    LeadEvent::MessageSendFailed(failed) => match failed.outcome {
                        SendOutcome::Failed => summary.send_failures += 1,
                        SendOutcome::Unknown => summary.send_outcomes_unknown += 1,
                    },
                    LeadEvent::ResponseReceived(_) => summary.replies += 1,
                    LeadEvent::ResponseAnalysed(analysed) => {
                        intents.insert(analysed.response_number, analysed.intent);
                    }
                    LeadEvent::LeadQualified(_) => summary.qualified += 1,
                    LeadEvent::HumanNotified(_) => summary.human_emails += 1,
                    LeadEvent::DoNotContact(_) => summary.do_not_contact += 1,
                    _ => {}
                }
            }
            if let Some(classification) = classification {
                *summary
                    .classified
                    .entry(classification.to_string())
                    .or_default() += 1;
            }
            if allocated {
                summary.allocated += 1;
            }
            for intent in intents.values() {
                *summary
                    .replies_per_intent
                    .entry(intent.to_string())
                    .or_default() += 1;
            }
        }

        let mut per_day: HashMap<(String, NaiveDate, SendAction), u64> = HashMap::new();
        let mut last_send: HashMap<String, DateTime<Utc>> = HashMap::new();
        for send in &view.sends {
            let account = summary
                .sends_per_account
                .entry(send.account_id.clone())
                .or_default();
            match send.action {
                SendAction::Message => {
                    summary.messages_sent += 1;
                    account.messages += 1;
                    match send.kind {
                        Some(MessageKind::FollowUp) => summary.follow_ups_sent += 1,
                        _ => summary.first_messages_sent += 1,
                    }
                }
                SendAction::Invitation => {
                    summary.invitations_sent += 1;
                    account.invitations += 1;
                }
            }
            let count = per_day
                .entry((send.account_id.clone(), send.at.date_naive(), send.action))
                .or_default();
            *count += 1;
            match send.action {
                SendAction::Message => {
                    account.max_messages_per_day = account.max_messages_per_day.max(*count);
                }
                SendAction::Invitation => {
                    account.max_invitations_per_day = account.max_invitations_per_day.max(*count);
                }
            }
            if let Some(previous) = last_send.insert(send.account_id.clone(), send.at) {
                let gap = (send.at - previous).num_seconds();
                summary.min_gap_seconds =
                    Some(summary.min_gap_seconds.map_or(gap, |known| known.min(gap)));
            }
        }
        summary.max_messages_per_account_day = summary
            .sends_per_account
            .values()
            .map(|account| account.max_messages_per_day)
            .max()
            .unwrap_or(0);
        summary.max_invitations_per_account_day = summary
            .sends_per_account
            .values()
            .map(|account| account.max_invitations_per_day)
            .max()
            .unwrap_or(0);
        summary
    }

    /// The summary as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}
