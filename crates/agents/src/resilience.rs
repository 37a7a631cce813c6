//! One resilience policy for every outbound call (LLM, LinkedIn providers, Sheets, SMTP, CRM).
//!
//! A [`Resilience`] wraps one external service. Each attempt runs under a timeout; failures that
//! may pass ([`FailureClass::Transient`]: 429, 5xx, lost connections, timeouts) are retried a
//! bounded number of times with exponential backoff and jitter (the `backon` crate), waiting
//! what the server asked for in `Retry-After` when it said so; other failures
//! ([`FailureClass::Permanent`]: any other 4xx, a request we built wrong) are returned at once.
//! A [`CircuitBreaker`] per service stops calling a service that keeps failing: it opens after
//! a number of consecutive failed attempts, lets one trial call through after a cool-down
//! (half-open), and closes again when that call succeeds. Every transition is logged and
//! published on a watch channel so a caller can raise an alert.
//!
//! Adapters make their error type implement [`Classify`]; for HTTP they can use
//! [`FailureClass::from_http_status`], [`http_failure_class`] and [`parse_retry_after`].

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use backon::{ExponentialBuilder, Retryable};
use serde::{Deserialize, Deserializer};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument as _;

/// How a failed call should be treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    /// Trying again may succeed (rate limited, server error, lost connection, timeout). The
    /// server's `Retry-After`, when it sent one, says how long to wait.
    Transient { retry_after: Option<Duration> },
    /// Trying again cannot help (a rejected request, bad credentials, an unknown resource).
    Permanent,
}

impl FailureClass {
    /// A transient failure without a server-given wait.
    pub const TRANSIENT: Self = Self::Transient { retry_after: None };

    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }

    /// The wait the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Transient { retry_after } => *retry_after,
            Self::Permanent => None,
        }
    }

    /// The class of a failed HTTP status: 408 (request timeout), 425 (too early), 429 (too many
    /// requests) and every 5xx are transient; every other status is permanent.
    pub fn from_http_status(status: u16, retry_after: Option<Duration>) -> Self {
        match status {
            408 | 425 | 429 | 500..=599 => Self::Transient { retry_after },
            _ => Self::Permanent,
        }
    }
}

/// Errors that know whether retrying them can help. Implemented by every adapter's error type
/// so one policy serves them all.
pub trait Classify {
    fn class(&self) -> FailureClass;
}

/// Parses a `Retry-After` header value: either a number of seconds or an HTTP date (in any of
/// the three formats of RFC 9110). A date in the past means "now" (zero). Anything else is None.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The class of an HTTP response, or None when it succeeded (2xx). Reads `Retry-After`.
pub fn http_failure_class(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
) -> Option<FailureClass> {
    if status.is_success() {
        return None;
    }
    let retry_after = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after(value, SystemTime::now()));
    Some(FailureClass::from_http_status(status.as_u16(), retry_after))
}

impl Classify for reqwest::Error {
    /// Timeouts and failures to connect, send or read are transient; an error status is
    /// classified by its code; a body that does not decode, a redirect loop or a request that
    /// could not be built are permanent.
    fn class(&self) -> FailureClass {
        if let Some(status) = self.status() {
            return FailureClass::from_http_status(status.as_u16(), None);
        }
        if self.is_timeout() || self.is_connect() || self.is_request() || self.is_body() {
            return FailureClass::TRANSIENT;
        }
        FailureClass::Permanent
    }
}

