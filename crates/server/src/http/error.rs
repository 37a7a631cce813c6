//! Every failure of the API as one JSON shape, `{"error": "..."}`, with its status. Internal
//! errors are logged and answered with a generic message: no detail, no stack trace.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use salesdept_events::StoreError;
use salesdept_events::domain::{CommandError, DomainError};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// A failure the caller cannot fix: logged here, answered without detail.
    pub fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %error, "request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        Self::internal(&error)
    }
}

impl From<salesdept_projections::ProjectionError> for ApiError {
    fn from(error: salesdept_projections::ProjectionError) -> Self {
        Self::internal(&error)
    }
}

impl From<salesdept_projections::reports::ReportError> for ApiError {
    fn from(error: salesdept_projections::reports::ReportError) -> Self {
        Self::internal(&error)
    }
}

impl From<salesdept_projections::audit::AuditError> for ApiError {
    fn from(error: salesdept_projections::audit::AuditError) -> Self {
        Self::internal(&error)
    }
}

impl From<DomainError> for ApiError {
    /// A rule's refusal: the rule's message is safe to show (it carries ids, never secrets).
    fn from(error: DomainError) -> Self {
        let status = match &error {
            DomainError::InvalidCommand(_) => StatusCode::UNPROCESSABLE_ENTITY,
            DomainError::LeadNotDiscovered | DomainError::UnknownDraft { .. } => {
                StatusCode::NOT_FOUND
            }
            DomainError::HumanRequired { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::CONFLICT,
        };
        Self::new(status, error.to_string())
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Rejected(rule) => rule.into(),
            CommandError::TooManyConflicts { .. } => {
                Self::new(StatusCode::CONFLICT, error.to_string())
            }
            CommandError::Store(store) => store.into(),
        }
    }
}
