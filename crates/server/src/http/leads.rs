//! `GET /api/leads` (the lead table, filtered and paged) and `GET /api/leads/{id}` (one lead
//! with its whole history from the log).

use axum::Json;
use axum::extract::State;
use salesdept_events::EventStore;
use salesdept_events::domain::lead_stream;
use salesdept_projections::audit::lead_history;
use salesdept_projections::leads::{LeadOrder, parse_status, row_to_json};
use salesdept_projections::{LeadFilter, LeadRow, Page, get_lead, list_leads};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::auth::Viewer;
use super::{ApiError, ApiPath, ApiQuery, ApiState};

/// The most leads one page may hold.
pub const MAX_PAGE: i64 = 500;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeadQuery {
    /// A status label ("In Review") or name (`in_review`).
    pub status: Option<String>,
    /// `Speaker`, `Sponsor`, `Other`, or `none` for unclassified leads.
    pub classification: Option<String>,
    pub min_score: Option<f64>,
    pub max_score: Option<f64>,
    /// Substring of name, company or position (case-insensitive).
    pub q: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    /// `updated` (default), `score`, `name`, `id`.
    pub order: Option<String>,
}

/// The filter, page and order a [`LeadQuery`] asks for (the dashboard's lead table parses
/// its form with this too).
pub(crate) fn filter_of(query: &LeadQuery) -> Result<(LeadFilter, Page, LeadOrder), ApiError> {
    let status = query
        .status
        .as_deref()
        .map(|text| {
            parse_status(text).ok_or_else(|| {
                ApiError::bad_request(format!("status {text:?} is not a lead status"))
            })
        })
        .transpose()?;
    let classification = query
        .classification
        .as_deref()
        .map(|text| match text.trim().to_ascii_lowercase().as_str() {
            "speaker" => Ok("Speaker".to_owned()),
            "sponsor" => Ok("Sponsor".to_owned()),
            "other" => Ok("Other".to_owned()),
            "none" | "" => Ok(String::new()),
            _ => Err(ApiError::bad_request(format!(
                "classification {text:?} must be Speaker, Sponsor, Other or none"
            ))),
        })
        .transpose()?;
    for (name, score) in [
        ("min_score", query.min_score),
        ("max_score", query.max_score),
    ] {
        if let Some(score) = score
            && !(score.is_finite() && (0.0..=10.0).contains(&score))
        {
            return Err(ApiError::bad_request(format!(
                "{name} must be between 0 and 10"
            )));
        }
    }
    if let (Some(min), Some(max)) = (query.min_score, query.max_score)
        && min > max
    {
        return Err(ApiError::bad_request("min_score is above max_score"));
    }
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let offset = query.offset.unwrap_or(0);
    if offset < 0 {
        return Err(ApiError::bad_request("offset must not be negative"));
    }
    let order = match query.order.as_deref().unwrap_or("updated") {
        "updated" => LeadOrder::UpdatedDesc,
        "score" => LeadOrder::ScoreDesc,
        "name" => LeadOrder::NameAsc,
        "id" => LeadOrder::LeadId,
        other => {
            return Err(ApiError::bad_request(format!(
                "order {other:?} must be updated, score, name or id"
            )));
        }
    };
    Ok((
        LeadFilter {
            status,
            classification,
            min_score: query.min_score,
            max_score: query.max_score,
            search: query.q.clone().filter(|q| !q.trim().is_empty()),
        },
        Page { limit, offset },
        order,
    ))
}

/// `GET /api/leads`.
pub async fn list(
    Viewer(_): Viewer,
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<LeadQuery>,
) -> Result<Json<Value>, ApiError> {
    let (filter, page, order) = filter_of(&query)?;
    let found = list_leads(&state.store, &filter, page, order).await?;
    Ok(Json(json!({
        "total": found.total,
        "limit": page.limit,
        "offset": page.offset,
        "leads": found.rows.iter().map(row_to_json).collect::<Vec<_>>(),
    })))
}

/// `GET /api/leads/{id}`: the table's row (or, when the projection has not caught up yet, the
/// row folded from the stream) and every event of the lead with its summary.
pub async fn one(
    Viewer(_): Viewer,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<Value>, ApiError> {
    let history = lead_history(&state.store, id).await?;
    if history.is_empty() {
        return Err(ApiError::not_found(format!("there is no lead {id}")));
    }
    let row = match get_lead(&state.store, id).await? {
        Some(row) if row.version >= history.last().map_or(0, |e| e.event.stream_version) => row,
        _ => LeadRow::from_events(id, history.iter().map(|entry| &entry.event))?,
    };
    let version = state.store.stream_version(&lead_stream(id)).await?;
    Ok(Json(json!({
        "lead": row_to_json(&row),
        "stream_version": version,
        "history": history.iter().map(|entry| entry.to_json_line()).collect::<Vec<_>>(),
    })))
}