/// The policy's settings. In configuration files durations are given in seconds
/// (`timeout_seconds: 30`, fractions allowed).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResilienceConfig {
    /// The longest one attempt may take.
    #[serde(rename = "timeout_seconds", deserialize_with = "seconds")]
    pub timeout: Duration,
    /// Retries after the first attempt (so at most `max_retries + 1` attempts).
    pub max_retries: usize,
    /// The first backoff delay; it doubles per retry, plus random jitter.
    #[serde(rename = "min_backoff_seconds", deserialize_with = "seconds")]
    pub min_backoff: Duration,
    /// The longest backoff delay.
    #[serde(rename = "max_backoff_seconds", deserialize_with = "seconds")]
    pub max_backoff: Duration,
    /// A `Retry-After` longer than this is not waited for: the call fails at once (still
    /// transient, so the caller can try another provider or come back later).
    #[serde(rename = "max_retry_after_seconds", deserialize_with = "seconds")]
    pub max_retry_after: Duration,
    /// Consecutive failed attempts that open the circuit.
    pub breaker_failure_threshold: u32,
    /// How long an open circuit refuses calls before letting one trial call through.
    #[serde(rename = "breaker_cool_down_seconds", deserialize_with = "seconds")]
    pub breaker_cool_down: Duration,
}

impl ResilienceConfig {
    /// The settings for a typical HTTP API: 30 s per attempt, 3 retries from 0.5 s up to 20 s,
    /// Retry-After honoured up to 60 s, the circuit opening after 5 failures for 60 s.
    pub fn standard() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_retries: 3,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(60),
            breaker_failure_threshold: 5,
            breaker_cool_down: Duration::from_secs(60),
        }
    }
}

fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let value = f64::deserialize(deserializer)?;
    Duration::try_from_secs_f64(value)
        .map_err(|_| serde::de::Error::custom(format!("{value} is not a valid number of seconds")))
}

/// The state of a service's circuit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the cool-down has passed.
    Open,
    /// The cool-down has passed: one trial call may go through; its outcome closes or reopens.
    HalfOpen,
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        })
    }
}

/// A circuit breaker for one service. Time is tokio's, so tests can pause it.
pub struct CircuitBreaker {
    service: String,
    failure_threshold: u32,
    cool_down: Duration,
    inner: Mutex<BreakerInner>,
    changes: watch::Sender<BreakerState>,
}

struct BreakerInner {
    consecutive_failures: u32,
    /// Set while the circuit is open (or half-open: open and the cool-down has passed).
    opened_at: Option<Instant>,
    trial_in_flight: bool,
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("service", &self.service)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

impl CircuitBreaker {
    pub fn new(service: impl Into<String>, failure_threshold: u32, cool_down: Duration) -> Self {
        let (changes, _) = watch::channel(BreakerState::Closed);
        Self {
            service: service.into(),
            failure_threshold: failure_threshold.max(1),
            cool_down,
            inner: Mutex::new(BreakerInner {
                consecutive_failures: 0,
                opened_at: None,
                trial_in_flight: false,
            }),
            changes,
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        self.state_of(&self.lock())
    }

    /// A receiver that sees every change of state (Closed → Open → HalfOpen → Closed…), for
    /// raising and clearing alerts.
    pub fn subscribe(&self) -> watch::Receiver<BreakerState> {
        self.changes.subscribe()
    }

    /// Lets a call through, or says how long the circuit stays open.
    fn try_acquire(&self) -> Result<Permit<'_>, Duration> {
        let mut inner = self.lock();
        let Some(opened_at) = inner.opened_at else {
            return Ok(Permit {
                breaker: self,
                trial: false,
                settled: false,
            });
        };
        let open_until = opened_at + self.cool_down;
        let now = Instant::now();
        if now < open_until {
            return Err(open_until - now);
        }
        if inner.trial_in_flight {
            // Another caller is running the trial call; refuse until it settles.
            return Err(Duration::ZERO);
        }
        inner.trial_in_flight = true;
        self.publish(BreakerState::HalfOpen);
        Ok(Permit {
            breaker: self,
            trial: true,
            settled: false,
        })
    }

