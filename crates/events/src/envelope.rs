//! The event envelope: what is appended ([`NewEvent`]), what is read back ([`RecordedEvent`]),
//! the metadata every event carries, and the opaque [`Checkpoint`] of a position in the log.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::StoreError;

/// Who did something: an agent, a human (by user name), or a system component.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum Actor {
    /// One of the agents, e.g. `lead_finder`, `outreach`, `sales_manager`.
    Agent(String),
    /// A person, by user name (from an API token, the sheet, or the CLI user).
    Human(String),
    /// Infrastructure: the CLI, an import, a webhook, the sheet sync.
    System(String),
}

impl Actor {
    /// The agent actor with this name.
    pub fn agent(name: impl Into<String>) -> Self {
        Self::Agent(name.into())
    }

    /// The human actor with this user name.
    pub fn human(name: impl Into<String>) -> Self {
        Self::Human(name.into())
    }

    /// A system component.
    pub fn system(name: impl Into<String>) -> Self {
        Self::System(name.into())
    }

    /// `agent`, `human` or `system`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Agent(_) => "agent",
            Self::Human(_) => "human",
            Self::System(_) => "system",
        }
    }

    /// The agent's, person's or component's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Agent(name) | Self::Human(name) | Self::System(name) => name,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.name())
    }
}

impl FromStr for Actor {
    type Err = String;

    /// Parses `agent:NAME`, `human:NAME` or `system:NAME`; a bare name is a human.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once(':') {
            Some(("agent", name)) if !name.is_empty() => Ok(Self::agent(name)),
            Some(("human", name)) if !name.is_empty() => Ok(Self::human(name)),
            Some(("system", name)) if !name.is_empty() => Ok(Self::system(name)),
            Some(_) => Err(format!(
                "actor {text:?} must be agent:NAME, human:NAME or system:NAME"
            )),
            None if !text.trim().is_empty() => Ok(Self::human(text.trim())),
            None => Err("actor must not be empty".to_owned()),
        }
    }
}

/// Token usage of an LLM decision that caused an event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlmUsage {
    pub model: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// Whether the answer came from the response cache.
    #[serde(default)]
    pub cached: bool,
    /// Whether the answer came from a fallback (another provider or the rules engine).
    #[serde(default)]
    pub fallback: bool,
    /// Why the model's answer was not used although it arrived, when the rules wrote the
    /// result instead: a short code naming the check that refused it (for a draft: `link`,
    /// `email_address`, `payload_word`, `copied_profile_text`, `wrong_kind`,
    /// `wrong_classification`, `too_long`, `invalid`). Never the refused text nor anything personal. Absent in events recorded
    /// before it existed, and whenever nothing was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
}

/// Metadata carried by every event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// The domain clock's time of the fact (simulated time in a simulation).
    #[serde(with = "rfc3339")]
    pub occurred_at: DateTime<Utc>,
    /// One id per lead journey or per daily cycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The event or command that caused this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    pub actor: Actor,
    /// W3C trace context of the span that appended the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Present when an LLM decision caused the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmUsage>,
    /// Free-form fields.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Metadata {
    /// Metadata for an event that happened at `occurred_at`, done by `actor`.
    pub fn new(actor: Actor, occurred_at: DateTime<Utc>) -> Self {
        Self {
            occurred_at,
            correlation_id: None,
            causation_id: None,
            actor,
            traceparent: None,
            llm: None,
            extra: Map::new(),
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

    /// Metadata for an event caused by `cause`: same correlation, causation = cause's event id.
    pub fn caused_by(cause: &RecordedEvent, actor: Actor, occurred_at: DateTime<Utc>) -> Self {
        Self {
            correlation_id: cause.metadata.correlation_id.or(Some(cause.event_id)),
            causation_id: Some(cause.event_id),
            traceparent: cause.metadata.traceparent.clone(),
            ..Self::new(actor, occurred_at)
        }
    }
}

/// Serialises times as RFC 3339 with microseconds and a `Z`, so stored metadata sorts as text.
pub mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        time: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        // Parsed from the borrowed text where the input allows it: no String per timestamp.
        struct Rfc3339;
        impl serde::de::Visitor<'_> for Rfc3339 {
            type Value = DateTime<Utc>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an RFC 3339 time")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
                DateTime::parse_from_rfc3339(text)
                    .map(|time| time.with_timezone(&Utc))
                    .map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Rfc3339)
    }
}

/// An event about to be appended.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    /// Idempotency key: appending the same event id twice stores it once.
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub data: Value,
    pub metadata: Metadata,
}

impl NewEvent {
    /// A new event with a fresh time-ordered id and schema version 1.
    pub fn new(event_type: impl Into<String>, data: Value, metadata: Metadata) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            schema_version: 1,
            data,
            metadata,
        }
    }

    /// Replaces the id, e.g. with a deterministic [`step_event_id`].
    pub fn with_event_id(mut self, event_id: Uuid) -> Self {
        self.event_id = event_id;
        self
    }

    pub fn with_schema_version(mut self, schema_version: i32) -> Self {
        self.schema_version = schema_version;
        self
    }
}

/// The id of the event a process manager appends for `step` because of `cause`: the same cause
/// and step always give the same id, so a retried step after a crash is a no-op append.
pub fn step_event_id(cause: Uuid, step: &str) -> Uuid {
    Uuid::new_v5(&cause, step.as_bytes())
}

