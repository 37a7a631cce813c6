//! The [`EventStore`] trait and its two implementations: [`postgres::PostgresEventStore`] for
//! production and [`sqlite::SqliteEventStore`], the zero-setup embedded default. [`Store`] is
//! whichever of the two a database URL names, and also hands out transactions ([`StoreTx`]) so
//! a projection can commit its rows and its checkpoint together.

pub mod postgres;
pub mod sqlite;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::envelope::{AppendResult, Checkpoint, ExpectedVersion, NewEvent, RecordedEvent};
use crate::error::StoreError;
use crate::upcast::Upcasters;

pub use postgres::{PostgresEventStore, PostgresOptions};
pub use sqlite::SqliteEventStore;

/// The event log.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends events to one stream in one short transaction, if the stream is at `expected`.
    /// Re-appending events whose ids are already stored with the same stream and content
    /// succeeds without writing (`already_stored`).
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError>;

    /// The stream's events with `stream_version >= from_version`, in order, at most `limit`.
    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: i64,
        limit: Option<i64>,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `limit` events of the whole log after `after`, in the log's global order. Never
    /// returns an event past one whose transaction may still commit.
    async fn read_all(
        &self,
        after: Checkpoint,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The stream's current version, or None when it has no events.
    async fn stream_version(&self, stream_id: &str) -> Result<Option<i64>, StoreError>;

    /// A receiver that changes whenever new events may be readable: a wake-up only, readers
    /// must still poll (see [`wait_for_events`]).
    fn wake_ups(&self) -> watch::Receiver<u64>;
}

/// Waits until the store signals new events or `poll_interval` passes, whichever is first.
pub async fn wait_for_events(wake_ups: &mut watch::Receiver<u64>, poll_interval: Duration) {
    let _ = tokio::time::timeout(poll_interval, wake_ups.changed()).await;
}

/// Rejects appends that can never succeed, before touching the database.
pub(crate) fn validate_append(stream_id: &str, events: &[NewEvent]) -> Result<(), StoreError> {
    if stream_id.trim().is_empty() {
        return Err(StoreError::InvalidAppend(
            "stream id must not be empty".into(),
        ));
    }
    if events.is_empty() {
        return Err(StoreError::InvalidAppend(
            "an append needs at least one event".into(),
        ));
    }
    let mut ids = std::collections::HashSet::with_capacity(events.len());
    for event in events {
        if event.event_type.trim().is_empty() {
            return Err(StoreError::InvalidAppend(
                "event type must not be empty".into(),
            ));
        }
        if event.schema_version < 1 {
            return Err(StoreError::InvalidAppend(format!(
                "schema version of {} must be at least 1",
                event.event_type
            )));
        }
        if !ids.insert(event.event_id) {
            return Err(StoreError::InvalidAppend(format!(
                "event id {} appears twice in one append",
                event.event_id
            )));
        }
    }
    Ok(())
}

/// A filtered read of the log for audits and time travel: events by domain time
/// (`metadata.occurred_at`, inclusive bounds), actor, type and stream prefix, paged by a cursor
/// so a caller streams any range with flat memory. Unlike [`EventStore::read_all`] it does not
/// stop at the visibility horizon: it is a query over what is committed now, not a feed.
#[derive(Clone, Debug, PartialEq)]
pub struct EventQuery {
    pub occurred_from: Option<chrono::DateTime<chrono::Utc>>,
    pub occurred_to: Option<chrono::DateTime<chrono::Utc>>,
    pub actor: Option<crate::envelope::Actor>,
    pub event_type: Option<String>,
    /// Only streams whose id starts with this (e.g. `lead-`).
    pub stream_prefix: Option<String>,
    /// Only events with this `metadata.correlation_id`.
    pub correlation_id: Option<uuid::Uuid>,
    pub order: EventOrder,
    /// Where the previous page ended.
    pub after: EventCursor,
    pub limit: i64,
}

impl Default for EventQuery {
    fn default() -> Self {
        Self {
            occurred_from: None,
            occurred_to: None,
            actor: None,
            event_type: None,
            stream_prefix: None,
            correlation_id: None,
            order: EventOrder::Global,
            after: EventCursor::Start,
            limit: 1000,
        }
    }
}

/// The order of an [`EventQuery`]'s results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventOrder {
    /// By global position (insertion order).
    Global,
    /// By stream id, then stream version: one stream after another, for folds per stream.
    Stream,
}

/// Where an [`EventQuery`] page starts (exclusive).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum EventCursor {
    #[default]
    Start,
    Global(i64),
    Stream {
        stream_id: String,
        version: i64,
    },
}

impl EventCursor {
    /// The cursor just after `event` in `order`.
    pub fn after(event: &RecordedEvent, order: EventOrder) -> Self {
        match order {
            EventOrder::Global => Self::Global(event.global_position),
            EventOrder::Stream => Self::Stream {
                stream_id: event.stream_id.clone(),
                version: event.stream_version,
            },
        }
    }
}