    fn record(&self, trial: bool, succeeded: bool) {
        let mut inner = self.lock();
        if trial {
            inner.trial_in_flight = false;
        }
        if succeeded {
            inner.consecutive_failures = 0;
            if inner.opened_at.take().is_some() {
                tracing::info!(service = %self.service, "circuit closed: the service answers again");
                self.publish(BreakerState::Closed);
            }
            return;
        }
        inner.consecutive_failures = inner.consecutive_failures.saturating_add(1);
        let was_open = inner.opened_at.is_some();
        if trial || (!was_open && inner.consecutive_failures >= self.failure_threshold) {
            inner.opened_at = Some(Instant::now());
            tracing::warn!(
                service = %self.service,
                consecutive_failures = inner.consecutive_failures,
                cool_down_seconds = self.cool_down.as_secs_f64(),
                "circuit open: not calling the service until the cool-down has passed"
            );
            self.publish(BreakerState::Open);
        }
    }

    fn release_trial(&self) {
        self.lock().trial_in_flight = false;
    }

    fn state_of(&self, inner: &BreakerInner) -> BreakerState {
        match inner.opened_at {
            None => BreakerState::Closed,
            Some(opened_at) if Instant::now() >= opened_at + self.cool_down => {
                BreakerState::HalfOpen
            }
            Some(_) => BreakerState::Open,
        }
    }

    fn publish(&self, state: BreakerState) {
        self.changes.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
    }

    fn lock(&self) -> MutexGuard<'_, BreakerInner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The right to make one call. A permit dropped without an outcome (the call was cancelled)
/// frees the half-open trial slot without counting as a success or a failure.
struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    trial: bool,
    settled: bool,
}

impl Permit<'_> {
    fn settle(mut self, succeeded: bool) {
        self.settled = true;
        self.breaker.record(self.trial, succeeded);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.trial && !self.settled {
            self.breaker.release_trial();
        }
    }
}

/// Why a call through the policy failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError<E> {
    /// The service's circuit is open: it was not called.
    #[error("{service}: circuit open, not calling it for another {retry_in:?}")]
    CircuitOpen { service: String, retry_in: Duration },
    /// The last attempt did not finish within the timeout.
    #[error("{service}: no answer within {timeout:?} after {attempts} attempt(s)")]
    TimedOut {
        service: String,
        timeout: Duration,
        attempts: u32,
    },
    /// The last attempt failed: permanently, or transiently with no retry left.
    #[error("{service}: {source} (after {attempts} attempt(s))")]
    Failed {
        service: String,
        attempts: u32,
        #[source]
        source: E,
    },
}

impl<E> CallError<E> {
    /// How many attempts were made (0 when the circuit was open).
    pub fn attempts(&self) -> u32 {
        match self {
            Self::CircuitOpen { .. } => 0,
            Self::TimedOut { attempts, .. } | Self::Failed { attempts, .. } => *attempts,
        }
    }
}

impl<E: Classify> Classify for CallError<E> {
    fn class(&self) -> FailureClass {
        match self {
            Self::CircuitOpen { retry_in, .. } => FailureClass::Transient {
                retry_after: Some(*retry_in),
            },
            Self::TimedOut { .. } => FailureClass::TRANSIENT,
            Self::Failed { source, .. } => source.class(),
        }
    }
}

/// The outcome of one attempt, inside the retry loop.
enum AttemptError<E> {
    CircuitOpen(Duration),
    TimedOut,
    Failed(E),
}

impl<E: Classify> AttemptError<E> {
    fn is_retryable(&self) -> bool {
        match self {
            Self::CircuitOpen(_) => false,
            Self::TimedOut => true,
            Self::Failed(error) => error.class().is_transient(),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Failed(error) => error.class().retry_after(),
            Self::CircuitOpen(_) | Self::TimedOut => None,
        }
    }
}

/// The resilience policy of one external service; clones share the circuit breaker.
#[derive(Clone)]
pub struct Resilience {
    inner: Arc<ResilienceInner>,
}

struct ResilienceInner {
    service: String,
    config: ResilienceConfig,
    breaker: CircuitBreaker,
}

