//! Audit queries and time travel over the log: a lead's whole history with a one-line summary
//! per event, events across the log filtered by domain time (`metadata.occurred_at`), actor and
//! type, and a lead's row (or the whole table) as it was at a given time.
//!
//! A forgotten person's personal fields read as `{"forgotten": true}` from the store; the
//! summaries then say "forgotten" where the personal value would be.

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeDelta, Utc};
use salesdept_events::domain::lead::{LeadEvent, MessageKind, SendOutcome};
use salesdept_events::domain::url::UrlReservationEvent;
use salesdept_events::domain::{
    Aggregate, DomainEvent, LeadState, LinkedInUrl, StreamKind, lead_stream, url_stream,
};
use salesdept_events::store::{EventCursor, EventOrder, EventQuery};
use salesdept_events::{Actor, EventStore, RecordedEvent, Store};
use serde_json::Value;
use uuid::Uuid;

use crate::leads::ProjectionError;
use crate::row::LeadRow;

/// Events per page of every audit read: memory stays flat however long the range is.
pub const AUDIT_PAGE: i64 = 1000;

/// One event of an audit, with its human summary.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    pub event: RecordedEvent,
    pub summary: String,
}

impl AuditEntry {
    pub fn new(event: RecordedEvent) -> Self {
        let summary = summary(&event);
        Self { event, summary }
    }

    /// The columns of `log read --json` plus `summary`.
    pub fn to_json_line(&self) -> Value {
        let mut line = self.event.to_json_line();
        line["summary"] = Value::String(self.summary.clone());
        line
    }

    /// `time  type  actor  summary  correlation` for people.
    pub fn text_line(&self) -> String {
        let metadata = &self.event.metadata;
        format!(
            "{}  {:<24}  {:<20}  {}  {}",
            metadata
                .occurred_at
                .to_rfc3339_opts(SecondsFormat::Secs, true),
            self.event.event_type,
            metadata.actor.to_string(),
            self.summary,
            metadata
                .correlation_id
                .map_or_else(|| "-".to_owned(), |id| format!("correlation {id}"))
        )
    }
}

/// Why an audit could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{0}: give a lead id or a LinkedIn profile URL")]
    NotALead(String),
    #[error("no lead has the LinkedIn URL {0}")]
    UnknownUrl(String),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    /// The caller's sink failed (e.g. writing the output).
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl From<salesdept_events::StoreError> for AuditError {
    fn from(error: salesdept_events::StoreError) -> Self {
        Self::Projection(error.into())
    }
}

/// The lead a user named: its id (with or without `lead-`), or the lead that reserved the
/// profile URL, found through the URL's reservation stream (by hash, never by scanning
/// personal data).
pub async fn resolve_lead(store: &Store, text: &str) -> Result<Uuid, AuditError> {
    let text = text.trim();
    if let Ok(id) = Uuid::parse_str(text.strip_prefix("lead-").unwrap_or(text)) {
        return Ok(id);
    }
    let url = LinkedInUrl::parse(text).map_err(|error| AuditError::NotALead(error.to_string()))?;
    let reservation = store.read_stream(&url_stream(&url), 1, Some(1)).await?;
    let Some(first) = reservation.first() else {
        return Err(AuditError::UnknownUrl(url.as_str().to_owned()));
    };
    match UrlReservationEvent::from_recorded(first)? {
        UrlReservationEvent::UrlReserved(reserved) => Ok(reserved.lead_id),
    }
}

/// Every event of the stream `lead-<id>`, in stream order, with summaries.
pub async fn lead_history(store: &Store, lead_id: Uuid) -> Result<Vec<AuditEntry>, AuditError> {
    let stream = lead_stream(lead_id);
    let mut entries = Vec::new();
    let mut from = 1;
    loop {
        let page = store.read_stream(&stream, from, Some(AUDIT_PAGE)).await?;
        let Some(last) = page.last() else { break };
        from = last.stream_version + 1;
        let full = page.len() as i64 == AUDIT_PAGE;
        entries.extend(page.into_iter().map(AuditEntry::new));
        if !full {
            break;
        }
    }
    Ok(entries)
}

/// Which events [`audit_events`] returns. Times bound `metadata.occurred_at`, both inclusive.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuditFilter {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub actor: Option<Actor>,
    pub event_type: Option<String>,
}

