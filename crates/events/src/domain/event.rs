//! How typed domain events meet the log, and what every aggregate looks like.
//!
//! A stream kind has one event enum. Each variant is stored with its snake_case name in the
//! `event_type` column and its body (the variant's struct, serialised) in the `data` column:
//! [`DomainEvent::to_new_event`] builds the row, [`DomainEvent::from_recorded`] reads it back.
//! An [`Aggregate`] is a stream's state with its two pure functions: `evolve` applies a fact,
//! `decide` holds every rule. [`CommandMetadata`] is what the caller of a command knows (who,
//! when by the domain clock, why) and what lands in every event's metadata.

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::error::DomainError;
use crate::envelope::{Actor, LlmUsage, Metadata, NewEvent, RecordedEvent, step_event_id};
use crate::error::StoreError;

/// A typed event enum of one stream kind.
pub trait DomainEvent: Clone + fmt::Debug + PartialEq + Send + Sync + Sized + 'static {
    /// Every `event_type` this enum can hold.
    const EVENT_TYPES: &'static [&'static str];

    /// The snake_case name stored in the `event_type` column.
    fn event_type(&self) -> &'static str;

    /// The schema version written for `event_type` today (None: not an event of this enum).
    fn current_schema_version(event_type: &str) -> Option<i32>;

    /// The body stored in the `data` column.
    fn to_data(&self) -> Value;

    /// Builds the event from its stored name and body (already at the current schema version).
    fn from_data(event_type: &str, data: Value) -> Result<Self, String>;

    /// [`DomainEvent::from_data`] from a borrowed body: the enums of [`domain_events!`]
    /// deserialise straight from the borrowed JSON tree instead of cloning it first.
    fn from_data_ref(event_type: &str, data: &Value) -> Result<Self, String> {
        Self::from_data(event_type, data.clone())
    }

    /// The schema version this event is written with.
    fn schema_version(&self) -> i32 {
        Self::current_schema_version(self.event_type()).unwrap_or(1)
    }

    /// The row to append, with `metadata`, a fresh id and the current schema version.
    fn to_new_event(&self, metadata: Metadata) -> NewEvent {
        NewEvent::new(self.event_type(), self.to_data(), metadata)
            .with_schema_version(self.schema_version())
    }

    /// Reads a stored event. The store must have upcast it to the current schema version (open
    /// it with [`crate::domain::upcasters()`]); an older body is refused rather than misread.
    fn from_recorded(event: &RecordedEvent) -> Result<Self, StoreError> {
        let decode_error = |message: String| StoreError::Decode {
            event_type: event.event_type.clone(),
            global_position: event.global_position,
            message,
        };
        let current = Self::current_schema_version(&event.event_type).ok_or_else(|| {
            decode_error(format!(
                "stream {} holds an event type this stream kind does not know",
                event.stream_id
            ))
        })?;
        if event.schema_version != current {
            return Err(decode_error(format!(
                "schema version {} is not the current version {current}: open the store with domain::upcasters()",
                event.schema_version
            )));
        }
        Self::from_data_ref(&event.event_type, &event.data).map_err(decode_error)
    }
}