impl fmt::Debug for Resilience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resilience")
            .field("service", &self.inner.service)
            .field("config", &self.inner.config)
            .field("breaker", &self.inner.breaker)
            .finish()
    }
}

impl Resilience {
    pub fn new(service: impl Into<String>, config: ResilienceConfig) -> Self {
        let service = service.into();
        let breaker = CircuitBreaker::new(
            service.clone(),
            config.breaker_failure_threshold,
            config.breaker_cool_down,
        );
        Self {
            inner: Arc::new(ResilienceInner {
                service,
                config,
                breaker,
            }),
        }
    }

    pub fn service(&self) -> &str {
        &self.inner.service
    }

    pub fn config(&self) -> &ResilienceConfig {
        &self.inner.config
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.inner.breaker
    }

    /// Runs `operation` under the policy: each attempt under the timeout, transient failures
    /// retried with backoff (or after `Retry-After`), the circuit breaker consulted before and
    /// told after every attempt. A permanent failure counts as "the service answered" for the
    /// breaker; a transient failure or a timeout counts as a failure.
    pub async fn call<T, E, F, Fut>(&self, operation: F) -> Result<T, CallError<E>>
    where
        E: Classify + fmt::Display,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let config = &self.inner.config;
        let breaker = &self.inner.breaker;
        let service = self.inner.service.as_str();
        let attempts = AtomicU32::new(0);
        let attempts_ref = &attempts;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(config.min_backoff)
            .with_max_delay(config.max_backoff)
            .with_factor(2.0)
            .with_max_times(config.max_retries)
            .with_jitter();
        let max_retry_after = config.max_retry_after;
        let timeout = config.timeout;

        let attempt = || {
            let future = operation();
            async move {
                let permit = breaker.try_acquire().map_err(AttemptError::CircuitOpen)?;
                let number = attempts_ref.fetch_add(1, Ordering::Relaxed) + 1;
                // One span per attempt: the service, the attempt's number and how it ended
                // (a class, never the error's text, which may quote the service's answer).
                let span = tracing::info_span!(
                    "external_call",
                    service,
                    attempt = number,
                    outcome = tracing::field::Empty
                );
                let (outcome, result) =
                    match tokio::time::timeout(timeout, future.instrument(span.clone())).await {
                        Ok(Ok(value)) => {
                            permit.settle(true);
                            ("ok", Ok(value))
                        }
                        Ok(Err(error)) => {
                            let transient = error.class().is_transient();
                            permit.settle(!transient);
                            let outcome = if transient { "transient" } else { "permanent" };
                            (outcome, Err(AttemptError::Failed(error)))
                        }
                        Err(_elapsed) => {
                            permit.settle(false);
                            ("timed_out", Err(AttemptError::TimedOut))
                        }
                    };
                span.record("outcome", outcome);
                result
            }
        };

        let result = attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(AttemptError::is_retryable)
            .adjust(|error, next_delay| {
                // backon passes None when the retries are used up; keep that bound.
                let next_delay = next_delay?;
                match error.retry_after() {
                    Some(wait) if wait > max_retry_after => None,
                    Some(wait) => Some(wait),
                    None => Some(next_delay),
                }
            })
            .notify(|error, delay| {
                let reason = match error {
                    AttemptError::CircuitOpen(_) => "circuit open".to_owned(),
                    AttemptError::TimedOut => format!("no answer within {timeout:?}"),
                    AttemptError::Failed(error) => error.to_string(),
                };
                tracing::warn!(
                    service,
                    attempt = attempts_ref.load(Ordering::Relaxed),
                    delay_ms = delay.as_millis() as u64,
                    %reason,
                    "transient failure; retrying"
                );
            })
            .await;