/// An event as stored in the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub global_position: i64,
    /// The writing transaction's id (PostgreSQL `xid8`); 0 on SQLite.
    pub transaction_id: i64,
    pub stream_id: String,
    pub stream_version: i64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub data: Value,
    pub metadata: Metadata,
    #[serde(with = "rfc3339")]
    pub recorded_at: DateTime<Utc>,
}

impl RecordedEvent {
    /// The position just after this event, to resume reading from.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            transaction_id: self.transaction_id,
            global_position: self.global_position,
        }
    }

    /// Deserialises the body into a typed event.
    pub fn decode<T: serde::de::DeserializeOwned>(&self) -> Result<T, StoreError> {
        serde_json::from_value(self.data.clone()).map_err(|source| StoreError::Decode {
            event_type: self.event_type.clone(),
            global_position: self.global_position,
            message: source.to_string(),
        })
    }

    /// The JSON line `salesdept log read --json` prints: every column by name plus `checkpoint`.
    pub fn to_json_line(&self) -> Value {
        serde_json::json!({
            "global_position": self.global_position,
            "transaction_id": self.transaction_id,
            "stream_id": self.stream_id,
            "stream_version": self.stream_version,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "schema_version": self.schema_version,
            "data": self.data,
            "metadata": self.metadata,
            "recorded_at": self.recorded_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            "checkpoint": self.checkpoint().to_string(),
        })
    }
}

/// A position in the whole log: `(transaction_id, global_position)` of the last event read.
/// Its text form (`<transaction>-<position>`) is opaque to users.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Checkpoint {
    pub transaction_id: i64,
    pub global_position: i64,
}

impl Checkpoint {
    /// Before the first event.
    pub const START: Checkpoint = Checkpoint {
        transaction_id: 0,
        global_position: 0,
    };
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.transaction_id, self.global_position)
    }
}

impl FromStr for Checkpoint {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || StoreError::InvalidCheckpoint(text.to_owned());
        let (transaction, position) = text.split_once('-').ok_or_else(invalid)?;
        let transaction_id: i64 = transaction.parse().map_err(|_| invalid())?;
        let global_position: i64 = position.parse().map_err(|_| invalid())?;
        if transaction_id < 0 || global_position < 0 {
            return Err(invalid());
        }
        Ok(Self {
            transaction_id,
            global_position,
        })
    }
}

/// The stream version an append expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream's version is.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version.
    Exact(i64),
}

impl ExpectedVersion {
    /// What a stream read at `version` (None: no stream) expects.
    pub fn from_read(version: Option<i64>) -> Self {
        match version {
            None | Some(0) => Self::NoStream,
            Some(version) => Self::Exact(version),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(version) => write!(f, "{version}"),
        }
    }
}

impl FromStr for ExpectedVersion {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "any" => Ok(Self::Any),
            "none" | "no-stream" | "no_stream" => Ok(Self::NoStream),
            number => match number.parse::<i64>() {
                Ok(0) => Ok(Self::NoStream),
                Ok(version) if version > 0 => Ok(Self::Exact(version)),
                _ => Err(format!(
                    "expected version {text:?} must be any, none or a positive number"
                )),
            },
        }
    }
}

/// What an append stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendResult {
    /// The stream's version after the append.
    pub stream_version: i64,
    /// Global positions of the appended events, in order.
    pub global_positions: Vec<i64>,
    /// True when every event was already stored (an idempotent retry): nothing was written.
    pub already_stored: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_round_trips_through_text() {
        let checkpoint = Checkpoint {
            transaction_id: 7_000_000_001,
            global_position: 42,
        };
        assert_eq!(
            checkpoint.to_string().parse::<Checkpoint>().unwrap(),
            checkpoint
        );
    }

    #[test]
    fn malformed_checkpoints_are_refused() {
        for text in ["", "12", "a-b", "1-", "-1-2", "1-2-3"] {
            assert!(text.parse::<Checkpoint>().is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn expected_version_parses_the_cli_forms() {
        assert_eq!("any".parse(), Ok(ExpectedVersion::Any));
        assert_eq!("none".parse(), Ok(ExpectedVersion::NoStream));
        assert_eq!("0".parse(), Ok(ExpectedVersion::NoStream));
        assert_eq!("3".parse(), Ok(ExpectedVersion::Exact(3)));
        assert!("-1".parse::<ExpectedVersion>().is_err());
        assert!("latest".parse::<ExpectedVersion>().is_err());
    }

    #[test]
    fn actor_parses_and_displays() {
        let actor: Actor = "agent:outreach".parse().unwrap();
        assert_eq!(actor, Actor::agent("outreach"));
        assert_eq!(actor.to_string(), "agent:outreach");
        assert_eq!("alice".parse::<Actor>().unwrap(), Actor::human("alice"));
        assert!("robot:x".parse::<Actor>().is_err());
    }

    #[test]
    fn metadata_keeps_free_form_fields() {
        let occurred_at = "2026-11-25T09:00:00.123456Z".parse().unwrap();
        let mut metadata = Metadata::new(Actor::agent("lead_finder"), occurred_at);
        metadata.extra.insert("source".into(), Value::from("csv"));
        let json = serde_json::to_value(&metadata).unwrap();
        assert_eq!(json["source"], "csv");
        let back: Metadata = serde_json::from_value(json).unwrap();
        assert_eq!(back, metadata);
    }

    #[test]
    fn step_ids_are_deterministic() {
        let cause = Uuid::now_v7();
        assert_eq!(step_event_id(cause, "send"), step_event_id(cause, "send"));
        assert_ne!(
            step_event_id(cause, "send"),
            step_event_id(cause, "reserve")
        );
    }
}
