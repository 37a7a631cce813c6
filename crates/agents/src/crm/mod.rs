//! The CRM port: a qualified lead becomes (or updates) a contact in the team's CRM, with the
//! conversation attached as a note.
//!
//! Adapters: [`NoCrm`], the default, which does nothing, and [`HubSpotCrm`], which
//! upserts a HubSpot contact (searched by LinkedIn URL or e-mail before any create) and
//! keeps one conversation note per lead on it. Upserting the same lead twice changes the
//! contact and the note in place: it never makes a second contact or a second note.

mod hubspot;
mod retry;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use salesdept_events::domain::{Classification, LinkedInUrl};
use uuid::Uuid;

pub use crate::mail::{ConversationTurn, Party};
pub use hubspot::{HubSpotConfig, HubSpotCrm};
pub use lettre::Address as EmailAddress;
pub use retry::RetryPolicy;

/// Records qualified leads in the team's CRM.
#[async_trait]
pub trait CrmPort: Send + Sync {
    /// Creates or updates the lead's contact and its conversation note. Idempotent: calling
    /// it again with the same lead (or a longer conversation) updates in place.
    async fn upsert_qualified_lead(&self, lead: &CrmLead) -> Result<CrmRecord, CrmError>;
}

/// A lead handed over to humans, as the CRM needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct CrmLead {
    pub lead_id: Uuid,
    pub name: String,
    pub email: Option<EmailAddress>,
    pub linkedin_url: LinkedInUrl,
    pub company: Option<String>,
    pub position: Option<String>,
    pub classification: Classification,
    /// The whole conversation, oldest first.
    pub conversation: Vec<ConversationTurn>,
    /// When the lead was qualified (the domain clock's time): the note's timeline date.
    pub qualified_at: DateTime<Utc>,
}

/// What the CRM holds for the lead after an upsert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CrmRecord {
    /// No CRM is configured; nothing was recorded.
    Skipped,
    /// The contact and its conversation note, by their CRM ids.
    Upserted {
        contact_id: String,
        contact: Change,
        note_id: String,
        note: Change,
    },
}

/// What an upsert did to one CRM object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Created,
    Updated,
    /// The object already held exactly this content.
    Unchanged,
}

/// Why an upsert failed. Never carries the access token.
#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    /// 429: over the CRM's rate limit; `retry_after` is the server's hint.
    #[error("CRM rate limit hit (retry after {retry_after:?}): {message}")]
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// 5xx: the CRM failed or is unavailable for now.
    #[error("CRM unavailable ({status}): {message}")]
    Unavailable { status: u16, message: String },
    /// Another 4xx: the CRM refused the request and will refuse it again.
    #[error("CRM rejected the request ({status}{}): {message}", category.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
    Rejected {
        status: u16,
        category: Option<String>,
        message: String,
    },
    /// The call did not finish in time.
    #[error("CRM call timed out after {0:?}")]
    Timeout(Duration),
    /// The connection failed or broke off.
    #[error("CRM connection failed: {0}")]
    Connection(String),
    /// The CRM answered something this adapter cannot read.
    #[error("unexpected CRM response: {0}")]
    InvalidResponse(String),
    /// The adapter's configuration is unusable.
    #[error("invalid CRM configuration: {0}")]
    Config(String),
}

impl CrmError {
    /// Whether the same upsert may succeed later: 429, 5xx, a timeout or a broken
    /// connection. Other 4xx answers are permanent.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::RateLimited { .. }
                | Self::Unavailable { .. }
                | Self::Timeout(_)
                | Self::Connection(_)
        )
    }

    /// The server's hint of how long to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The default: no CRM. Every upsert is [`CrmRecord::Skipped`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCrm;

#[async_trait]
impl CrmPort for NoCrm {
    async fn upsert_qualified_lead(&self, _lead: &CrmLead) -> Result<CrmRecord, CrmError> {
        Ok(CrmRecord::Skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn given_no_crm_when_a_lead_is_upserted_then_it_is_skipped() {
        let lead = CrmLead {
            lead_id: Uuid::nil(),
            name: "Ada".to_owned(),
            email: None,
            linkedin_url: LinkedInUrl::parse("linkedin.com/in/ada").unwrap(),
            company: None,
            position: None,
            classification: Classification::Sponsor,
            conversation: vec![],
            qualified_at: Utc::now(),
        };
        assert_eq!(
            NoCrm.upsert_qualified_lead(&lead).await.unwrap(),
            CrmRecord::Skipped
        );
    }

    #[test]
    fn retryable_errors_are_exactly_rate_limits_server_failures_timeouts_and_connections() {
        let cases = [
            (
                CrmError::RateLimited {
                    retry_after: Some(Duration::from_secs(2)),
                    message: "slow down".into(),
                },
                true,
            ),
            (
                CrmError::Unavailable {
                    status: 503,
                    message: "down".into(),
                },
                true,
            ),
            (CrmError::Timeout(Duration::from_secs(1)), true),
            (CrmError::Connection("reset".into()), true),
            (
                CrmError::Rejected {
                    status: 400,
                    category: Some("VALIDATION_ERROR".into()),
                    message: "bad email".into(),
                },
                false,
            ),
            (CrmError::InvalidResponse("garbage".into()), false),
            (CrmError::Config("no token".into()), false),
        ];
        for (error, retryable) in cases {
            assert_eq!(error.is_retryable(), retryable, "{error}");
        }
    }
}
