//! The review queue: drafts held for a human (leads In Review, with their drafts waiting for a
//! decision or whose send outcome is unknown) and unsure classifications; approving (with an
//! optional edited text) and rejecting drafts.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use salesdept_events::NewEvent;
use salesdept_events::domain::lead::{DraftState, MessageKind};
use salesdept_events::domain::streams::lead_id_of;
use salesdept_events::domain::{LeadCommand, LeadState, LeadStatus, lead_stream};
use salesdept_events::store::{EventCursor, EventOrder, EventQuery};
use salesdept_projections::audit::parse_time;
use salesdept_projections::{LeadFilter, LeadOrder, Page, list_leads};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::auth::{Operator, User, Viewer};
use super::commands::executed;
use super::{ApiError, ApiJson, ApiPath, ApiQuery, ApiState};

/// Leads In Review read per queue request, at most.
pub const MAX_HELD_LEADS: i64 = 500;
/// `lead_classified` events scanned per queue request, at most.
pub const MAX_CLASSIFICATION_EVENTS: usize = 50_000;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueQuery {
    /// Classifications since this time (default: 30 days before now).
    pub since: Option<String>,
}

/// `GET /api/review`.
pub async fn queue(
    Viewer(_): Viewer,
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<QueueQuery>,
) -> Result<Json<Value>, ApiError> {
    let since: DateTime<Utc> = match &query.since {
        Some(text) => parse_time(text, false)
            .map_err(|error| ApiError::bad_request(format!("since: {error}")))?,
        None => state.clock.now() - TimeDelta::days(30),
    };
    review_queue(&state, since).await.map(Json)
}

/// The review queue as `GET /api/review` answers it (the dashboard renders the same value):
/// `drafts` waiting for a decision and unsure automatic `classifications` since `since`.
pub async fn review_queue(state: &ApiState, since: DateTime<Utc>) -> Result<Value, ApiError> {
    let held = list_leads(
        &state.store,
        &LeadFilter {
            status: Some(LeadStatus::InReview),
            ..LeadFilter::default()
        },
        Page {
            limit: MAX_HELD_LEADS,
            offset: 0,
        },
        LeadOrder::UpdatedDesc,
    )
    .await?;
    let mut drafts = Vec::new();
    for row in &held.rows {
        let loaded = state
            .handler
            .load::<LeadState>(&lead_stream(row.lead_id))
            .await?;
        for (draft_id, draft) in &loaded.state.drafts {
            let waiting = match draft.state {
                DraftState::InReview => "in_review",
                DraftState::SendUnknown => "send_unknown",
                _ => continue,
            };
            drafts.push(json!({
                "lead_id": row.lead_id,
                "draft_id": draft_id,
                "name": row.name,
                "company": row.company,
                "kind": match draft.kind {
                    MessageKind::Initial => "initial",
                    MessageKind::FollowUp => "follow_up",
                },
                "follow_up_number": draft.follow_up_number,
                "variant": draft.variant,
                "text": draft.text,
                "state": waiting,
            }));
        }
    }

    // The latest classification of each lead since `since`; unsure automatic ones wait.
    let mut latest: BTreeMap<Uuid, (Value, bool, f64)> = BTreeMap::new();
    let mut event_query = EventQuery {
        occurred_from: Some(since),
        event_type: Some("lead_classified".into()),
        stream_prefix: Some("lead-".into()),
        order: EventOrder::Global,
        limit: 1000,
        ..EventQuery::default()
    };
    let mut scanned = 0;
    let mut truncated = false;
    loop {
        let page = state.store.query_events(&event_query).await?;
        let Some(last) = page.last() else { break };
        event_query.after = EventCursor::after(last, EventOrder::Global);
        scanned += page.len();
        for event in &page {
            let Some(lead_id) = lead_id_of(&event.stream_id) else {
                continue;
            };
            let manual = event.data.get("manual").and_then(Value::as_bool) == Some(true);
            let confidence = event
                .data
                .get("confidence")
                .and_then(Value::as_f64)
                .unwrap_or(1.0);
            let entry = json!({
                "lead_id": lead_id,
                "classification": event.data.get("classification"),
                "confidence": confidence,
                "occurred_at": event.metadata.occurred_at,
                "event_id": event.event_id,
            });
            latest.insert(lead_id, (entry, manual, confidence));
        }
        if (page.len() as i64) < event_query.limit {
            break;
        }
        if scanned >= MAX_CLASSIFICATION_EVENTS {
            truncated = true;
            break;
        }
    }
    let classifications: Vec<Value> = latest
        .into_values()
        .filter(|(_, manual, confidence)| {
            !manual && *confidence < state.review_confidence_threshold
        })
        .map(|(entry, _, _)| entry)
        .collect();
    Ok(json!({
        "drafts": drafts,
        "classifications": classifications,
        "review_confidence_threshold": state.review_confidence_threshold,
        "classifications_since": since,
        "classifications_truncated": truncated,
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// The edited text to send instead of the draft's.
    pub text: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    pub reason: Option<String>,
}

/// `POST /api/review/{lead_id}/drafts/{draft_id}/approve`: `message_approved`, edited when a
/// text is given.
pub async fn approve(
    Operator(user): Operator,
    State(state): State<ApiState>,
    ApiPath((lead_id, draft_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<ApproveBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let command = LeadCommand::ApproveMessage {
        draft_id,
        edited_text: body.text,
    };
    decide(&state, &user, lead_id, &command).await
}

/// `POST /api/review/{lead_id}/drafts/{draft_id}/reject`: `message_rejected`.
pub async fn reject(
    Operator(user): Operator,
    State(state): State<ApiState>,
    ApiPath((lead_id, draft_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<RejectBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let command = LeadCommand::RejectMessage {
        draft_id,
        reason: super::commands::reason(body.reason)?,
    };
    decide(&state, &user, lead_id, &command).await
}

async fn decide(
    state: &ApiState,
    user: &User,
    lead_id: Uuid,
    command: &LeadCommand,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let stream = lead_stream(lead_id);
    let appended = execute_review_decision(state, user, lead_id, command).await?;
    Ok(executed(&stream, &appended))
}

/// Appends a review decision (`ApproveMessage` / `RejectMessage`) on the lead's stream with
/// `user` as the actor: the one path both the JSON API and the dashboard take.
pub async fn execute_review_decision(
    state: &ApiState,
    user: &User,
    lead_id: Uuid,
    command: &LeadCommand,
) -> Result<Vec<NewEvent>, ApiError> {
    let result = state
        .handler
        .execute::<LeadState>(&lead_stream(lead_id), command, &state.metadata(user))
        .await?;
    Ok(result.appended)
}
