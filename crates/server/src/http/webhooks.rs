//! Inbound LinkedIn-provider webhooks. A verified delivery wakes the inbox check at once (the
//! scheduler's inbox trigger); the check reads the replies and acceptances from the provider
//! and records each once, so a repeated or late delivery changes nothing and polling stays the
//! backstop for deliveries that never come.
//!
//! - `POST /webhooks/unipile`: Unipile's `message_received` / `new_relation`, with the secret
//!   in an `X-Webhook-Secret` header (Unipile sends custom headers, it does not sign);
//! - `POST /webhooks/dripify/{secret}`: Dripify's reply webhook (its UI takes only a URL);
//! - `POST /webhooks/linkedin`: the generic shape, signed: `X-Signature: sha256=<hex>` of the
//!   raw body with HMAC-SHA256.
//!
//! Without `linkedin.webhook_secret` the routes do not exist. Answers: 202 with the count of
//! deliveries, 401 when unauthenticated, 400 for a body that is not the provider's shape, 413
//! above [`MAX_BODY_BYTES`]. Nothing from the body is logged.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use salesdept_agents::clock::Clock;
use salesdept_agents::linkedin::webhooks::{
    Delivery, InboundEvent, MAX_BODY_BYTES, WebhookError, parse_dripify, parse_generic,
    parse_unipile, verify_hmac_sha256, verify_shared_secret,
};
use serde_json::json;
use tokio::sync::Notify;

use crate::config::ConfigSecret;

#[derive(Clone)]
struct WebhookState {
    secret: ConfigSecret,
    inbox: Arc<Notify>,
    clock: Arc<dyn Clock>,
}

/// The webhook routes, or none without a secret.
pub fn router(secret: Option<ConfigSecret>, inbox: Arc<Notify>, clock: Arc<dyn Clock>) -> Router {
    let Some(secret) = secret else {
        return Router::new();
    };
    Router::new()
        .route("/webhooks/unipile", post(unipile))
        .route("/webhooks/dripify/{secret}", post(dripify))
        .route("/webhooks/linkedin", post(generic))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(WebhookState {
            secret,
            inbox,
            clock,
        })
}

/// The raw body, or why it cannot be had: above the limit it is [`WebhookError::TooLarge`], so
/// the sender gets the same JSON answer whether axum's limit or the parser's caught it.
type Body = Result<Bytes, BytesRejection>;

fn read_body(body: Body) -> Result<Bytes, WebhookError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            WebhookError::TooLarge
        } else {
            WebhookError::Malformed("the body could not be read".into())
        }
    })
}

async fn unipile(State(state): State<WebhookState>, headers: HeaderMap, body: Body) -> Response {
    let presented = headers
        .get("x-webhook-secret")
        .and_then(|value| value.to_str().ok());
    let result = read_body(body).and_then(|body| {
        verify_shared_secret(state.secret.secret(), presented)
            .and_then(|()| parse_unipile(&body, state.clock.now()))
    });
    accept(&state, "unipile", result)
}

async fn dripify(
    State(state): State<WebhookState>,
    Path(secret): Path<String>,
    body: Body,
) -> Response {
    let result = read_body(body).and_then(|body| {
        verify_shared_secret(state.secret.secret(), Some(&secret))
            .and_then(|()| parse_dripify(&body, state.clock.now()))
    });
    accept(&state, "dripify", result)
}

async fn generic(State(state): State<WebhookState>, headers: HeaderMap, body: Body) -> Response {
    let signature = headers
        .get("x-signature")
        .and_then(|value| value.to_str().ok());
    let result = read_body(body).and_then(|body| {
        verify_hmac_sha256(state.secret.secret(), &body, signature)
            .and_then(|()| parse_generic(&body, state.clock.now()))
    });
    accept(&state, "generic", result)
}

fn accept(
    state: &WebhookState,
    provider: &'static str,
    result: Result<Vec<Delivery>, WebhookError>,
) -> Response {
    let (status, outcome, body) = match result {
        Ok(deliveries) => {
            let replies = deliveries
                .iter()
                .filter(|delivery| matches!(delivery.event, InboundEvent::Reply(_)))
                .count();
            if !deliveries.is_empty() {
                state.inbox.notify_one();
            }
            (
                StatusCode::ACCEPTED,
                "accepted",
                json!({
                    "deliveries": deliveries.len(),
                    "replies": replies,
                    "acceptances": deliveries.len() - replies,
                }),
            )
        }
        Err(WebhookError::Unauthenticated) => (
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            json!({"error": "the webhook is not authenticated"}),
        ),
        Err(WebhookError::TooLarge) => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            json!({"error": WebhookError::TooLarge.to_string()}),
        ),
        Err(WebhookError::Malformed(message)) => (
            StatusCode::BAD_REQUEST,
            "malformed",
            json!({"error": format!("the webhook body cannot be read: {message}")}),
        ),
    };
    metrics::counter!("salesdept_webhook_deliveries_total", "provider" => provider, "outcome" => outcome)
        .increment(1);
    if status != StatusCode::ACCEPTED {
        tracing::warn!(provider, outcome, "a webhook was refused");
    }
    (status, axum::Json(body)).into_response()
}
