//! The SQLite event store: the zero-setup embedded default, one file, no server.
//!
//! SQLite serialises writers, so an append runs in a `BEGIN IMMEDIATE` transaction on the
//! single-connection write pool: it reads the stream's version, checks the expectation and the
//! event ids, and inserts, with no other writer in between (other processes wait on the
//! busy timeout). Because commits happen in position order, `global_position` alone is a
//! safe checkpoint; `transaction_id` is always 0. Wake-ups are in-process; other processes
//! are seen by polling.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use tokio::sync::watch;
use uuid::Uuid;

use super::{EventStore, validate_append};
use crate::envelope::{
    AppendResult, Checkpoint, ExpectedVersion, Metadata, NewEvent, RecordedEvent,
};
use crate::error::StoreError;
use crate::pii_vault::{PiiVault, sealed_subject, subject_of};
use crate::upcast::Upcasters;

const SELECT_COLUMNS: &str = "global_position, transaction_id, stream_id, stream_version, \
     event_id, event_type, schema_version, data, metadata, recorded_at";

/// A `LIMIT` written into the statement, never bound: SQLite re-prepares a statement whose
/// `LIMIT` is a parameter every time that parameter is bound anew (the plan depends on it), which
/// made every stream or log read parse its SQL again. The limits in use are a handful of
/// constants, so each stays one cached statement. None (or a negative limit) reads everything.
pub(crate) fn limit_clause(limit: Option<i64>) -> String {
    match limit {
        Some(limit) if limit >= 0 => format!(" LIMIT {limit}"),
        _ => String::new(),
    }
}

/// The event log in a SQLite file.
#[derive(Clone)]
pub struct SqliteEventStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    write_pool: SqlitePool,
    read_pool: SqlitePool,
    upcasters: Upcasters,
    wake_sender: watch::Sender<u64>,
    /// Seals personal data on append and opens it on read, once enabled.
    vault: OnceLock<Arc<PiiVault>>,
}

