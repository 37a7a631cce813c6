//! The LinkedIn port: what the agents need from "LinkedIn" (find people, read a profile,
//! invite, message, and hear back), in provider-neutral types, and the adapters that
//! implement it over real providers.
//!
//! - [`LinkedInPort`] is the trait the Lead Finder and Outreach agents call.
//! - [`unipile::UnipileClient`] and [`gojiberry::GojiberryClient`] implement it over HTTP;
//!   [`dripify::DripifyClient`] is a campaign channel (push leads, read activity back),
//!   because Dripify's API cannot send anything.
//! - [`csv_import`] turns exported prospect lists into an all-or-nothing import plan.
//! - [`webhooks`] verifies and parses inbound provider webhooks into [`Reply`] and
//!   [`ConnectionAccepted`], with a dedup key per delivery.
//!
//! Every failure is a [`LinkedInError`]; [`LinkedInError::is_retryable`] tells the shared
//! resilience policy which ones may be tried again. A send is never retried once the provider
//! may have acted on it: such failures are [`LinkedInError::OutcomeUnknown`], for the caller
//! to reconcile before anything is sent again (DESIGN.md, "Write path rules").

pub mod csv_import;
pub mod dripify;
pub mod gojiberry;
mod http;
pub mod unipile;
pub mod webhooks;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use salesdept_events::domain::LinkedInUrl;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use http::RetryPolicy;

/// LinkedIn refuses invitation notes longer than this many characters.
pub const MAX_INVITATION_NOTE_CHARS: usize = 300;
/// An upper bound on one message's length; LinkedIn's own limit is far above any outreach text.
pub const MAX_MESSAGE_CHARS: usize = 8000;

/// What the agents ask of LinkedIn, whoever provides it.
///
/// Every send takes an [`IdempotencyKey`] derived by the caller from its event id, so that a
/// repeated call after a crash is recognisable; adapters remember the keys they completed and
/// answer a repeated key with the first result instead of sending twice.
#[async_trait]
pub trait LinkedInPort: Send + Sync {
    /// The provider behind this adapter (for logs, metrics and error messages).
    fn provider(&self) -> Provider;

    /// People matching the criteria, at most `criteria.limit` of them.
    async fn search_profiles(
        &self,
        criteria: &SearchCriteria,
    ) -> Result<Vec<ProviderProfile>, LinkedInError>;

    /// One person's profile.
    async fn fetch_profile(
        &self,
        profile_url: &LinkedInUrl,
    ) -> Result<ProviderProfile, LinkedInError>;

    /// Invite a person to connect, with an optional note. Returns the provider's invitation id.
    async fn send_connection_request(
        &self,
        to: &Recipient,
        note: Option<&InvitationNote>,
        key: IdempotencyKey,
    ) -> Result<SentMessage, LinkedInError>;

    /// Send a message to a person (a connection, or a thread they are in).
    async fn send_message(
        &self,
        to: &Recipient,
        text: &MessageText,
        key: IdempotencyKey,
    ) -> Result<SentMessage, LinkedInError>;

    /// Messages people sent to the account after `since` (our own messages excluded).
    async fn replies_since(&self, since: DateTime<Utc>) -> Result<Vec<Reply>, LinkedInError>;

    /// Invitations accepted (new relations) after `since`.
    async fn connections_accepted_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<ConnectionAccepted>, LinkedInError>;

    /// What became of an earlier send with this key, for reconciling after a crash: `Some` —
    /// it reached the provider (record it, never send again); `None` — the provider knows it
    /// never arrived (sending with the same key is safe). A provider that cannot tell answers
    /// [`LinkedInError::Unsupported`], and the caller records the outcome as unknown. The
    /// default cannot tell: an in-memory ledger does not survive the crash being reconciled.
    async fn find_sent(&self, key: IdempotencyKey) -> Result<Option<SentMessage>, LinkedInError> {
        let _ = key;
        Err(LinkedInError::Unsupported {
            provider: self.provider(),
            capability: "looking up a send by its idempotency key",
        })
    }