/// Calls `each` for every event matching `filter`, in global order, a page at a time.
pub async fn audit_events<E>(
    store: &Store,
    filter: &AuditFilter,
    mut each: impl FnMut(AuditEntry) -> Result<(), E>,
) -> Result<u64, AuditError>
where
    E: Into<AuditError>,
{
    let mut query = EventQuery {
        occurred_from: filter.from,
        occurred_to: filter.to,
        actor: filter.actor.clone(),
        event_type: filter.event_type.clone(),
        stream_prefix: None,
        correlation_id: None,
        order: EventOrder::Global,
        after: EventCursor::Start,
        limit: AUDIT_PAGE,
    };
    let mut count = 0;
    loop {
        let page = store.query_events(&query).await?;
        let Some(last) = page.last() else {
            return Ok(count);
        };
        query.after = EventCursor::after(last, EventOrder::Global);
        let full = page.len() as i64 == AUDIT_PAGE;
        for event in page {
            count += 1;
            each(AuditEntry::new(event)).map_err(Into::into)?;
        }
        if !full {
            return Ok(count);
        }
    }
}

/// The lead's row and domain state folded from its events that occurred at or before `time`;
/// None when the lead did not exist yet.
pub async fn lead_as_of(
    store: &Store,
    lead_id: Uuid,
    time: DateTime<Utc>,
) -> Result<Option<(LeadRow, LeadState)>, AuditError> {
    let stream = lead_stream(lead_id);
    let mut row = LeadRow::new(lead_id);
    let mut state = LeadState::default();
    let mut from = 1;
    loop {
        let page = store.read_stream(&stream, from, Some(AUDIT_PAGE)).await?;
        let Some(last) = page.last() else { break };
        from = last.stream_version + 1;
        let full = page.len() as i64 == AUDIT_PAGE;
        for event in page
            .iter()
            .filter(|event| event.metadata.occurred_at <= time)
        {
            let lead_event = LeadEvent::from_recorded(event)?;
            row.apply_recorded(event)?;
            state = state.evolve(&lead_event);
        }
        if !full {
            break;
        }
    }
    Ok((row.version > 0).then_some((row, state)))
}

/// Calls `each` with every lead's row as it was at `time`, in lead id order (the text order of
/// the stream ids), folding one lead at a time: memory holds one page of events and one row.
pub async fn for_each_lead_as_of<E>(
    store: &Store,
    time: DateTime<Utc>,
    mut each: impl FnMut(LeadRow) -> Result<(), E>,
) -> Result<u64, AuditError>
where
    E: Into<AuditError>,
{
    let mut query = EventQuery {
        occurred_to: Some(time),
        stream_prefix: Some("lead-".to_owned()),
        order: EventOrder::Stream,
        limit: AUDIT_PAGE,
        ..EventQuery::default()
    };
    let mut current: Option<LeadRow> = None;
    let mut count = 0;
    loop {
        let page = store.query_events(&query).await?;
        let Some(last) = page.last() else { break };
        query.after = EventCursor::after(last, EventOrder::Stream);
        let full = page.len() as i64 == AUDIT_PAGE;
        for event in &page {
            let Some(StreamKind::Lead(lead_id)) = StreamKind::parse(&event.stream_id) else {
                continue;
            };
            if current.as_ref().is_some_and(|row| row.lead_id != lead_id)
                && let Some(done) = current.take()
            {
                count += 1;
                each(done).map_err(Into::into)?;
            }
            current
                .get_or_insert_with(|| LeadRow::new(lead_id))
                .apply_recorded(event)?;
        }
        if !full {
            break;
        }
    }
    if let Some(done) = current {
        count += 1;
        each(done).map_err(Into::into)?;
    }
    Ok(count)
}

/// Every lead's row as it was at `time`, in lead id order.
pub async fn table_as_of(store: &Store, time: DateTime<Utc>) -> Result<Vec<LeadRow>, AuditError> {
    let mut rows = Vec::new();
    for_each_lead_as_of(store, time, |row| {
        rows.push(row);
        Ok::<_, AuditError>(())
    })
    .await?;
    Ok(rows)
}

/// Parses an RFC 3339 time or a date. A date means the start of that day (UTC) as a lower
/// bound and its last microsecond as an upper bound, so `--from D --to D` is the whole day.
pub fn parse_time(text: &str, upper_bound: bool) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("{text:?} is neither an RFC 3339 time nor a date (YYYY-MM-DD)"))?;
    let start = date
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    Ok(if upper_bound {
        start + TimeDelta::days(1) - TimeDelta::microseconds(1)
    } else {
        start
    })
}

