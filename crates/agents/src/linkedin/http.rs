//! Shared HTTP plumbing for the provider adapters: one reqwest client with a timeout, the
//! mapping of transport failures and common statuses to [`LinkedInError`], `Retry-After`
//! parsing, one bounded retry loop with exponential backoff and jitter, and a small memory of
//! completed sends by idempotency key.
//!
//! The retry loop is deliberately simple; the shared resilience policy (circuit breaker,
//! budgets) wraps the adapters from outside, keyed on [`LinkedInError::is_retryable`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tracing::Instrument as _;

use super::{IdempotencyKey, LinkedInError, Provider, SentMessage};

/// How often and how patiently one call is retried inside an adapter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = no retry).
    pub max_attempts: u32,
    /// The first backoff; each further one doubles, up to `max_delay`, with jitter.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is not waited for inside the call: the error goes to
    /// the caller, who can reschedule the work instead of holding a task.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// One attempt only: for callers that wrap the adapter in their own policy.
    pub fn no_retries() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    fn backoff(&self, failed_attempts: u32) -> Duration {
        let exponent = failed_attempts.saturating_sub(1).min(16);
        let ceiling = self
            .base_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        // "Equal jitter": half the delay fixed, half random, so bursts of callers spread out
        // but no retry comes back immediately.
        let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        let half = ceiling_ms / 2;
        Duration::from_millis(half + rand::random_range(0..=half))
    }
}

/// Whether a call may have a side effect at the provider. It decides what an ambiguous
/// failure (a timeout, a 5xx) means: a retryable fault for an idempotent call, an unknown
/// outcome for a side-effecting one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CallKind {
    /// Reads, and writes that are safe to repeat (the provider deduplicates them).
    Idempotent,
    /// Sends that act on LinkedIn: never repeated after an ambiguous failure.
    SideEffect,
}

/// A response with a non-ambiguous status, body read in full.
pub(crate) struct RawResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

pub(crate) fn build_client(timeout: Duration) -> Result<reqwest::Client, LinkedInError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .build()
        .map_err(|_| LinkedInError::InvalidRequest("cannot build the HTTP client".into()))
}

/// A header value holding a secret, marked sensitive so that `http`'s Debug output hides it.
pub(crate) fn secret_header(
    secret: &SecretString,
    prefix: &str,
) -> Result<HeaderValue, LinkedInError> {
    let mut value =
        HeaderValue::from_str(&format!("{prefix}{}", secret.expose_secret())).map_err(|_| {
            LinkedInError::InvalidRequest(
                "the API key contains characters a header cannot carry".into(),
            )
        })?;
    value.set_sensitive(true);
    Ok(value)
}

/// Sends the request and reads the whole body. Transport failures are classified here;
/// statuses are left to the caller (common ones via [`classify_common_status`]). The span
/// names the provider and the status, never the URL (it may hold a DSN) nor the body.
#[tracing::instrument(
    name = "http_request",
    skip_all,
    fields(
        provider = %provider,
        side_effect = kind == CallKind::SideEffect,
        http.response.status_code = tracing::field::Empty
    )
)]
pub(crate) async fn execute(
    provider: Provider,
    kind: CallKind,
    request: reqwest::RequestBuilder,
) -> Result<RawResponse, LinkedInError> {
    let response = request
        .send()
        .await
        .map_err(|error| classify_transport(provider, kind, &error))?;
    let status = response.status();
    tracing::Span::current().record("http.response.status_code", status.as_u16());
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(|error| {
        if status.is_success() && kind == CallKind::SideEffect {
            LinkedInError::OutcomeUnknown {
                provider,
                reason: format!(
                    "HTTP {} arrived but its body was lost ({})",
                    status.as_u16(),
                    transport_reason(&error)
                ),
            }
        } else {
            classify_transport(provider, kind, &error)
        }
    })?;
    Ok(RawResponse {
        status,
        headers,
        body: body.to_vec(),
    })
}

/// Never formats the reqwest error itself: its Display carries the request URL, which holds
/// the Unipile DSN.
fn transport_reason(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "the body could not be read"
    } else {
        "the connection failed"
    }
}

fn classify_transport(provider: Provider, kind: CallKind, error: &reqwest::Error) -> LinkedInError {
    if error.is_builder() {
        return LinkedInError::InvalidRequest("the request could not be built".into());
    }
    let reason = transport_reason(error).to_owned();
    // A failed connect never reached the provider, so even a send may be retried.
    if error.is_connect() || kind == CallKind::Idempotent {
        LinkedInError::Transient { provider, reason }
    } else {
        LinkedInError::OutcomeUnknown { provider, reason }
    }
}