    /// Take back a pending invitation: `invitation_id` is the id `send_connection_request`
    /// returned. Once this returns `Ok` the person can no longer accept it; withdrawing an
    /// invitation already withdrawn is `Ok` too. A provider whose API cannot withdraw answers
    /// [`LinkedInError::Unsupported`] (the default), and the caller records the withdrawal
    /// with a note that the provider was not told.
    async fn withdraw_invitation(&self, invitation_id: &str) -> Result<(), LinkedInError> {
        let _ = invitation_id;
        Err(LinkedInError::Unsupported {
            provider: self.provider(),
            capability: "withdrawing an invitation",
        })
    }
}

/// The providers this module talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    Unipile,
    Gojiberry,
    Dripify,
    /// A generic JSON webhook (Clay, Zapier, a hand-built integration).
    Generic,
    /// The seeded synthetic network of the embedded default ([`crate::sandbox`]).
    Sandbox,
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unipile => "unipile",
            Self::Gojiberry => "gojiberry",
            Self::Dripify => "dripify",
            Self::Generic => "generic",
            Self::Sandbox => "sandbox",
        })
    }
}

/// A person as a provider describes them: the fields of `shared/fixtures/profiles.dev.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderProfile {
    /// The provider's own id for the person (Unipile `ACo…`, Gojiberry contact id, …).
    pub provider_id: String,
    pub name: String,
    /// Headline or current position.
    pub position: Option<String>,
    pub company: Option<String>,
    pub company_size: Option<String>,
    pub industry: Option<String>,
    pub location: Option<String>,
    pub about: Option<String>,
    pub recent_activity: Option<String>,
    pub profile_url: LinkedInUrl,
    /// Already a first-degree connection of the account (no invitation needed); false when
    /// the provider does not say.
    #[serde(default)]
    pub is_connection: bool,
}

/// What to look for. Free text throughout: adapters translate to the provider's own filters
/// (and say in their docs which ones the provider cannot apply).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchCriteria {
    /// Free-text keywords over the whole profile.
    pub keywords: Option<String>,
    /// Industries by name, e.g. "Software Development".
    pub industries: Vec<String>,
    /// Words that should appear in the person's title, e.g. "CTO", "Head of Engineering".
    pub position_keywords: Vec<String>,
    /// Company size bands as LinkedIn writes them, e.g. "51-200".
    pub company_sizes: Vec<String>,
    /// Places by name, e.g. "Stockholm".
    pub locations: Vec<String>,
    /// At most this many profiles are returned.
    pub limit: u32,
}

/// Whom a send goes to. The provider id is used when known (it saves a profile look-up).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub profile_url: LinkedInUrl,
    pub provider_id: Option<String>,
    pub full_name: String,
}

/// The idempotency key of one send: a UUID the caller derives from the event that causes the
/// send (e.g. `salesdept_events::step_event_id(event_id, "linkedin_send")`), so that retrying
/// the same step produces the same key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdempotencyKey(Uuid);

impl IdempotencyKey {
    pub fn new(key: Uuid) -> Self {
        Self(key)
    }

    /// The key of step `step` caused by event `cause` (UUIDv5, the same rule as the store's
    /// step event ids).
    pub fn for_step(cause: Uuid, step: &str) -> Self {
        Self(Uuid::new_v5(&cause, step.as_bytes()))
    }