/// Defines a stream kind's event enum: one variant per event type, each holding its body
/// struct, with the stored name (and schema version when above 1) written next to it.
macro_rules! domain_events {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident($body:ty) = $event_type:literal $(@ v $version:literal)?
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "event_type", content = "data")]
        pub enum $name {
            $(
                $(#[$variant_meta])*
                #[serde(rename = $event_type)]
                $variant($body),
            )+
        }

        impl $crate::domain::event::DomainEvent for $name {
            const EVENT_TYPES: &'static [&'static str] = &[$($event_type),+];

            fn event_type(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $event_type,)+
                }
            }

            fn current_schema_version(event_type: &str) -> Option<i32> {
                match event_type {
                    $($event_type => Some(domain_events!(@version $($version)?)),)+
                    _ => None,
                }
            }

            fn to_data(&self) -> serde_json::Value {
                let data = match self {
                    $(Self::$variant(body) => serde_json::to_value(body),)+
                };
                // Bodies are plain structs with string keys: serialising them cannot fail.
                data.expect("event bodies always serialise to JSON")
            }

            fn from_data(event_type: &str, data: serde_json::Value) -> Result<Self, String> {
                match event_type {
                    $($event_type => serde_json::from_value::<$body>(data)
                        .map(Self::$variant)
                        .map_err(|error| error.to_string()),)+
                    other => Err(format!("unknown event type {other:?}")),
                }
            }

            fn from_data_ref(event_type: &str, data: &serde_json::Value) -> Result<Self, String> {
                match event_type {
                    $($event_type => <$body as serde::Deserialize>::deserialize(data)
                        .map(Self::$variant)
                        .map_err(|error| error.to_string()),)+
                    other => Err(format!("unknown event type {other:?}")),
                }
            }
        }

        $(
            impl From<$body> for $name {
                fn from(body: $body) -> Self {
                    Self::$variant(body)
                }
            }
        )+
    };
    (@version) => { 1 };
    (@version $version:literal) => { $version };
}
pub(crate) use domain_events;

/// What `decide` knows besides the state and the command: the domain clock's time and who acts.
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionContext {
    pub now: DateTime<Utc>,
    pub actor: Actor,
}

impl DecisionContext {
    pub fn new(now: DateTime<Utc>, actor: Actor) -> Self {
        Self { now, actor }
    }

    /// Refuses unless a human acts (overrides and the team's pipeline are human decisions).
    pub fn require_human(&self, action: &'static str) -> Result<(), DomainError> {
        match self.actor {
            Actor::Human(_) => Ok(()),
            _ => Err(DomainError::HumanRequired { action }),
        }
    }
}

/// A stream's state and its rules, as pure functions.
pub trait Aggregate: Clone + Default + fmt::Debug + Send + Sync + 'static {
    type Event: DomainEvent;
    type Command: fmt::Debug + Send + Sync;

    /// Whether a command on this stream continues the trace of the stream's latest event when
    /// its caller is in another trace (see [`crate::domain::CommandHandler::execute`]): true
    /// for a lead, whose journey is one trace; false for shared streams (an account's slots,
    /// the department), whose events belong to many journeys.
    const CONTINUES_TRACE: bool = false;

    /// Applies one recorded fact. No rules here: what is in the log happened.
    fn evolve(self, event: &Self::Event) -> Self;

    /// Every rule: the events `command` produces in this state, or why it is refused. An empty
    /// list means the command was already carried out (a retried step).
    fn decide(
        &self,
        command: &Self::Command,
        context: &DecisionContext,
    ) -> Result<Vec<Self::Event>, DomainError>;

    /// The state after `events`, from the empty stream.
    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self {
        events.into_iter().fold(Self::default(), Self::evolve)
    }
}

/// The caller's side of a command: who acts, when (by the domain clock: simulated time in a
/// simulation), why, and the LLM usage behind the decision. Copied into every event appended.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandMetadata {
    pub actor: Actor,
    pub occurred_at: DateTime<Utc>,
    /// One id per lead journey or per daily cycle.
    pub correlation_id: Option<Uuid>,
    /// The event or command that caused this command.
    pub causation_id: Option<Uuid>,
    pub traceparent: Option<String>,
    pub llm: Option<LlmUsage>,
    /// A process-manager step name: with the causation id it makes the appended events' ids
    /// deterministic ([`step_event_id`]), so a retried step is stored once.
    pub step: Option<String>,
}

impl CommandMetadata {
    pub fn new(actor: Actor, occurred_at: DateTime<Utc>) -> Self {
        Self {
            actor,
            occurred_at,
            correlation_id: None,
            causation_id: None,
            traceparent: None,
            llm: None,
            step: None,
        }
    }

    /// A command caused by a recorded event: same journey (correlation), caused by that event,
    /// same trace.
    pub fn caused_by(cause: &RecordedEvent, actor: Actor, occurred_at: DateTime<Utc>) -> Self {
        Self {
            correlation_id: cause.metadata.correlation_id.or(Some(cause.event_id)),
            causation_id: Some(cause.event_id),
            traceparent: cause.metadata.traceparent.clone(),
            ..Self::new(actor, occurred_at)
        }
    }

