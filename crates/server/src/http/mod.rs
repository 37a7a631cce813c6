//! The HTTP API: JSON over axum, bearer tokens with roles (see [`auth`]). Reads go to the
//! projections and the log; every human command is an event appended through the domain's
//! command handler with the token's user as its actor. `salesdept serve` mounts [`router`].
//!
//! | area | module |
//! |---|---|
//! | leads and a lead's history | [`leads`] |
//! | the event log | [`events`] |
//! | daily reports, funnel, rates | [`reports`] |
//! | the review queue | [`review`] |
//! | human commands, agents, searches | [`commands`] |
//! | dead letters | [`dead_letters`] |

pub mod auth;
#[cfg(test)]
mod bad_input_tests;
pub mod commands;
pub mod dashboard;
pub mod dead_letters;
pub mod error;
pub mod events;
pub mod leads;
pub mod metrics;
pub mod reports;
pub mod review;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod webhook_bad_input_tests;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use salesdept_agents::clock::Clock;
use salesdept_events::Store;
use salesdept_events::domain::{CommandHandler, CommandMetadata};
use serde::de::DeserializeOwned;

pub use auth::{ApiTokens, Role, TokenHash, User};
pub use error::ApiError;

/// The largest request body accepted (larger: 413).
pub const BODY_LIMIT: usize = 64 * 1024;

/// What every handler needs.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
    pub handler: CommandHandler<Store>,
    /// The domain clock: the `occurred_at` of human commands, the default report dates.
    pub clock: Arc<dyn Clock>,
    pub tokens: Arc<ApiTokens>,
    /// Classifications below this confidence are in the review queue
    /// (`lead_finder.review_confidence_threshold`).
    pub review_confidence_threshold: f64,
}

impl ApiState {
    pub fn new(store: Store, clock: Arc<dyn Clock>, tokens: ApiTokens) -> Self {
        Self {
            handler: CommandHandler::new(Arc::new(store.clone())),
            store,
            clock,
            tokens: Arc::new(tokens),
            review_confidence_threshold: 0.55,
        }
    }

    pub fn with_review_confidence_threshold(mut self, threshold: f64) -> Self {
        self.review_confidence_threshold = threshold;
        self
    }

    /// The metadata of a command `user` gives now.
    pub fn metadata(&self, user: &User) -> CommandMetadata {
        CommandMetadata::new(user.actor(), self.clock.now())
    }
}

/// The API's routes under `/api`, with the body limit and request logging.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/leads", get(leads::list))
        .route("/api/leads/{id}", get(leads::one))
        .route(
            "/api/leads/{id}/do-not-contact",
            post(commands::do_not_contact),
        )
        .route("/api/leads/{id}/notes", post(commands::add_note))
        .route("/api/leads/{id}/reassign", post(commands::reassign))
        .route("/api/leads/{id}/close", post(commands::close))
        .route(
            "/api/leads/{id}/classification",
            post(commands::classification),
        )
        .route("/api/leads/{id}/score", post(commands::score))
        .route("/api/leads/{id}/forget", post(commands::forget))
        .route("/api/events", get(events::list))
        .route("/api/reports/daily", get(reports::daily))
        .route("/api/reports/funnel", get(reports::funnel))
        .route("/api/reports/rates", get(reports::rates))
        .route("/api/review", get(review::queue))
        .route(
            "/api/review/{lead_id}/drafts/{draft_id}/approve",
            post(review::approve),
        )
        .route(
            "/api/review/{lead_id}/drafts/{draft_id}/reject",
            post(review::reject),
        )
        .route("/api/agents/{agent}/pause", post(commands::pause_agent))
        .route("/api/agents/{agent}/resume", post(commands::resume_agent))
        .route("/api/searches", post(commands::request_search))
        .route("/api/dead-letters", get(dead_letters::list))
        .route("/api/dead-letters/{id}/retry", post(dead_letters::retry))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

/// One line per request: method, path (never the query, which may hold search text), status.
/// Headers are never logged: they carry the token.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        %method,
        path,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "api request"
    );
    response
}

/// A JSON body: malformed JSON is 400, well-formed JSON of the wrong shape (or not an object)
/// 422, too large 413, a body sent as something other than JSON (`Content-Type` given and not
/// `application/json` or `…+json`) 415; an empty body reads as `{}` (every field optional then
/// must have its default), and a body without a content type is read as JSON.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .map(|value| value.to_str().unwrap_or("(not text)").to_owned());
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                let status = rejection.status();
                if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        status,
                        format!("the body is larger than {} KiB", BODY_LIMIT / 1024),
                    )
                } else {
                    ApiError::new(status, "cannot read the body")
                }
            })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            if let Some(content_type) = content_type.filter(|value| !is_json(value)) {
                return Err(ApiError::new(
                    axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    format!(
                        "the body must be JSON with Content-Type: application/json, not {content_type:?}"
                    ),
                ));
            }
            &bytes
        };
        let not_json = |error: serde_json::Error| {
            ApiError::bad_request(format!("the body is not JSON: {error}"))
        };
        // A list or a lone value is not a command, even where serde would read one into a
        // struct (a list into a struct of no fields).
        let first = bytes.iter().find(|byte| !byte.is_ascii_whitespace());
        if first != Some(&b'{') {
            let value: serde_json::Value = serde_json::from_slice(bytes).map_err(not_json)?;
            let kind = match value {
                serde_json::Value::Array(_) => "a list",
                serde_json::Value::String(_) => "a string",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::Bool(_) => "a boolean",
                _ => "null",
            };
            return Err(ApiError::unprocessable(format!(
                "invalid body: the body must be a JSON object, not {kind}"
            )));
        }
        serde_json::from_slice(bytes).map(Self).map_err(|error| {
            use serde_json::error::Category;
            match error.classify() {
                Category::Data => ApiError::unprocessable(format!("invalid body: {error}")),
                // serde_json reports a value that cannot start the type asked for (a number
                // where a name is expected) as a syntax error, though the body is JSON.
                Category::Syntax if serde_json::from_slice::<serde_json::Value>(bytes).is_ok() => {
                    ApiError::unprocessable(format!(
                        "invalid body: the value at line {} column {} has the wrong type",
                        error.line(),
                        error.column()
                    ))
                }
                _ => not_json(error),
            }
        })
    }
}

/// Whether a `Content-Type` names JSON: `application/json` or a `+json` type, any parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A body for a command that takes no fields: empty, `{}`, or refused like any bad body.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// Path parameters; a malformed one (e.g. not a UUID) is 400.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|path| Self(path.0))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// Query parameters; unknown or malformed ones are 400.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|query| Self(query.0))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}

/// A date `YYYY-MM-DD` from a query parameter.
pub(crate) fn parse_date(text: &str, name: &str) -> Result<chrono::NaiveDate, ApiError> {
    chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| ApiError::bad_request(format!("{name} must be a date YYYY-MM-DD")))
}
