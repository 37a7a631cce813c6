//! `GET /api/events`: the log by stream, type, actor, domain time range and correlation id,
//! in global order, paged by the last global position seen (`after`).

use axum::Json;
use axum::extract::State;
use salesdept_events::Actor;
use salesdept_events::store::{EventCursor, EventOrder, EventQuery};
use salesdept_projections::audit::{parse_time, summary};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::auth::Viewer;
use super::{ApiError, ApiQuery, ApiState};

/// The most events one page may hold.
pub const MAX_EVENTS: i64 = 1000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Exactly this stream (e.g. `lead-<uuid>`, `department`).
    pub stream: Option<String>,
    /// Streams starting with this (e.g. `lead-`).
    pub stream_prefix: Option<String>,
    /// An event type, e.g. `message_sent`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// `agent:NAME`, `human:NAME` or `system:NAME`.
    pub actor: Option<String>,
    /// Domain time bounds (RFC 3339 or a date), both inclusive.
    pub from: Option<String>,
    pub to: Option<String>,
    pub correlation_id: Option<Uuid>,
    /// The `next_after` of the previous page.
    pub after: Option<i64>,
    pub limit: Option<i64>,
}

/// `GET /api/events`.
pub async fn list(
    Viewer(_): Viewer,
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_EVENTS).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_EVENTS}"
        )));
    }
    if query.stream.is_some() && query.stream_prefix.is_some() {
        return Err(ApiError::bad_request(
            "give stream or stream_prefix, not both",
        ));
    }
    let actor = query
        .actor
        .as_deref()
        .map(|text| text.parse::<Actor>().map_err(ApiError::bad_request))
        .transpose()?;
    let time = |text: &Option<String>, upper: bool, name: &str| {
        text.as_deref()
            .map(|text| {
                parse_time(text, upper)
                    .map_err(|error| ApiError::bad_request(format!("{name}: {error}")))
            })
            .transpose()
    };
    let occurred_from = time(&query.from, false, "from")?;
    let occurred_to = time(&query.to, true, "to")?;
    if let (Some(from), Some(to)) = (occurred_from, occurred_to)
        && from > to
    {
        return Err(ApiError::bad_request("from is after to"));
    }
    let event_query = EventQuery {
        occurred_from,
        occurred_to,
        actor,
        event_type: query.event_type.clone(),
        // An exact stream is read as a prefix and the page filtered: ids like `account-a` and
        // `account-ab` share a prefix. The cursor still moves by the unfiltered page.
        stream_prefix: query.stream.clone().or(query.stream_prefix.clone()),
        correlation_id: query.correlation_id,
        order: EventOrder::Global,
        after: query.after.map_or(EventCursor::Start, EventCursor::Global),
        limit,
    };
    let page = state.store.query_events(&event_query).await?;
    let next_after = (page.len() as i64 == limit)
        .then(|| page.last().map(|event| event.global_position))
        .flatten();
    let events: Vec<Value> = page
        .iter()
        .filter(|event| query.stream.as_ref().is_none_or(|s| &event.stream_id == s))
        .map(|event| {
            let mut line = event.to_json_line();
            line["summary"] = Value::String(summary(event));
            line
        })
        .collect();
    Ok(Json(json!({ "events": events, "next_after": next_after })))
}