    pub fn with_correlation(mut self, correlation_id: Uuid) -> Self {
        self.correlation_id = Some(correlation_id);
        self
    }

    pub fn with_causation(mut self, causation_id: Uuid) -> Self {
        self.causation_id = Some(causation_id);
        self
    }

    pub fn with_traceparent(mut self, traceparent: Option<String>) -> Self {
        self.traceparent = traceparent;
        self
    }

    pub fn with_llm(mut self, usage: Option<LlmUsage>) -> Self {
        self.llm = usage;
        self
    }

    /// Makes this a process-manager step of `cause`: causation is `cause` and the events get
    /// ids derived from (`cause`, `step`).
    pub fn with_step(mut self, cause: Uuid, step: impl Into<String>) -> Self {
        self.causation_id = Some(cause);
        self.step = Some(step.into());
        self
    }

    /// What `decide` sees.
    pub fn context(&self) -> DecisionContext {
        DecisionContext::new(self.occurred_at, self.actor.clone())
    }

    /// The metadata stored with each event.
    pub fn event_metadata(&self) -> Metadata {
        let mut metadata = Metadata::new(self.actor.clone(), self.occurred_at)
            .with_traceparent(self.traceparent.clone())
            .with_llm(self.llm.clone());
        metadata.correlation_id = self.correlation_id;
        metadata.causation_id = self.causation_id;
        metadata
    }

    /// The id of the `index`-th event of this command: deterministic for a step (the first is
    /// exactly `step_event_id(cause, step)`), else a fresh time-ordered id.
    pub fn event_id(&self, index: usize) -> Uuid {
        match (&self.step, self.causation_id) {
            (Some(step), Some(cause)) if index == 0 => step_event_id(cause, step),
            (Some(step), Some(cause)) => step_event_id(cause, &format!("{step}#{index}")),
            _ => Uuid::now_v7(),
        }
    }

    /// The rows to append for `events`.
    pub fn new_events<E: DomainEvent>(&self, events: &[E]) -> Vec<NewEvent> {
        let metadata = self.event_metadata();
        events
            .iter()
            .enumerate()
            .map(|(index, event)| {
                event
                    .to_new_event(metadata.clone())
                    .with_event_id(self.event_id(index))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_metadata_gives_deterministic_ids() {
        let cause = Uuid::now_v7();
        let at = "2026-11-25T10:00:00Z".parse().unwrap();
        let metadata =
            CommandMetadata::new(Actor::agent("outreach"), at).with_step(cause, "reserve-slot");
        assert_eq!(metadata.event_id(0), step_event_id(cause, "reserve-slot"));
        assert_eq!(metadata.event_id(1), metadata.event_id(1));
        assert_ne!(metadata.event_id(0), metadata.event_id(1));
        let plain = CommandMetadata::new(Actor::agent("outreach"), at);
        assert_ne!(plain.event_id(0), plain.event_id(0));
    }

    #[test]
    fn command_metadata_lands_in_event_metadata() {
        let at = "2026-11-25T10:00:00Z".parse().unwrap();
        let usage = LlmUsage {
            model: "gpt-4o-mini".into(),
            prompt_tokens: 120,
            completion_tokens: 30,
            cached: true,
            fallback: false,
            fallback_reason: None,
        };
        let correlation = Uuid::now_v7();
        let cause = Uuid::now_v7();
        let metadata = CommandMetadata::new(Actor::agent("lead_finder"), at)
            .with_correlation(correlation)
            .with_causation(cause)
            .with_llm(Some(usage.clone()))
            .event_metadata();
        assert_eq!(metadata.occurred_at, at);
        assert_eq!(metadata.correlation_id, Some(correlation));
        assert_eq!(metadata.causation_id, Some(cause));
        assert_eq!(metadata.actor, Actor::agent("lead_finder"));
        assert_eq!(metadata.llm, Some(usage));
    }
}