        let attempts = attempts.load(Ordering::Relaxed);
        result.map_err(|error| match error {
            AttemptError::CircuitOpen(retry_in) => CallError::CircuitOpen {
                service: service.to_owned(),
                retry_in,
            },
            AttemptError::TimedOut => CallError::TimedOut {
                service: service.to_owned(),
                timeout,
                attempts,
            },
            AttemptError::Failed(source) => CallError::Failed {
                service: service.to_owned(),
                attempts,
                source,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct FakeError(FailureClass);

    impl fmt::Display for FakeError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "fake failure {:?}", self.0)
        }
    }

    impl Classify for FakeError {
        fn class(&self) -> FailureClass {
            self.0
        }
    }

    fn config() -> ResilienceConfig {
        ResilienceConfig {
            timeout: Duration::from_secs(5),
            max_retries: 3,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(60),
            breaker_failure_threshold: 100,
            breaker_cool_down: Duration::from_secs(30),
        }
    }

    /// An operation that fails with `failures` in order, then succeeds; it counts its calls.
    struct Script {
        calls: AtomicUsize,
        failures: Vec<FailureClass>,
    }

    impl Script {
        fn new(failures: Vec<FailureClass>) -> Self {
            Self {
                calls: AtomicUsize::new(0),
                failures,
            }
        }