/// The statuses every provider means the same way: 429, 5xx, 401 and 403.
pub(crate) fn classify_common_status(
    provider: Provider,
    kind: CallKind,
    status: StatusCode,
    headers: &HeaderMap,
    code: Option<String>,
) -> Option<LinkedInError> {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Some(LinkedInError::RateLimited {
            provider,
            retry_after: parse_retry_after(headers, SystemTime::now()),
        });
    }
    if status.is_server_error() {
        let reason = match &code {
            Some(code) => format!("HTTP {} ({code})", status.as_u16()),
            None => format!("HTTP {}", status.as_u16()),
        };
        return Some(match kind {
            CallKind::Idempotent => LinkedInError::Transient { provider, reason },
            CallKind::SideEffect => LinkedInError::OutcomeUnknown { provider, reason },
        });
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Some(LinkedInError::Unauthorized {
            provider,
            status: status.as_u16(),
            code,
        });
    }
    None
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3).
pub(crate) fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(at.timestamp()).ok()?);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Decodes a JSON body without echoing any of it into the error (bodies carry personal data).
pub(crate) fn decode_json<T: DeserializeOwned>(
    provider: Provider,
    what: &str,
    body: &[u8],
) -> Result<T, LinkedInError> {
    serde_json::from_slice(body).map_err(|error| LinkedInError::InvalidResponse {
        provider,
        reason: format!(
            "{what}: {:?} error at line {} column {}",
            error.classify(),
            error.line(),
            error.column()
        ),
    })
}

/// Runs `attempt` until it succeeds, fails for good, or the policy's attempts are spent.
/// Honours `Retry-After` up to `policy.max_retry_after`.
pub(crate) async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    operation: &'static str,
    mut attempt: F,
) -> Result<T, LinkedInError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, LinkedInError>>,
{
    let mut failed = 0;
    loop {
        // One span per attempt: the operation, its number and how it ended (the error's kind,
        // never its text, which may quote the provider's answer).
        let span = tracing::info_span!(
            "linkedin_call",
            operation,
            attempt = failed + 1,
            outcome = tracing::field::Empty
        );
        let outcome = attempt().instrument(span.clone()).await;
        span.record("outcome", outcome_name(&outcome));
        let error = match outcome {
            Ok(value) => return Ok(value),
            Err(error) => error,
        };
        failed += 1;
        if !error.is_retryable() || failed >= policy.max_attempts.max(1) {
            return Err(error);
        }
        let delay = match error.retry_after() {
            Some(wait) if wait > policy.max_retry_after => return Err(error),
            Some(wait) => wait,
            None => policy.backoff(failed),
        };
        tracing::debug!(operation, attempt = failed, ?delay, error = %error, "retrying");
        tokio::time::sleep(delay).await;
    }
}

/// How a provider call ended, for its span.
fn outcome_name<T>(outcome: &Result<T, LinkedInError>) -> &'static str {
    match outcome {
        Ok(_) => "ok",
        Err(LinkedInError::RateLimited { .. }) => "rate_limited",
        Err(LinkedInError::Limit { .. }) => "limit",
        Err(LinkedInError::Transient { .. }) => "transient",
        Err(LinkedInError::OutcomeUnknown { .. }) => "outcome_unknown",
        Err(LinkedInError::Unauthorized { .. }) => "unauthorized",
        Err(LinkedInError::NotFound { .. }) => "not_found",
        Err(_) => "error",
    }
}

/// Remembers completed sends by idempotency key (bounded), and refuses a second concurrent
/// send under a key already in flight.
pub(crate) struct SentLedger {
    capacity: usize,
    inner: Mutex<LedgerState>,
}

#[derive(Default)]
struct LedgerState {
    done: HashMap<IdempotencyKey, SentMessage>,
    order: VecDeque<IdempotencyKey>,
    in_flight: HashSet<IdempotencyKey>,
}

/// Removes the in-flight mark when the send finishes, whichever way.
pub(crate) struct InFlight<'a> {
    ledger: &'a SentLedger,
    key: IdempotencyKey,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut state = self.ledger.lock();
        state.in_flight.remove(&self.key);
    }
}

pub(crate) enum LedgerEntry<'a> {
    AlreadySent(SentMessage),
    Begin(InFlight<'a>),
}