impl std::fmt::Debug for SqliteEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteEventStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl SqliteEventStore {
    /// Opens (creating if missing, with its directory) the database file at `path`.
    pub async fn open(path: &Path, upcasters: Upcasters) -> Result<Self, StoreError> {
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|error| StoreError::DataDirectory {
                path: parent.display().to_string(),
                message: error.to_string(),
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            // The query builders (event queries, projections) make many distinct statements;
            // sqlx's default of 100 per connection evicted and re-prepared them.
            .statement_cache_capacity(512);
        // One writer connection: SQLite allows one writer at a time anyway, and queueing in the
        // pool is cheaper than spinning on SQLITE_BUSY.
        let write_pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(options.clone())
            .await?;
        let read_pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        let (wake_sender, _) = watch::channel(0);
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                write_pool,
                read_pool,
                upcasters,
                wake_sender,
                vault: OnceLock::new(),
            }),
        })
    }

    /// Encrypts personal data from now on (see [`crate::pii_vault`]). Set once, at start.
    pub fn enable_pii_vault(&self, vault: Arc<PiiVault>) {
        let _ = self.inner.vault.set(vault);
    }

    fn vault(&self) -> Option<&Arc<PiiVault>> {
        self.inner.vault.get()
    }

    /// Makes sure the data keys of `subjects` are cached, creating missing ones when `create`.
    async fn ensure_keys(
        &self,
        vault: &PiiVault,
        subjects: &[&str],
        create: bool,
    ) -> Result<(), StoreError> {
        let missing = vault.missing(subjects.iter().copied());
        if missing.is_empty() {
            return Ok(());
        }
        if create {
            for subject in &missing {
                let (_, wrapped) = vault.new_wrapped_key();
                sqlx::query("INSERT INTO pii_keys (subject, wrapped_key, created_at) VALUES (?1, ?2, ?3) ON CONFLICT (subject) DO NOTHING")
                    .bind(subject)
                    .bind(wrapped)
                    .bind(sqlite_time(Utc::now()))
                    .execute(&self.inner.write_pool)
                    .await?;
            }
        }
        let list = serde_json::to_string(&missing)
            .map_err(|error| StoreError::Vault(error.to_string()))?;
        let pool = if create {
            &self.inner.write_pool
        } else {
            &self.inner.read_pool
        };
        let rows = sqlx::query("SELECT subject, wrapped_key FROM pii_keys WHERE subject IN (SELECT value FROM json_each(?1))")
            .bind(list)
            .fetch_all(pool)
            .await?;
        for row in &rows {
            let subject: String = row.try_get(0)?;
            let wrapped: Option<String> = row.try_get(1)?;
            vault.learn(&subject, wrapped.as_deref())?;
        }
        Ok(())
    }

    /// Shreds a subject's data key: its personal data becomes unreadable everywhere.
    pub async fn forget_subject(&self, subject: &str) -> Result<(), StoreError> {
        let now = sqlite_time(Utc::now());
        sqlx::query(
            "INSERT INTO pii_keys (subject, wrapped_key, created_at, forgotten_at) VALUES (?1, NULL, ?2, ?2) \
             ON CONFLICT (subject) DO UPDATE SET wrapped_key = NULL, forgotten_at = ?2",
        )
        .bind(subject)
        .bind(now)
        .execute(&self.inner.write_pool)
        .await?;
        if let Some(vault) = self.vault() {
            vault.forget_cached(subject);
        }
        Ok(())
    }

    /// Opens sealed personal data (fetching the keys in one query) and upcasts.
    async fn finish(
        &self,
        mut events: Vec<RecordedEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if let Some(vault) = self.vault().cloned() {
            let subjects: Vec<&str> = events
                .iter()
                .filter_map(|event| sealed_subject(&event.data))
                .collect();
            self.ensure_keys(&vault, &subjects, false).await?;
            for event in &mut events {
                vault.open(&mut event.data)?;
            }
        }
        for event in &mut events {
            self.inner.upcasters.upcast(event)?;
        }
        Ok(events)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The single-connection pool every write goes through.
    pub fn write_pool(&self) -> &SqlitePool {
        &self.inner.write_pool
    }

    /// The pool for reads (read-only connections; WAL lets them run beside the writer).
    pub fn read_pool(&self) -> &SqlitePool {
        &self.inner.read_pool
    }

    /// Applies `migrations/sqlite` (idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../../migrations/sqlite")
            .run(&self.inner.write_pool)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.inner.write_pool.close().await;
        self.inner.read_pool.close().await;
    }

    /// Signals in-process readers that new events may be readable.
    pub fn woke(&self) {
        self.inner
            .wake_sender
            .send_modify(|count| *count = count.wrapping_add(1));
    }

    /// Events matching `query`, one page: `json_extract` on `metadata`; occurred_at is RFC 3339
    /// text with micros and `Z`, so text comparison orders it as time.
    #[tracing::instrument(level = "debug", skip_all, err)]
    pub async fn query_events(
        &self,
        query: &super::EventQuery,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        use super::{EventCursor, EventOrder, query_time};
        let mut sql = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
            "SELECT {SELECT_COLUMNS} FROM events WHERE 1"
        ));
        if let Some(from) = query.occurred_from {
            sql.push(" AND json_extract(metadata, '$.occurred_at') >= ")
                .push_bind(query_time(from));
        }
        if let Some(to) = query.occurred_to {
            sql.push(" AND json_extract(metadata, '$.occurred_at') <= ")
                .push_bind(query_time(to));
        }
        if let Some(actor) = &query.actor {
            sql.push(" AND json_extract(metadata, '$.actor.kind') = ")
                .push_bind(actor.kind().to_owned())
                .push(" AND json_extract(metadata, '$.actor.name') = ")
                .push_bind(actor.name().to_owned());
        }
        if let Some(event_type) = &query.event_type {
            sql.push(" AND event_type = ").push_bind(event_type.clone());
        }
        if let Some(prefix) = &query.stream_prefix {
            // SQLite's LIKE ignores ASCII case; stream ids are case-sensitive, so compare the
            // prefix itself.
            sql.push(" AND substr(stream_id, 1, ")
                .push_bind(prefix.chars().count() as i64)
                .push(") = ")
                .push_bind(prefix.clone());
        }
        if let Some(correlation_id) = query.correlation_id {
            sql.push(" AND json_extract(metadata, '$.correlation_id') = ")
                .push_bind(correlation_id.to_string());
        }
        match &query.after {
            EventCursor::Start => {}
            EventCursor::Global(position) => {
                sql.push(" AND global_position > ").push_bind(*position);
            }
            EventCursor::Stream { stream_id, version } => {
                sql.push(" AND (stream_id, stream_version) > (")
                    .push_bind(stream_id.clone())
                    .push(", ")
                    .push_bind(*version)
                    .push(")");
            }
        }
        sql.push(match query.order {
            EventOrder::Global => " ORDER BY global_position",
            EventOrder::Stream => " ORDER BY stream_id, stream_version",
        });
        sql.push(limit_clause(Some(query.limit)));
        let rows = sql.build().fetch_all(&self.inner.read_pool).await?;
        let events = rows
            .iter()
            .map(|row| self.decode_row(row))
            .collect::<Result<Vec<_>, _>>()?;
        self.finish(events).await
    }

    fn decode_row(&self, row: &SqliteRow) -> Result<RecordedEvent, StoreError> {
        let global_position: i64 = row.try_get(0)?;
        let event_type: String = row.try_get(5)?;
        let decode_error = |what: &str, message: String| StoreError::Decode {
            event_type: event_type.clone(),
            global_position,
            message: format!("{what}: {message}"),
        };
        let event_id: String = row.try_get(4)?;
        let event_id = Uuid::parse_str(&event_id)
            .map_err(|error| decode_error("event_id", error.to_string()))?;
        let data: String = row.try_get(7)?;
        let data: Value =
            serde_json::from_str(&data).map_err(|error| decode_error("data", error.to_string()))?;
        let metadata: String = row.try_get(8)?;
        let metadata: Metadata = serde_json::from_str(&metadata)
            .map_err(|error| decode_error("metadata", error.to_string()))?;
        let recorded_at: String = row.try_get(9)?;
        let recorded_at = DateTime::parse_from_rfc3339(&recorded_at)
            .map_err(|error| decode_error("recorded_at", error.to_string()))?
            .with_timezone(&Utc);
        let event = RecordedEvent {
            global_position,
            transaction_id: row.try_get(1)?,
            stream_id: row.try_get(2)?,
            stream_version: row.try_get(3)?,
            event_id,
            event_type: event_type.clone(),
            schema_version: row.try_get(6)?,
            data,
            metadata,
            recorded_at,
        };
        Ok(event)
    }
}

