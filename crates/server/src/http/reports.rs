//! `GET /api/reports/daily` (the Sales Manager's `daily_report_generated` events),
//! `GET /api/reports/funnel` and `GET /api/reports/rates` (the reports projection).

use axum::Json;
use axum::extract::State;
use chrono::{NaiveDate, TimeDelta};
use salesdept_events::domain::DEPARTMENT_STREAM;
use salesdept_events::store::{EventCursor, EventOrder, EventQuery};
use salesdept_projections::reports::{self, Dimension};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Viewer;
use super::{ApiError, ApiQuery, ApiState, parse_date};

/// The longest range one report request may cover.
pub const MAX_DAYS: i64 = 366;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    /// Rates only: `variant` (default), `classification` or `account`.
    pub dimension: Option<String>,
}

/// The range asked for; by default the 7 days ending today (by the domain clock).
fn range(state: &ApiState, query: &RangeQuery) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let to = match &query.to {
        Some(text) => parse_date(text, "to")?,
        None => state.clock.now().date_naive(),
    };
    let from = match &query.from {
        Some(text) => parse_date(text, "from")?,
        None => to - TimeDelta::days(6),
    };
    if from > to {
        return Err(ApiError::bad_request("from is after to"));
    }
    if (to - from).num_days() >= MAX_DAYS {
        return Err(ApiError::bad_request(format!(
            "a report covers at most {MAX_DAYS} days"
        )));
    }
    Ok((from, to))
}

/// `GET /api/reports/daily`: the daily reports of the range, oldest first.
pub async fn daily(
    Viewer(_): Viewer,
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<RangeQuery>,
) -> Result<Json<Value>, ApiError> {
    if query.dimension.is_some() {
        return Err(ApiError::bad_request("dimension is for /api/reports/rates"));
    }
    let (from, to) = range(&state, &query)?;
    let mut event_query = EventQuery {
        event_type: Some("daily_report_generated".into()),
        stream_prefix: Some(DEPARTMENT_STREAM.into()),
        order: EventOrder::Global,
        limit: 500,
        ..EventQuery::default()
    };
    let mut reports = Vec::new();
    loop {
        let page = state.store.query_events(&event_query).await?;
        let Some(last) = page.last() else { break };
        event_query.after = EventCursor::after(last, EventOrder::Global);
        let full = page.len() as i64 == event_query.limit;
        for event in page.iter().filter(|e| e.stream_id == DEPARTMENT_STREAM) {
            let date = event
                .data
                .get("date")
                .and_then(Value::as_str)
                .and_then(|text| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok());
            if date.is_some_and(|date| (from..=to).contains(&date)) {
                reports.push(json!({
                    "date": date,
                    "event_id": event.event_id,
                    "occurred_at": event.metadata.occurred_at,
                    "report": event.data,
                }));
            }
        }
        if !full {
            break;
        }
    }
    Ok(Json(json!({ "from": from, "to": to, "reports": reports })))
}

/// `GET /api/reports/funnel`: first-reached stages per day and in total.
pub async fn funnel(
    Viewer(_): Viewer,
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<RangeQuery>,
) -> Result<Json<Value>, ApiError> {
    if query.dimension.is_some() {
        return Err(ApiError::bad_request("dimension is for /api/reports/rates"));
    }
    let (from, to) = range(&state, &query)?;
    let funnel = reports::funnel(&state.store, from, to).await?;
    Ok(Json(json!({ "from": from, "to": to, "funnel": funnel })))
}

/// `GET /api/reports/rates`: reply rates per dimension over the range, and the week ending
/// `to` against the targets.
pub async fn rates(
    Viewer(_): Viewer,
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<RangeQuery>,
) -> Result<Json<Value>, ApiError> {
    let (from, to) = range(&state, &query)?;
    let dimension = match query.dimension.as_deref().unwrap_or("variant") {
        "variant" => Dimension::Variant,
        "classification" => Dimension::Classification,
        "account" => Dimension::Account,
        other => {
            return Err(ApiError::bad_request(format!(
                "dimension {other:?} must be variant, classification or account"
            )));
        }
    };
    let rows = reports::reply_rates(&state.store, dimension, from, to).await?;
    let weekly = reports::weekly_summary(&state.store, to).await?;
    Ok(Json(json!({
        "from": from,
        "to": to,
        "dimension": dimension.name(),
        "rates": rows,
        "weekly": weekly,
    })))
}