    pub fn as_uuid(self) -> Uuid {
        self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An invitation note: non-empty and at most [`MAX_INVITATION_NOTE_CHARS`] characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct InvitationNote(String);

impl InvitationNote {
    pub fn parse(text: &str) -> Result<Self, LinkedInError> {
        let trimmed = text.trim();
        let chars = trimmed.chars().count();
        if chars == 0 {
            return Err(LinkedInError::InvalidRequest(
                "an invitation note cannot be empty (send none instead)".into(),
            ));
        }
        if chars > MAX_INVITATION_NOTE_CHARS {
            return Err(LinkedInError::InvalidRequest(format!(
                "an invitation note has at most {MAX_INVITATION_NOTE_CHARS} characters, this one has {chars}"
            )));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for InvitationNote {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// A message body: non-empty and at most [`MAX_MESSAGE_CHARS`] characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MessageText(String);

impl MessageText {
    pub fn parse(text: &str) -> Result<Self, LinkedInError> {
        let chars = text.trim().chars().count();
        if chars == 0 {
            return Err(LinkedInError::InvalidRequest(
                "a message cannot be empty".into(),
            ));
        }
        if chars > MAX_MESSAGE_CHARS {
            return Err(LinkedInError::InvalidRequest(format!(
                "a message has at most {MAX_MESSAGE_CHARS} characters, this one has {chars}"
            )));
        }
        Ok(Self(text.trim().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for MessageText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// What a provider answered to a send: its id for the message (or, for an invitation, the
/// invitation). Record it in the `message_sent` / `invitation_sent` event: it is what a
/// reconciliation after a crash looks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMessage {
    pub provider_message_id: String,
}

/// A message a person sent us.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub provider_message_id: String,
    pub profile_url: LinkedInUrl,
    pub text: String,
    pub received_at: DateTime<Utc>,
    pub thread_id: String,
}

/// A person accepted our invitation (a new relation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionAccepted {
    pub profile_url: LinkedInUrl,
    pub at: DateTime<Utc>,
}

/// The public identifier of a profile URL: `https://www.linkedin.com/in/<slug>` → `<slug>`.
pub fn profile_slug(url: &LinkedInUrl) -> &str {
    url.as_str().rsplit('/').next().unwrap_or_default()
}

/// A provider's refusal that means "you hit a LinkedIn or account limit": waiting a few
/// seconds will not help, so the policy must not retry; the caller moves to a reserve account
/// or tomorrow, and the daily report names the cap that bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// An invitation to this person was withdrawn or refused recently (Unipile
    /// `cannot_resend_yet`, `cannot_resend_within_24hrs`).
    CannotResendYet,
    /// An invitation to this person is already pending (Unipile `already_invited_recently`).
    AlreadyInvitedRecently,
    /// The account's invitation or action quota is spent (Unipile `limit_exceeded`).
    LimitExceeded,
    /// No InMail or other credits left (Unipile `insufficient_credits`).
    InsufficientCredits,
    /// The provider's own daily request budget is spent (Dripify: 5,000 requests a day).
    DailyRequestBudget,
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CannotResendYet => "cannot resend an invitation to this person yet",
            Self::AlreadyInvitedRecently => "this person was already invited recently",
            Self::LimitExceeded => "the account's LinkedIn limit is reached",
            Self::InsufficientCredits => "no credits left",
            Self::DailyRequestBudget => "the provider's daily request budget is spent",
        })
    }
}

/// Why a call to a LinkedIn provider failed. Never carries an API key, a DSN or a request URL.
#[derive(Debug, thiserror::Error)]
pub enum LinkedInError {
    /// HTTP 429: the provider asks us to slow down. Retryable after `retry_after`.
    #[error("{provider} is rate-limiting us (retry after {retry_after:?})")]
    RateLimited {
        provider: Provider,
        retry_after: Option<Duration>,
    },
    /// A LinkedIn or account limit: do not retry (see [`LimitKind`]).
    #[error("{provider}: {kind}")]
    Limit { provider: Provider, kind: LimitKind },
    /// A fault that did not change anything at the provider: a read that failed with 5xx or
    /// timed out, or a request that never reached the provider. Retryable.
    #[error("{provider} failed transiently: {reason}")]
    Transient { provider: Provider, reason: String },
    /// A send failed in a way that leaves open whether the provider acted (a timeout, a 5xx,
    /// a dropped connection after the request went out). Never retry blindly: reconcile with
    /// the provider first, or record `message_send_failed` with outcome unknown.
    #[error(
        "{provider}: the outcome of the send is unknown ({reason}); reconcile before sending again"
    )]
    OutcomeUnknown { provider: Provider, reason: String },
    /// The API key or the connected account is refused (401/403).
    #[error("{provider} refused our credentials or account (HTTP {status}{})", code_suffix(.code))]
    Unauthorized {
        provider: Provider,
        status: u16,
        code: Option<String>,
    },
    /// The person, thread or campaign does not exist at the provider.
    #[error("{provider}: not found: {what}")]
    NotFound { provider: Provider, what: String },
    /// Any other refusal: sending the same request again will fail the same way.
    #[error("{provider} rejected the request (HTTP {status}{}): {detail}", code_suffix(.code))]
    Permanent {
        provider: Provider,
        status: u16,
        code: Option<String>,
        detail: String,
    },
    /// The provider answered 2xx but with a body we cannot read. After a send this means the
    /// send was accepted but its id is unknown: do not send again.
    #[error("{provider} answered something we cannot read: {reason}")]
    InvalidResponse { provider: Provider, reason: String },
    /// Our own request was invalid before anything was sent (e.g. a note over 300 characters).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The provider's API has no such capability.
    #[error("{provider} does not support {capability}")]
    Unsupported {
        provider: Provider,
        capability: &'static str,
    },
}

fn code_suffix(code: &Option<String>) -> String {
    code.as_deref()
        .map(|code| format!(", {code}"))
        .unwrap_or_default()
}

impl LinkedInError {
    /// Whether the same call may be made again (after a wait). Limits, unknown outcomes and
    /// permanent refusals are not retryable.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Transient { .. })
    }