/// Whether the event's personal data was shredded.
fn is_forgotten(event: &RecordedEvent) -> bool {
    event.data["pii"]["forgotten"] == Value::Bool(true)
}

/// A personal value as the audit shows it: "forgotten" once the person was forgotten.
fn personal(event: &RecordedEvent, value: Option<&str>) -> String {
    if is_forgotten(event) {
        return "forgotten".to_owned();
    }
    value.map_or_else(|| "-".to_owned(), shorten)
}

/// At most 60 characters of a text, on one line.
fn shorten(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= 60 {
        return line;
    }
    let cut: String = line.chars().take(57).collect();
    format!("{cut}...")
}

/// The snake_case name a serialised enum value has.
fn name_of<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(name)) => name.replace('_', " "),
        _ => "?".to_owned(),
    }
}

fn kind_text(kind: MessageKind, follow_up_number: Option<u32>) -> String {
    match kind {
        MessageKind::Initial => "initial".to_owned(),
        MessageKind::FollowUp => format!("follow-up {}", follow_up_number.unwrap_or(1)),
    }
}

/// A one-line human summary of any event; lead events in detail.
pub fn summary(event: &RecordedEvent) -> String {
    match StreamKind::parse(&event.stream_id) {
        Some(StreamKind::Lead(_)) => match LeadEvent::from_recorded(event) {
            Ok(lead_event) => lead_summary(event, &lead_event),
            Err(error) => format!("unreadable {}: {error}", event.event_type),
        },
        Some(StreamKind::UrlReservation(_)) => match UrlReservationEvent::from_recorded(event) {
            Ok(UrlReservationEvent::UrlReserved(reserved)) => format!(
                "LinkedIn URL {} reserved for lead {}",
                personal(
                    event,
                    reserved.pii.linkedin_url.as_ref().map(|u| u.as_str())
                ),
                reserved.lead_id
            ),
            Err(error) => format!("unreadable {}: {error}", event.event_type),
        },
        _ => event.event_type.replace('_', " "),
    }
}

