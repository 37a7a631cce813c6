//! A bounded retry with exponential backoff and jitter, honouring the server's
//! `Retry-After`. A stop-gap until the shared resilience policy replaces it.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use super::CrmError;

/// How often and how patiently a failed call is tried again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// The backoff before the second attempt; it doubles for each further one.
    pub base_delay: Duration,
    /// No wait is longer; a `Retry-After` beyond it ends the retries (the caller
    /// reschedules rather than holding a task for minutes).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Three attempts, 500 ms then 1 s (with jitter), waits capped at 10 s.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` after `error`, or `None` to stop.
    fn delay_after(&self, attempt: u32, error: &CrmError) -> Option<Duration> {
        if attempt >= self.max_attempts || !error.is_retryable() {
            return None;
        }
        if let Some(hint) = error.retry_after() {
            return (hint <= self.max_delay).then_some(hint);
        }
        let exponential = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max_delay);
        // "Equal jitter": half the backoff is fixed, half random, so concurrent callers
        // spread out but none retries immediately.
        let half = exponential / 2;
        let jitter = rand::rng().random_range(0..=half.as_millis() as u64);
        Some(half + Duration::from_millis(jitter))
    }
}

/// Runs `operation` until it succeeds, fails permanently, or the policy is exhausted.
pub(crate) async fn with_retry<T, F, Fut>(
    policy: &RetryPolicy,
    mut operation: F,
) -> Result<T, CrmError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CrmError>>,
{
    let mut attempt = 1;
    loop {
        match operation().await {
            Ok(value) => return Ok(value),
            Err(error) => match policy.delay_after(attempt, &error) {
                Some(delay) => {
                    tracing::warn!(attempt, ?delay, %error, "CRM call failed; retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                None => return Err(error),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn quick() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(50),
        }
    }

    fn unavailable() -> CrmError {
        CrmError::Unavailable {
            status: 503,
            message: "down".into(),
        }
    }

    #[tokio::test]
    async fn given_transient_failures_when_retried_then_it_stops_after_max_attempts() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = with_retry(&quick(), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(unavailable())
        })
        .await;
        assert!(matches!(result, Err(CrmError::Unavailable { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn given_a_permanent_failure_when_retried_then_it_is_tried_once() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = with_retry(&quick(), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(CrmError::Rejected {
                status: 400,
                category: None,
                message: "no".into(),
            })
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn given_one_failure_then_success_when_retried_then_the_value_is_returned() {
        let calls = AtomicU32::new(0);
        let result = with_retry(&quick(), || async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Err(unavailable()),
                _ => Ok(42),
            }
        })
        .await;
        assert_eq!(result.unwrap(), 42);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn backoff_grows_within_its_bounds_and_honours_retry_after() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1_000),
        };
        for attempt in 1..8 {
            let delay = policy.delay_after(attempt, &unavailable()).unwrap();
            let full = (Duration::from_millis(100) * 2u32.pow(attempt - 1)).min(policy.max_delay);
            assert!(
                delay >= full / 2 && delay <= full,
                "attempt {attempt}: {delay:?}"
            );
        }
        let limited = |secs| CrmError::RateLimited {
            retry_after: Some(Duration::from_millis(secs)),
            message: String::new(),
        };
        assert_eq!(
            policy.delay_after(1, &limited(700)),
            Some(Duration::from_millis(700))
        );
        assert_eq!(policy.delay_after(1, &limited(5_000)), None);
        assert_eq!(policy.delay_after(10, &unavailable()), None);
    }
}