        async fn run(&self) -> Result<&'static str, FakeError> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            match self.failures.get(call) {
                Some(class) => Err(FakeError(*class)),
                None => Ok("done"),
            }
        }

        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_with_growing_delays_until_success() {
        let policy = Resilience::new("fake", config());
        let script = Script::new(vec![FailureClass::TRANSIENT, FailureClass::TRANSIENT]);
        let started = Instant::now();

        let result = policy.call(|| script.run()).await;

        assert_eq!(result.unwrap(), "done");
        assert_eq!(script.calls(), 3);
        // Two backoffs: 1 s and 2 s, each plus jitter below the delay itself.
        let waited = started.elapsed();
        assert!(waited >= Duration::from_secs(3), "waited {waited:?}");
        assert!(waited < Duration::from_secs(6), "waited {waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn retries_are_bounded_and_the_last_error_is_returned() {
        let policy = Resilience::new("fake", config());
        let script = Script::new(vec![FailureClass::TRANSIENT; 10]);

        let error = policy.call(|| script.run()).await.unwrap_err();

        assert_eq!(script.calls(), 4, "one attempt and three retries");
        assert_eq!(error.attempts(), 4);
        assert!(
            matches!(error, CallError::Failed { ref source, .. } if *source == FakeError(FailureClass::TRANSIENT))
        );
        assert!(error.class().is_transient());
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_are_not_retried() {
        let policy = Resilience::new("fake", config());
        let script = Script::new(vec![FailureClass::Permanent]);

        let error = policy.call(|| script.run()).await.unwrap_err();

        assert_eq!(script.calls(), 1);
        assert_eq!(error.class(), FailureClass::Permanent);
        assert_eq!(policy.breaker().state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_from_the_server_is_waited_exactly() {
        let policy = Resilience::new("fake", config());
        let script = Script::new(vec![FailureClass::Transient {
            retry_after: Some(Duration::from_secs(7)),
        }]);
        let started = Instant::now();

        let result = policy.call(|| script.run()).await;

        assert_eq!(result.unwrap(), "done");
        assert_eq!(started.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_beyond_the_cap_fails_at_once_and_stays_transient() {
        let policy = Resilience::new("fake", config());
        let hour = Duration::from_secs(3600);
        let script = Script::new(vec![FailureClass::Transient {
            retry_after: Some(hour),
        }]);
        let started = Instant::now();

        let error = policy.call(|| script.run()).await.unwrap_err();

        assert_eq!(script.calls(), 1);
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(error.class().retry_after(), Some(hour));
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_that_hangs_times_out_and_is_retried() {
        let policy = Resilience::new(
            "fake",
            ResilienceConfig {
                max_retries: 1,
                ..config()
            },
        );
        let calls = AtomicUsize::new(0);

        let error = policy
            .call(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<Result<(), FakeError>>().await
            })
            .await
            .unwrap_err();

        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(
            matches!(error, CallError::TimedOut { attempts: 2, .. }),
            "{error}"
        );
        assert!(error.class().is_transient());
    }

    #[tokio::test(start_paused = true)]
    async fn the_circuit_opens_after_consecutive_failures_and_refuses_calls() {
        let policy = Resilience::new(
            "fake",
            ResilienceConfig {
                max_retries: 0,
                breaker_failure_threshold: 3,
                ..config()
            },
        );
        let mut changes = policy.breaker().subscribe();
        let script = Script::new(vec![FailureClass::TRANSIENT; 10]);

        for _ in 0..3 {
            policy.call(|| script.run()).await.unwrap_err();
        }
        let refused = policy.call(|| script.run()).await.unwrap_err();

        assert_eq!(
            script.calls(),
            3,
            "the open circuit did not call the service"
        );
        assert!(
            matches!(refused, CallError::CircuitOpen { retry_in, .. } if retry_in == Duration::from_secs(30))
        );
        assert_eq!(refused.attempts(), 0);
        assert_eq!(policy.breaker().state(), BreakerState::Open);
        assert!(changes.has_changed().unwrap());
        assert_eq!(*changes.borrow_and_update(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_cool_down_one_successful_trial_closes_the_circuit() {
        let policy = Resilience::new(
            "fake",
            ResilienceConfig {
                max_retries: 0,
                breaker_failure_threshold: 2,
                ..config()
            },
        );
        let changes = policy.breaker().subscribe();
        let script = Script::new(vec![FailureClass::TRANSIENT; 2]);
        policy.call(|| script.run()).await.unwrap_err();
        policy.call(|| script.run()).await.unwrap_err();
        assert_eq!(policy.breaker().state(), BreakerState::Open);

        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(policy.breaker().state(), BreakerState::HalfOpen);
        let result = policy.call(|| script.run()).await;

        assert_eq!(result.unwrap(), "done");
        assert_eq!(policy.breaker().state(), BreakerState::Closed);
        assert_eq!(*changes.borrow(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_trial_reopens_the_circuit_for_another_cool_down() {
        let policy = Resilience::new(
            "fake",
            ResilienceConfig {
                max_retries: 0,
                breaker_failure_threshold: 1,
                ..config()
            },
        );
        let script = Script::new(vec![FailureClass::TRANSIENT; 2]);
        policy.call(|| script.run()).await.unwrap_err();
        tokio::time::advance(Duration::from_secs(30)).await;

        policy.call(|| script.run()).await.unwrap_err();

        assert_eq!(script.calls(), 2);
        assert_eq!(policy.breaker().state(), BreakerState::Open);
        let refused = policy.call(|| script.run()).await.unwrap_err();
        assert!(matches!(refused, CallError::CircuitOpen { .. }));
        assert_eq!(script.calls(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn while_half_open_only_one_trial_call_runs_at_a_time() {
        let breaker = CircuitBreaker::new("fake", 1, Duration::from_secs(10));
        breaker.try_acquire().unwrap().settle(false);
        tokio::time::advance(Duration::from_secs(10)).await;

        let trial = breaker
            .try_acquire()
            .expect("the first caller gets the trial");
        assert!(
            breaker.try_acquire().is_err(),
            "a second caller is refused during the trial"
        );
        drop(trial);
        let retried = breaker
            .try_acquire()
            .expect("a cancelled trial frees the slot");
        retried.settle(true);
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_do_not_open_the_circuit() {
        let policy = Resilience::new(
            "fake",
            ResilienceConfig {
                max_retries: 0,
                breaker_failure_threshold: 2,
                ..config()
            },
        );
        let script = Script::new(vec![FailureClass::Permanent; 5]);
        for _ in 0..5 {
            policy.call(|| script.run()).await.unwrap_err();
        }
        assert_eq!(script.calls(), 5);
        assert_eq!(policy.breaker().state(), BreakerState::Closed);
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_an_http_date() {
        let now = httpdate::parse_http_date("Wed, 25 Nov 2026 10:00:00 GMT").unwrap();
        let cases = [
            ("120", Some(Duration::from_secs(120)), "seconds"),
            (" 0 ", Some(Duration::ZERO), "zero with spaces"),
            (
                "Wed, 25 Nov 2026 10:00:30 GMT",
                Some(Duration::from_secs(30)),
                "IMF-fixdate",
            ),
            (
                "Wednesday, 25-Nov-26 10:01:00 GMT",
                Some(Duration::from_secs(60)),
                "RFC 850 date",
            ),
            (
                "Wed Nov 25 10:00:05 2026",
                Some(Duration::from_secs(5)),
                "asctime date",
            ),
            (
                "Wed, 25 Nov 2026 09:00:00 GMT",
                Some(Duration::ZERO),
                "a date in the past",
            ),
            ("-5", None, "negative"),
            ("1.5", None, "fraction"),
            ("soon", None, "garbage"),
            ("", None, "empty"),
        ];
        for (value, expected, description) in cases {
            assert_eq!(
                parse_retry_after(value, now),
                expected,
                "{description}: {value:?}"
            );
        }
    }

    #[test]
    fn http_statuses_are_classified() {
        let wait = Some(Duration::from_secs(3));
        let cases = [
            (429, FailureClass::Transient { retry_after: wait }),
            (500, FailureClass::Transient { retry_after: wait }),
            (502, FailureClass::Transient { retry_after: wait }),
            (503, FailureClass::Transient { retry_after: wait }),
            (408, FailureClass::Transient { retry_after: wait }),
            (400, FailureClass::Permanent),
            (401, FailureClass::Permanent),
            (403, FailureClass::Permanent),
            (404, FailureClass::Permanent),
            (422, FailureClass::Permanent),
        ];
        for (status, expected) in cases {
            assert_eq!(
                FailureClass::from_http_status(status, wait),
                expected,
                "status {status}"
            );
        }
    }

    #[test]
    fn responses_are_classified_with_their_retry_after_header() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::RETRY_AFTER, "9".parse().unwrap());
        assert_eq!(
            http_failure_class(reqwest::StatusCode::TOO_MANY_REQUESTS, &headers),
            Some(FailureClass::Transient {
                retry_after: Some(Duration::from_secs(9))
            })
        );
        assert_eq!(http_failure_class(reqwest::StatusCode::OK, &headers), None);
        assert_eq!(
            http_failure_class(reqwest::StatusCode::UNAUTHORIZED, &headers),
            Some(FailureClass::Permanent)
        );
    }

    #[test]
    fn the_configuration_reads_durations_in_seconds() {
        let config: ResilienceConfig = serde_json::from_value(serde_json::json!({
            "timeout_seconds": 2.5,
            "max_retries": 2,
            "min_backoff_seconds": 0.25,
            "max_backoff_seconds": 10,
            "max_retry_after_seconds": 60,
            "breaker_failure_threshold": 5,
            "breaker_cool_down_seconds": 120
        }))
        .unwrap();
        assert_eq!(config.timeout, Duration::from_millis(2500));
        assert_eq!(config.min_backoff, Duration::from_millis(250));
        assert_eq!(config.breaker_cool_down, Duration::from_secs(120));
        let negative = serde_json::from_value::<ResilienceConfig>(serde_json::json!({
            "timeout_seconds": -1, "max_retries": 2, "min_backoff_seconds": 0.25,
            "max_backoff_seconds": 10, "max_retry_after_seconds": 60,
            "breaker_failure_threshold": 5, "breaker_cool_down_seconds": 120
        }));
        assert!(negative.is_err());
    }
}