/// The time format stored in SQLite TEXT columns: sortable RFC 3339 UTC.
pub fn sqlite_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[async_trait]
impl EventStore for SqliteEventStore {
    // A failed append is logged at debug: a version conflict is routine (command handlers
    // retry it) and the callers report the failures that matter.
    #[tracing::instrument(skip_all, fields(stream_id, events = events.len(), %expected), err(level = "debug"))]
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        mut events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        validate_append(stream_id, &events)?;
        crate::trace::stamp_traceparent(&mut events);
        // Keys are made before the write transaction: the one write connection is its.
        let vault = self.vault().cloned();
        let subjects: Vec<Option<String>> = events
            .iter()
            .map(|event| subject_of(stream_id, &event.data))
            .collect();
        if let Some(vault) = &vault {
            let wanted: Vec<&str> = subjects.iter().flatten().map(String::as_str).collect();
            self.ensure_keys(vault, &wanted, true).await?;
        }
        let mut tx = self.inner.write_pool.begin_with("BEGIN IMMEDIATE").await?;

        // A retried append: every id already stored with the same stream and content.
        let ids = serde_json::to_string(
            &events
                .iter()
                .map(|event| event.event_id.to_string())
                .collect::<Vec<_>>(),
        )
        .map_err(|error| StoreError::InvalidAppend(error.to_string()))?;
        let stored = sqlx::query(
            "SELECT event_id, stream_id, event_type, data, global_position, stream_version \
             FROM events WHERE event_id IN (SELECT value FROM json_each(?1)) ORDER BY stream_version",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        if !stored.is_empty() {
            let mut positions = Vec::with_capacity(stored.len());
            let mut last_version = 0;
            for row in &stored {
                let event_id: String = row.try_get(0)?;
                let stored_stream: String = row.try_get(1)?;
                let stored_type: String = row.try_get(2)?;
                let stored_data: String = row.try_get(3)?;
                let mut stored_data: Value =
                    serde_json::from_str(&stored_data).unwrap_or(Value::Null);
                if let Some(vault) = &vault {
                    vault.open(&mut stored_data)?;
                }
                let event_id = Uuid::parse_str(&event_id).unwrap_or_default();
                let matches = stored_stream == stream_id
                    && events.iter().any(|event| {
                        event.event_id == event_id
                            && event.event_type == stored_type
                            && event.data == stored_data
                    });
                if !matches || stored.len() != events.len() {
                    return Err(StoreError::DuplicateEventId {
                        event_id,
                        stored_stream_id: stored_stream,
                    });
                }
                positions.push(row.try_get::<i64, _>(4)?);
                last_version = row.try_get::<i64, _>(5)?;
            }
            return Ok(AppendResult {
                stream_version: last_version,
                global_positions: positions,
                already_stored: true,
            });
        }

        let current: Option<i64> =
            sqlx::query_scalar("SELECT MAX(stream_version) FROM events WHERE stream_id = ?1")
                .bind(stream_id)
                .fetch_one(&mut *tx)
                .await?;
        let base = match (expected, current) {
            (ExpectedVersion::Any, current) => current.unwrap_or(0),
            (ExpectedVersion::NoStream, None) => 0,
            (ExpectedVersion::Exact(version), Some(current)) if version == current => current,
            (expected, actual) => {
                return Err(StoreError::Conflict {
                    stream_id: stream_id.to_owned(),
                    expected,
                    actual,
                });
            }
        };

        let recorded_at = sqlite_time(Utc::now());
        let mut positions = Vec::with_capacity(events.len());
        for (offset, event) in events.iter().enumerate() {
            let mut data = event.data.clone();
            if let (Some(vault), Some(subject)) = (&vault, &subjects[offset])
                && !vault.seal(subject, &mut data)
            {
                return Err(StoreError::Vault(format!("no data key for {subject}")));
            }
            let metadata = serde_json::to_string(&event.metadata)
                .map_err(|error| StoreError::InvalidAppend(error.to_string()))?;
            let position: i64 = sqlx::query_scalar(
                "INSERT INTO events (transaction_id, stream_id, stream_version, event_id, event_type, \
                 schema_version, data, metadata, recorded_at) \
                 VALUES (0, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING global_position",
            )
            .bind(stream_id)
            .bind(base + 1 + offset as i64)
            .bind(event.event_id.to_string())
            .bind(&event.event_type)
            .bind(event.schema_version)
            .bind(data.to_string())
            .bind(metadata)
            .bind(&recorded_at)
            .fetch_one(&mut *tx)
            .await?;
            positions.push(position);
        }
        tx.commit().await?;
        self.woke();
        Ok(AppendResult {
            stream_version: base + events.len() as i64,
            global_positions: positions,
            already_stored: false,
        })
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: i64,
        limit: Option<i64>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {SELECT_COLUMNS} FROM events WHERE stream_id = ?1 AND stream_version >= ?2 \
             ORDER BY stream_version{}",
            limit_clause(limit)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(stream_id)
            .bind(from_version)
            .fetch_all(&self.inner.read_pool)
            .await?;
        let events = rows
            .iter()
            .map(|row| self.decode_row(row))
            .collect::<Result<Vec<_>, _>>()?;
        self.finish(events).await
    }

    async fn read_all(
        &self,
        after: Checkpoint,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {SELECT_COLUMNS} FROM events WHERE global_position > ?1 \
             ORDER BY global_position{}",
            limit_clause(Some(limit))
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after.global_position)
            .fetch_all(&self.inner.read_pool)
            .await?;
        let events = rows
            .iter()
            .map(|row| self.decode_row(row))
            .collect::<Result<Vec<_>, _>>()?;
        self.finish(events).await
    }

    async fn stream_version(&self, stream_id: &str) -> Result<Option<i64>, StoreError> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(stream_version) FROM events WHERE stream_id = ?1")
                .bind(stream_id)
                .fetch_one(&self.inner.read_pool)
                .await?;
        Ok(version)
    }

    fn wake_ups(&self) -> watch::Receiver<u64> {
        self.inner.wake_sender.subscribe()
    }
}