impl SentLedger {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new(LedgerState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LedgerState> {
        // A poisoned ledger only lost bookkeeping; keep using it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn begin(&self, key: IdempotencyKey) -> Result<LedgerEntry<'_>, LinkedInError> {
        let mut state = self.lock();
        if let Some(sent) = state.done.get(&key) {
            return Ok(LedgerEntry::AlreadySent(sent.clone()));
        }
        if !state.in_flight.insert(key) {
            return Err(LinkedInError::InvalidRequest(format!(
                "a send with idempotency key {key} is already in progress"
            )));
        }
        Ok(LedgerEntry::Begin(InFlight { ledger: self, key }))
    }

    pub(crate) fn complete(&self, key: IdempotencyKey, sent: &SentMessage) {
        let mut state = self.lock();
        if state.done.insert(key, sent.clone()).is_none() {
            state.order.push_back(key);
        }
        while state.order.len() > self.capacity {
            if let Some(oldest) = state.order.pop_front() {
                state.done.remove(&oldest);
            }
        }
    }
}

/// Sends once per idempotency key: a repeated key gets the first answer back.
pub(crate) async fn send_once<F, Fut>(
    ledger: &SentLedger,
    key: IdempotencyKey,
    send: F,
) -> Result<SentMessage, LinkedInError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<SentMessage, LinkedInError>>,
{
    let _in_flight = match ledger.begin(key)? {
        LedgerEntry::AlreadySent(sent) => return Ok(sent),
        LedgerEntry::Begin(in_flight) => in_flight,
    };
    let sent = send().await?;
    ledger.complete(key, &sent);
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(
            parse_retry_after(&headers, SystemTime::now()),
            Some(Duration::from_secs(7))
        );
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let later = chrono::DateTime::from_timestamp(1_700_000_090, 0)
            .unwrap()
            .to_rfc2822();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&later).unwrap());
        assert_eq!(
            parse_retry_after(&headers, now),
            Some(Duration::from_secs(90))
        );
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&headers, now), None);
    }

    #[test]
    fn backoff_grows_and_stays_under_the_ceiling() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(800),
            max_retry_after: Duration::from_secs(1),
        };
        for failed in 1..10 {
            let delay = policy.backoff(failed);
            let ceiling = Duration::from_millis(100 * (1 << (failed - 1))).min(policy.max_delay);
            assert!(
                delay <= ceiling && delay >= ceiling / 2,
                "{failed}: {delay:?}"
            );
        }
    }

    #[tokio::test]
    async fn retries_stop_at_permanent_errors_and_at_the_attempt_limit() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            max_retry_after: Duration::from_secs(1),
        };
        let mut calls = 0;
        let result: Result<(), _> = with_retries(&policy, "test", || {
            calls += 1;
            async {
                Err(LinkedInError::Transient {
                    provider: Provider::Unipile,
                    reason: "x".into(),
                })
            }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 3);

        let mut calls = 0;
        let result: Result<(), _> = with_retries(&policy, "test", || {
            calls += 1;
            async {
                Err(LinkedInError::OutcomeUnknown {
                    provider: Provider::Unipile,
                    reason: "x".into(),
                })
            }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 1, "an unknown outcome is never retried");

        let mut calls = 0;
        let result: Result<(), _> = with_retries(&policy, "test", || {
            calls += 1;
            async {
                Err(LinkedInError::RateLimited {
                    provider: Provider::Unipile,
                    retry_after: Some(Duration::from_secs(3600)),
                })
            }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(
            calls, 1,
            "a Retry-After past the cap goes back to the caller"
        );
    }

    #[tokio::test]
    async fn a_repeated_idempotency_key_returns_the_first_answer() {
        let ledger = SentLedger::new(2);
        let key = IdempotencyKey::new(Uuid::new_v4());
        let mut sends = 0;
        for _ in 0..3 {
            let sent = send_once(&ledger, key, || {
                sends += 1;
                async {
                    Ok(SentMessage {
                        provider_message_id: "m-1".into(),
                    })
                }
            })
            .await
            .unwrap();
            assert_eq!(sent.provider_message_id, "m-1");
        }
        assert_eq!(sends, 1);
        // The ledger is bounded: the oldest keys are forgotten first.
        for _ in 0..2 {
            let other = IdempotencyKey::new(Uuid::new_v4());
            let sent = SentMessage {
                provider_message_id: "x".into(),
            };
            ledger.complete(other, &sent);
        }
        assert!(matches!(ledger.begin(key).unwrap(), LedgerEntry::Begin(_)));
    }

    #[test]
    fn a_key_in_flight_cannot_be_sent_twice_at_once() {
        let ledger = SentLedger::new(8);
        let key = IdempotencyKey::new(Uuid::new_v4());
        let first = ledger.begin(key).unwrap();
        assert!(ledger.begin(key).is_err());
        drop(first);
        assert!(ledger.begin(key).is_ok());
    }
}
