//! Dead letters (admin): events a subscription parked after its retries, and a request to
//! retry one, which the subscription's runner carries out on its next round.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use salesdept_events::subscription::{list_dead_letters, request_dead_letter_retry};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Admin;
use super::{ApiError, ApiPath, ApiQuery, ApiState};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    pub subscription: Option<String>,
}

/// `GET /api/dead-letters`: open dead letters, oldest first.
pub async fn list(
    Admin(_): Admin,
    State(state): State<ApiState>,
    ApiQuery(query): ApiQuery<DeadLetterQuery>,
) -> Result<Json<Value>, ApiError> {
    let letters = list_dead_letters(&state.store, query.subscription.as_deref()).await?;
    Ok(Json(json!({ "dead_letters": letters })))
}

/// `POST /api/dead-letters/{id}/retry`: 202, the runner retries it on its next round.
pub async fn retry(
    Admin(user): Admin,
    State(state): State<ApiState>,
    ApiPath(id): ApiPath<i64>,
    super::ApiJson(super::NoFields {}): super::ApiJson<super::NoFields>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    if !request_dead_letter_retry(&state.store, id).await? {
        return Err(ApiError::not_found(format!(
            "there is no open dead letter {id}"
        )));
    }
    tracing::info!(dead_letter = id, user = %user.name, "dead letter retry requested");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "retry_requested": true })),
    ))
}