    /// How long the provider asked us to wait, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The provider's machine-readable error code, when it gave one (e.g. `already_connected`).
    pub fn provider_code(&self) -> Option<&str> {
        match self {
            Self::Permanent { code, .. } | Self::Unauthorized { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_over_300_characters_are_refused_and_300_are_accepted() {
        let exactly = "é".repeat(MAX_INVITATION_NOTE_CHARS);
        assert!(InvitationNote::parse(&exactly).is_ok(), "300 characters");
        let over = "a".repeat(MAX_INVITATION_NOTE_CHARS + 1);
        let error = InvitationNote::parse(&over).unwrap_err();
        assert!(matches!(error, LinkedInError::InvalidRequest(_)), "{error}");
        assert!(InvitationNote::parse("   ").is_err(), "blank");
        assert!(
            serde_json::from_str::<InvitationNote>(&format!("\"{over}\"")).is_err(),
            "deserialising checks the length too"
        );
    }

    #[test]
    fn messages_must_not_be_empty() {
        assert!(MessageText::parse(" \n ").is_err());
        assert_eq!(MessageText::parse(" Hi Maya ").unwrap().as_str(), "Hi Maya");
    }

    #[test]
    fn idempotency_keys_are_stable_per_cause_and_step() {
        let cause = Uuid::new_v4();
        assert_eq!(
            IdempotencyKey::for_step(cause, "invite"),
            IdempotencyKey::for_step(cause, "invite")
        );
        assert_ne!(
            IdempotencyKey::for_step(cause, "invite"),
            IdempotencyKey::for_step(cause, "message")
        );
        assert_eq!(
            IdempotencyKey::for_step(cause, "invite").as_uuid(),
            salesdept_events::step_event_id(cause, "invite")
        );
    }

    #[test]
    fn only_rate_limits_and_transient_faults_are_retryable() {
        let provider = Provider::Unipile;
        assert!(
            LinkedInError::RateLimited {
                provider,
                retry_after: None
            }
            .is_retryable()
        );
        assert!(
            LinkedInError::Transient {
                provider,
                reason: "x".into()
            }
            .is_retryable()
        );
        for error in [
            LinkedInError::Limit {
                provider,
                kind: LimitKind::LimitExceeded,
            },
            LinkedInError::OutcomeUnknown {
                provider,
                reason: "timeout".into(),
            },
            LinkedInError::InvalidResponse {
                provider,
                reason: "x".into(),
            },
            LinkedInError::Unsupported {
                provider,
                capability: "search",
            },
        ] {
            assert!(!error.is_retryable(), "{error}");
        }
    }
}
