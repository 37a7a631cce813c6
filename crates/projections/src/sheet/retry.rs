//! How the Google adapter retries: a timeout on every call, a bounded number of attempts,
//! exponential backoff with jitter between them, and a server's Retry-After honoured when it
//! asks for longer. The agents crate has its own policy for its HTTP ports; projections cannot
//! depend on it (dependencies point server → agents → projections → events), so this one is
//! small and local.

use std::time::Duration;

use rand::Rng;

/// The longest Retry-After honoured; a server asking for longer gets this, and the next tick
/// tries again anyway.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// Timeout, attempts and backoff of calls to an external service.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Time allowed for one call (token fetch included).
    pub timeout: Duration,
    /// Attempts per call, the first included (at least 1).
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubled for each further one.
    pub initial_backoff: Duration,
    /// The backoff never grows past this (before a Retry-After).
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// Google allows about 60 writes a minute per user: five attempts spread over about 15 s.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30),
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based): exponential, with jitter in
    /// its upper half so that several clients do not retry in step, and at least the server's
    /// Retry-After (capped at [`MAX_RETRY_AFTER`]).
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let base = self
            .initial_backoff
            .saturating_mul(1_u32 << exponent)
            .min(self.max_backoff);
        let half = base / 2;
        let jitter = if half.is_zero() {
            Duration::ZERO
        } else {
            rand::rng().random_range(Duration::ZERO..=half)
        };
        let backoff = half + jitter;
        match retry_after {
            Some(after) => backoff.max(after.min(MAX_RETRY_AFTER)),
            None => backoff,
        }
    }

    /// At least one attempt.
    pub fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }
}

/// Parses a Retry-After header value: delay seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(
        date.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_jitter_and_is_capped() {
        let policy = RetryPolicy {
            timeout: Duration::from_secs(1),
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
        };
        for _ in 0..100 {
            let first = policy.backoff(1, None);
            assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&first));
            let third = policy.backoff(3, None);
            assert!((Duration::from_millis(200)..=Duration::from_millis(400)).contains(&third));
            let tenth = policy.backoff(10, None);
            assert!(tenth <= Duration::from_millis(1000), "{tenth:?}");
        }
    }

    #[test]
    fn retry_after_wins_when_longer_and_is_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.backoff(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            policy.backoff(1, Some(Duration::from_secs(100_000))),
            MAX_RETRY_AFTER
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        let later = std::time::SystemTime::now() + Duration::from_secs(60);
        let parsed = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(parsed <= Duration::from_secs(60) && parsed >= Duration::from_secs(58));
        assert_eq!(parse_retry_after("soon"), None);
    }
}