/// The occurred_at bound as stored: RFC 3339 with microseconds and a `Z`, so text order is time
/// order.
pub(crate) fn query_time(time: chrono::DateTime<chrono::Utc>) -> String {
    time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// `LIKE` pattern for a prefix, with `\` escaping the wildcards.
pub(crate) fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A transaction on whichever database backs the store, handed to subscription handlers so
/// their writes commit with the subscription's checkpoint.
pub enum StoreTx {
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
}

impl StoreTx {
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Self::Postgres(tx) => tx.commit().await?,
            Self::Sqlite(tx) => tx.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        match self {
            Self::Postgres(tx) => tx.rollback().await?,
            Self::Sqlite(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}

/// The store a database URL names: PostgreSQL or SQLite.
#[derive(Clone, Debug)]
pub enum Store {
    Postgres(PostgresEventStore),
    Sqlite(SqliteEventStore),
}

/// Where the embedded default keeps its SQLite file.
pub const DEFAULT_SQLITE_PATH: &str = "data/salesdept.sqlite";

impl Store {
    /// Connects to `postgres://…` or `sqlite://…` (the file is created if missing) without
    /// running migrations.
    pub async fn connect(url: &str, upcasters: Upcasters) -> Result<Self, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(
                PostgresEventStore::connect(url, upcasters).await?,
            ))
        } else if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            Ok(Self::Sqlite(
                SqliteEventStore::open(Path::new(path), upcasters).await?,
            ))
        } else {
            Err(StoreError::InvalidDatabaseUrl(redact_url(url)))
        }
    }

    /// Applies the backend's migrations (idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Self::Postgres(store) => store.migrate().await,
            Self::Sqlite(store) => store.migrate().await,
        }
    }

    /// `postgres` or `sqlite`.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgres",
            Self::Sqlite(_) => "sqlite",
        }
    }

    /// Begins a short transaction for a projection's writes.
    pub async fn begin(&self) -> Result<StoreTx, StoreError> {
        Ok(match self {
            Self::Postgres(store) => StoreTx::Postgres(store.pool().begin().await?),
            Self::Sqlite(store) => {
                StoreTx::Sqlite(store.write_pool().begin_with("BEGIN IMMEDIATE").await?)
            }
        })
    }

    /// Events matching `query`, one page (see [`EventQuery`]); personal data opened as by every
    /// read.
    pub async fn query_events(&self, query: &EventQuery) -> Result<Vec<RecordedEvent>, StoreError> {
        match self {
            Self::Postgres(store) => store.query_events(query).await,
            Self::Sqlite(store) => store.query_events(query).await,
        }
    }

    /// Encrypts personal data from now on (see [`crate::pii_vault`]). Set once, at start.
    pub fn enable_pii_vault(&self, vault: std::sync::Arc<crate::pii_vault::PiiVault>) {
        match self {
            Self::Postgres(store) => store.enable_pii_vault(vault),
            Self::Sqlite(store) => store.enable_pii_vault(vault),
        }
    }

    /// Shreds the data key of `subject` (e.g. `lead-<uuid>`): crypto-shredding.
    pub async fn forget_subject(&self, subject: &str) -> Result<(), StoreError> {
        match self {
            Self::Postgres(store) => store.forget_subject(subject).await,
            Self::Sqlite(store) => store.forget_subject(subject).await,
        }
    }

    /// Closes the pools, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match self {
            Self::Postgres(store) => store.pool().close().await,
            Self::Sqlite(store) => store.close().await,
        }
    }
}

#[async_trait]
impl EventStore for Store {
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        match self {
            Self::Postgres(store) => store.append(stream_id, expected, events).await,
            Self::Sqlite(store) => store.append(stream_id, expected, events).await,
        }
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: i64,
        limit: Option<i64>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        match self {
            Self::Postgres(store) => store.read_stream(stream_id, from_version, limit).await,
            Self::Sqlite(store) => store.read_stream(stream_id, from_version, limit).await,
        }
    }

    async fn read_all(
        &self,
        after: Checkpoint,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        match self {
            Self::Postgres(store) => store.read_all(after, limit).await,
            Self::Sqlite(store) => store.read_all(after, limit).await,
        }
    }

    async fn stream_version(&self, stream_id: &str) -> Result<Option<i64>, StoreError> {
        match self {
            Self::Postgres(store) => store.stream_version(stream_id).await,
            Self::Sqlite(store) => store.stream_version(stream_id).await,
        }
    }

    fn wake_ups(&self) -> watch::Receiver<u64> {
        match self {
            Self::Postgres(store) => store.wake_ups(),
            Self::Sqlite(store) => store.wake_ups(),
        }
    }
}

/// A database URL with any password replaced, safe for messages and logs.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        let redacted = redact_url("postgres://app:s3cret@db.internal/sales");
        assert!(!redacted.contains("s3cret"), "{redacted}");
        assert!(redacted.contains("***"));
    }
}