fn lead_summary(event: &RecordedEvent, lead_event: &LeadEvent) -> String {
    match lead_event {
        LeadEvent::LeadDiscovered(discovered) => format!(
            "discovered {}, {} at {} ({})",
            personal(event, discovered.pii.name.as_deref()),
            discovered.position,
            discovered.company,
            name_of(&discovered.source)
        ),
        LeadEvent::LeadProfileUpdated(update) => {
            let mut changes = Vec::new();
            if let Some(position) = &update.position {
                changes.push(format!("position {position}"));
            }
            if let Some(company) = &update.company {
                changes.push(format!("company {company}"));
            }
            if update.pii.name.is_some() || is_forgotten(event) {
                changes.push(format!(
                    "name {}",
                    personal(event, update.pii.name.as_deref())
                ));
            }
            if changes.is_empty() {
                "profile updated".to_owned()
            } else {
                format!("profile updated: {}", changes.join(", "))
            }
        }
        LeadEvent::LeadClassified(classified) => format!(
            "classified {} (confidence {:.2}){}",
            classified.classification.as_str(),
            classified.confidence.value(),
            if classified.manual { ", by hand" } else { "" }
        ),
        LeadEvent::QualityScoreCalculated(scored) => format!(
            "quality score {:.1}{}",
            scored.score.value(),
            if scored.manual { ", by hand" } else { "" }
        ),
        LeadEvent::ClassificationFeedback(feedback) => {
            let mut parts = Vec::new();
            if let Some(corrected) = feedback.corrected_classification {
                parts.push(format!(
                    "classification {} -> {}",
                    feedback
                        .previous_classification
                        .map_or("-", |previous| previous.as_str()),
                    corrected.as_str()
                ));
            }
            if let Some(corrected) = feedback.corrected_score {
                parts.push(format!(
                    "score {} -> {:.1}",
                    feedback.previous_score.map_or_else(
                        || "-".to_owned(),
                        |previous| format!("{:.1}", previous.value())
                    ),
                    corrected.value()
                ));
            }
            format!("classification feedback: {}", parts.join(", "))
        }
        LeadEvent::LeadAllocation(allocation) => format!(
            "allocated to {} ({} priority){}",
            allocation.assigned_to,
            name_of(&allocation.priority),
            if allocation.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", allocation.reason)
            }
        ),
        LeadEvent::LeadReassigned(reassigned) => format!(
            "reassigned from {} to {}",
            reassigned.from.as_deref().unwrap_or("-"),
            reassigned.to
        ),
        LeadEvent::InvitationSent(sent) => format!("invitation sent via {}", sent.account_id),
        LeadEvent::InvitationAccepted(accepted) => {
            format!("invitation accepted ({})", accepted.account_id)
        }
        LeadEvent::InvitationWithdrawn(withdrawn) => format!(
            "invitation withdrawn via {} ({})",
            withdrawn.account_id,
            name_of(&withdrawn.reason)
        ),
        LeadEvent::MessageDrafted(drafted) => {
            let refused = event
                .metadata
                .llm
                .as_ref()
                .and_then(|usage| usage.fallback_reason.as_deref())
                .map(|reason| {
                    format!("; the LLM's draft was refused ({reason}), the template used")
                })
                .unwrap_or_default();
            format!(
                "message drafted ({}){refused}",
                kind_text(drafted.kind, drafted.follow_up_number)
            )
        }
        LeadEvent::ReviewRequested(review) => format!(
            "review requested: {}",
            personal(event, review.pii.note.as_deref())
        ),
        LeadEvent::MessageApproved(approved) => format!(
            "message approved{}",
            if approved.edited { " (edited)" } else { "" }
        ),
        LeadEvent::MessageRejected(rejected) => format!(
            "message rejected: {}",
            personal(event, rejected.pii.note.as_deref())
        ),
        LeadEvent::MessageSent(sent) => format!(
            "message sent via {} ({})",
            sent.account_id,
            kind_text(sent.kind, sent.follow_up_number)
        ),
        LeadEvent::MessageSendFailed(failed) => format!(
            "send {} via {} ({}): {}",
            match failed.outcome {
                SendOutcome::Failed => "failed",
                SendOutcome::Unknown => "outcome unknown",
            },
            failed.account_id,
            name_of(&failed.kind),
            failed.error
        ),
        LeadEvent::FollowUpScheduled(scheduled) => format!(
            "follow-up {} scheduled for {}",
            scheduled.follow_up_number,
            scheduled.due_at.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        LeadEvent::ResponseReceived(received) => format!(
            "reply {} received: {}",
            received.response_number,
            personal(event, received.pii.reply_text.as_deref())
        ),
        LeadEvent::ResponseAnalysed(analysed) => format!(
            "reply analysed: {} / {} (confidence {:.2})",
            analysed.sentiment.as_str(),
            analysed.intent.as_str(),
            analysed.confidence.value()
        ),
        LeadEvent::LeadQualified(qualified) => format!(
            "qualified ({}), handed to {}",
            qualified.intent.as_str(),
            qualified.assigned_to
        ),
        LeadEvent::HumanNotified(notified) => {
            format!("{} notified by {}", notified.recipient, notified.channel)
        }
        LeadEvent::PipelineStageChanged(changed) => format!(
            "pipeline: {} -> {}",
            changed.from.label(),
            changed.to.status().label()
        ),
        LeadEvent::LeadClosed(closed) => format!(
            "closed {} ({})",
            name_of(&closed.outcome),
            name_of(&closed.reason)
        ),
        LeadEvent::DoNotContact(marked) => {
            format!("do not contact (from {})", name_of(&marked.source))
        }
        LeadEvent::NoteAdded(added) => {
            format!("note: {}", personal(event, added.pii.note.as_deref()))
        }
        LeadEvent::LeadForgotten(_) => "personal data forgotten (crypto-shredded)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_dates_parse_as_bounds() {
        let cases = [
            ("2026-12-01T09:30:00Z", false, "2026-12-01T09:30:00.000000Z"),
            (
                "2026-12-01T10:30:00+01:00",
                true,
                "2026-12-01T09:30:00.000000Z",
            ),
            ("2026-12-01", false, "2026-12-01T00:00:00.000000Z"),
            ("2026-12-01", true, "2026-12-01T23:59:59.999999Z"),
        ];
        for (text, upper, expected) in cases {
            let time = parse_time(text, upper).unwrap();
            assert_eq!(
                time.to_rfc3339_opts(SecondsFormat::Micros, true),
                expected,
                "{text}"
            );
        }
        for bad in ["", "yesterday", "2026-13-01", "12/01/2026"] {
            assert!(parse_time(bad, false).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn long_personal_texts_are_shortened_to_one_line() {
        assert_eq!(shorten("a\n b"), "a b");
        let long = "x".repeat(100);
        assert_eq!(shorten(&long).chars().count(), 60);
    }
}
