//! Given/when/then tests of `decide`, as one-liners: given these recorded events, when this
//! command, then these new events (or this refusal).
//!
//! ```
//! use salesdept_events::domain::testing::given;
//! use salesdept_events::domain::url::{ReserveUrl, UrlReservation, UrlReservationEvent, UrlReserved};
//! use salesdept_events::domain::{DomainError, LinkedInUrl, Pii};
//! use uuid::Uuid;
//!
//! let url = LinkedInUrl::parse("linkedin.com/in/maya").unwrap();
//! let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
//! let reserved = UrlReservationEvent::from(UrlReserved::new(first, &url));
//! given::<UrlReservation>([reserved])
//!     .when(ReserveUrl { lead_id: second, url })
//!     .then_error(DomainError::UrlAlreadyClaimed { lead_id: first });
//! ```
//!
//! Public (not `cfg(test)`) so the agents' and projections' crates can test with it too.

use chrono::{DateTime, TimeZone, Utc};

use super::error::DomainError;
use super::event::{Aggregate, DecisionContext, DomainEvent};
use crate::envelope::Actor;

/// The time commands run at unless a test says otherwise: Wednesday 2026-11-25 10:00 UTC,
/// inside the default working hours.
pub fn test_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
        .single()
        .expect("a valid time")
}

/// The actor commands run as unless a test says otherwise.
pub fn test_actor() -> Actor {
    Actor::agent("test")
}

/// Starts a test from these recorded events.
pub fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    Given {
        events: events.into_iter().collect(),
        context: DecisionContext::new(test_time(), test_actor()),
    }
}

/// The recorded events of a test, and when and by whom the command runs.
#[derive(Debug)]
pub struct Given<A: Aggregate> {
    events: Vec<A::Event>,
    context: DecisionContext,
}

impl<A: Aggregate> Given<A> {
    /// Runs the command at `now` (the domain clock).
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.context.now = now;
        self
    }

    /// Runs the command as `actor`.
    pub fn by(mut self, actor: Actor) -> Self {
        self.context.actor = actor;
        self
    }

    /// Runs the command as the human `name`.
    pub fn by_human(self, name: &str) -> Self {
        self.by(Actor::human(name))
    }

    /// The state the given events fold into.
    pub fn state(&self) -> A {
        A::fold(&self.events)
    }

    /// Decides `command` on the folded state.
    pub fn when(self, command: A::Command) -> Then<A> {
        let state = self.state();
        let result = state.decide(&command, &self.context);
        Then {
            given: self.events,
            command,
            result,
        }
    }
}

/// The outcome of a decision, to check.
#[derive(Debug)]
pub struct Then<A: Aggregate> {
    given: Vec<A::Event>,
    command: A::Command,
    result: Result<Vec<A::Event>, DomainError>,
}

impl<A: Aggregate> Then<A> {
    /// Asserts the command produced exactly `expected`, and that each event survives the trip
    /// through the log (its `event_type` and `data` read back as the same event).
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        let actual = self.then_ok();
        assert_eq!(actual, expected, "unexpected events");
    }

    /// Asserts the command was refused with `expected`.
    #[track_caller]
    pub fn then_error(self, expected: DomainError) {
        match self.result {
            Err(actual) => assert_eq!(actual, expected, "refused for another reason"),
            Ok(events) => panic!(
                "expected the refusal {expected:?}, but {:?} produced {events:#?}\ngiven {:#?}",
                self.command, self.given
            ),
        }
    }

    /// Asserts the command was accepted and returns its events (checked to round-trip through
    /// the log) for further assertions.
    #[track_caller]
    pub fn then_ok(self) -> Vec<A::Event> {
        match self.result {
            Ok(events) => {
                for event in &events {
                    let back = A::Event::from_data(event.event_type(), event.to_data());
                    assert_eq!(
                        back.as_ref(),
                        Ok(event),
                        "{} does not round-trip",
                        event.event_type()
                    );
                }
                events
            }
            Err(error) => panic!(
                "expected {:?} to be accepted, it was refused: {error} ({error:?})\ngiven {:#?}",
                self.command, self.given
            ),
        }
    }

    /// Asserts the command was refused and returns why.
    #[track_caller]
    pub fn then_err(self) -> DomainError {
        match self.result {
            Err(error) => error,
            Ok(events) => panic!(
                "expected {:?} to be refused, it produced {events:#?}",
                self.command
            ),
        }
    }

    /// The raw result.
    pub fn result(self) -> Result<Vec<A::Event>, DomainError> {
        self.result
    }
}
