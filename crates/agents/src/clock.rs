//! Time as a port. Agents never read the wall clock themselves: `serve` gives them the
//! [`SystemClock`], `simulate` a [`SimulatedClock`] that a discrete-event driver moves straight
//! to the next due time, so a simulated month runs in seconds and rate limits, working hours
//! and follow-up delays are testable.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Clone, Debug)]
pub struct SimulatedClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl SimulatedClock {
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves time forward to `time`; a time in the past leaves the clock where it is, so time
    /// never runs backwards.
    pub fn advance_to(&self, time: DateTime<Utc>) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if time > *now {
            *now = time;
        }
    }

    pub fn advance_by(&self, step: Duration) {
        let target = self.now() + step;
        self.advance_to(target);
    }
}

impl Clock for SimulatedClock {
    fn now(&self) -> DateTime<Utc> {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_time_moves_only_forward_and_is_shared() {
        let start = DateTime::parse_from_rfc3339("2026-11-23T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = SimulatedClock::starting_at(start);
        let view = clock.clone();
        clock.advance_by(Duration::minutes(7));
        assert_eq!(view.now(), start + Duration::minutes(7));
        clock.advance_to(start);
        assert_eq!(
            view.now(),
            start + Duration::minutes(7),
            "time never runs backwards"
        );
    }

    #[test]
    fn the_system_clock_follows_the_wall_clock() {
        let before = Utc::now();
        let now = SystemClock.now();
        assert!(now >= before && now <= Utc::now());
    }
}
