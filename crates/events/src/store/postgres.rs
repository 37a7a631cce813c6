//! The PostgreSQL event store.
//!
//! Write path: one append is one INSERT … SELECT FROM UNNEST statement, its own short
//! transaction and the first write of it. The expected version is enforced by the UNIQUE
//! (stream_id, stream_version) constraint (plus an EXISTS guard for `Exact`, in the same
//! statement, so an append can never leave a gap); no lock is taken and nothing is read first.
//! After the commit, a background task sends one coalesced NOTIFY per burst as a wake-up.
//!
//! Read path: the whole log is read in `(transaction_id, global_position)` order, only below
//! the visibility horizon `pg_snapshot_xmin(pg_current_snapshot())`, so an event whose
//! transaction commits late is never skipped. A transaction left open anywhere on the server
//! holds the horizon back and delays readers (it never loses events): set
//! `idle_in_transaction_session_timeout` on the server; this store sets it on its own sessions.

use std::str::FromStr;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{EventStore, validate_append};
use crate::envelope::{
    AppendResult, Checkpoint, ExpectedVersion, Metadata, NewEvent, RecordedEvent,
};
use crate::error::StoreError;
use crate::pii_vault::{PiiVault, sealed_subject, subject_of};
use crate::upcast::Upcasters;

/// The NOTIFY channel appends wake readers on.
pub const NOTIFY_CHANNEL: &str = "salesdept_events";

/// The shortest time between two NOTIFYs: the first append after a quiet spell is announced at
/// once; appends within this window after a NOTIFY are gathered into the next one.
const NOTIFY_COALESCE: Duration = Duration::from_millis(2);

/// Constraint names from the migration; a unique violation is mapped by these, never by text.
const STREAM_VERSION_CONSTRAINT: &str = "events_stream_version_key";
const EVENT_ID_CONSTRAINT: &str = "events_event_id_key";

/// How often an `Any` append is retried when a concurrent writer takes the next version.
const ANY_VERSION_ATTEMPTS: usize = 32;

/// The columns every read decodes, in [`PostgresEventStore::decode_row`]'s order. The `xid8` is
/// sent as it is (8 bytes in binary) and decoded here: a cast to text and bigint per row costs
/// the server more than the rest of the row's non-JSON columns together.
const SELECT_COLUMNS: &str = "global_position, transaction_id, \
     stream_id, stream_version, event_id, event_type, schema_version, data, metadata, recorded_at";

/// The event log in PostgreSQL.
#[derive(Clone)]
pub struct PostgresEventStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    upcasters: Upcasters,
    wake_sender: watch::Sender<u64>,
    notify_pending: Arc<Notify>,
    /// Stops the NOTIFY and LISTEN tasks (and closes their connections) when the store goes.
    shutdown: CancellationToken,
    /// Seals personal data on append and opens it on read, once enabled.
    vault: OnceLock<Arc<PiiVault>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl std::fmt::Debug for PostgresEventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresEventStore").finish_non_exhaustive()
    }
}

/// Options of the store's connection pool.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// Ends sessions of this store left idle inside a transaction, which would stall readers.
    pub idle_in_transaction_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            idle_in_transaction_timeout: Duration::from_secs(60),
        }
    }
}

impl PostgresEventStore {
    /// Connects with default pool options.
    pub async fn connect(url: &str, upcasters: Upcasters) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        Self::connect_with(options, PostgresOptions::default(), upcasters).await
    }

    /// Connects with explicit connection and pool options.
    pub async fn connect_with(
        connect: PgConnectOptions,
        options: PostgresOptions,
        upcasters: Upcasters,
    ) -> Result<Self, StoreError> {
        let timeout = format!("{}ms", options.idle_in_transaction_timeout.as_millis());
        let connect = connect
            .application_name("salesdept")
            .options([("idle_in_transaction_session_timeout", timeout.as_str())]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        Ok(Self::from_pool(pool, upcasters))
    }

    /// Wraps an existing pool (tests use the pool `#[sqlx::test]` made). Must be called inside
    /// a tokio runtime: it starts the NOTIFY sender and listener tasks.
    pub fn from_pool(pool: PgPool, upcasters: Upcasters) -> Self {
        let (wake_sender, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            pool,
            upcasters,
            wake_sender,
            notify_pending: Arc::new(Notify::new()),
            shutdown: CancellationToken::new(),
            vault: OnceLock::new(),
        });
        tokio::spawn(send_notifications(
            Arc::downgrade(&inner),
            inner.notify_pending.clone(),
            inner.shutdown.clone(),
        ));
        tokio::spawn(listen_for_notifications(
            Arc::downgrade(&inner),
            inner.shutdown.clone(),
        ));
        Self { inner }
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
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
            // One statement for every new key. It commits without waiting for its WAL flush:
            // a key is only used by an append that commits after it, synchronously, and that
            // flush covers this commit record too; a crash in between loses an unused key, which
            // the retried append makes again. (Forgetting stays a synchronous commit.)
            let wrapped: Vec<String> = missing.iter().map(|_| vault.new_wrapped_key().1).collect();
            sqlx::query(
                "WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true) AS setting) \
                 INSERT INTO pii_keys (subject, wrapped_key) \
                 SELECT k.subject, k.wrapped_key FROM relaxed, \
                 UNNEST($1::text[], $2::text[]) AS k(subject, wrapped_key) \
                 WHERE relaxed.setting IS NOT NULL ON CONFLICT (subject) DO NOTHING",
            )
            .bind(&missing)
            .bind(&wrapped)
            .execute(&self.inner.pool)
            .await?;
        }
        let rows = sqlx::query("SELECT subject, wrapped_key FROM pii_keys WHERE subject = ANY($1)")
            .bind(&missing)
            .fetch_all(&self.inner.pool)
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
        sqlx::query(
            "INSERT INTO pii_keys (subject, wrapped_key, forgotten_at) VALUES ($1, NULL, now()) \
             ON CONFLICT (subject) DO UPDATE SET wrapped_key = NULL, forgotten_at = now()",
        )
        .bind(subject)
        .execute(&self.inner.pool)
        .await?;
        if let Some(vault) = self.vault() {
            vault.forget_cached(subject);
        }
        Ok(())
    }

    /// Seals the `pii` objects of events about a lead.
    async fn seal(&self, stream_id: &str, events: &mut [NewEvent]) -> Result<(), StoreError> {
        let Some(vault) = self.vault().cloned() else {
            return Ok(());
        };
        let subjects: Vec<Option<String>> = events
            .iter()
            .map(|event| subject_of(stream_id, &event.data))
            .collect();
        let wanted: Vec<&str> = subjects.iter().flatten().map(String::as_str).collect();
        self.ensure_keys(&vault, &wanted, true).await?;
        for (event, subject) in events.iter_mut().zip(&subjects) {
            if let Some(subject) = subject
                && !vault.seal(subject, &mut event.data)
            {
                return Err(StoreError::Vault(format!("no data key for {subject}")));
            }
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

    /// Applies `migrations/postgres` (idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("../../migrations/postgres")
            .run(&self.inner.pool)
            .await?;
        Ok(())
    }

    fn woke(&self) {
        self.inner
            .wake_sender
            .send_modify(|count| *count = count.wrapping_add(1));
        self.inner.notify_pending.notify_one();
    }

    async fn try_insert(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        columns: &Columns,
    ) -> Result<Vec<(i64, i64)>, sqlx::Error> {
        // The base version the new events follow, chosen by the expectation. Exact checks in the
        // same statement that version n exists, so an append can never leave a gap; whether
        // n is the *last* version is decided by the unique constraint on n + 1.
        const INSERT_HEAD: &str = "INSERT INTO events \
             (stream_id, stream_version, event_id, event_type, schema_version, data, metadata) \
             SELECT $1, base.version + e.ordinality, e.event_id, e.event_type, e.schema_version, \
                    e.data::jsonb, e.metadata::jsonb FROM ";
        const INSERT_TAIL: &str = " CROSS JOIN UNNEST($2::uuid[], $3::text[], $4::int[], $5::text[], $6::text[]) \
             WITH ORDINALITY AS e(event_id, event_type, schema_version, data, metadata, ordinality) \
             ORDER BY e.ordinality \
             RETURNING global_position, stream_version";
        let (base, version) = match expected {
            ExpectedVersion::NoStream => (
                "(SELECT 0::bigint AS version WHERE $7::bigint IS NULL) AS base",
                None,
            ),
            ExpectedVersion::Exact(version) => (
                "(SELECT $7::bigint AS version WHERE EXISTS \
                   (SELECT 1 FROM events WHERE stream_id = $1 AND stream_version = $7)) AS base",
                Some(version),
            ),
            ExpectedVersion::Any => (
                "(SELECT COALESCE(MAX(stream_version), 0) AS version FROM events \
                   WHERE stream_id = $1 AND $7::bigint IS NULL) AS base",
                None,
            ),
        };
        let sql = format!("{INSERT_HEAD}{base}{INSERT_TAIL}");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(stream_id)
            .bind(&columns.event_ids)
            .bind(&columns.event_types)
            .bind(&columns.schema_versions)
            .bind(&columns.data)
            .bind(&columns.metadata)
            .bind(version)
            .fetch_all(&self.inner.pool)
            .await?;
        let mut stored: Vec<(i64, i64)> = rows
            .iter()
            .map(|row| Ok((row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        stored.sort_by_key(|&(_, version)| version);
        Ok(stored)
    }

    /// After a unique violation: are these exact events already stored (a retried append)?
    async fn already_stored(
        &self,
        stream_id: &str,
        events: &[NewEvent],
    ) -> Result<Option<AppendResult>, StoreError> {
        let ids: Vec<Uuid> = events.iter().map(|event| event.event_id).collect();
        let rows = sqlx::query(
            "SELECT event_id, stream_id, event_type, data, global_position, stream_version \
             FROM events WHERE event_id = ANY($1) ORDER BY stream_version",
        )
        .bind(&ids)
        .fetch_all(&self.inner.pool)
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut positions = Vec::with_capacity(rows.len());
        let mut last_version = 0;
        for row in &rows {
            let event_id: Uuid = row.try_get("event_id")?;
            let stored_stream: String = row.try_get("stream_id")?;
            let stored_type: String = row.try_get("event_type")?;
            let mut stored_data: Value = row.try_get("data")?;
            if let Some(vault) = self.vault().cloned() {
                if let Some(subject) = sealed_subject(&stored_data).map(str::to_owned) {
                    self.ensure_keys(&vault, &[subject.as_str()], false).await?;
                }
                vault.open(&mut stored_data)?;
            }
            let matches = stored_stream == stream_id
                && events.iter().any(|event| {
                    event.event_id == event_id
                        && event.event_type == stored_type
                        && event.data == stored_data
                });
            if !matches {
                return Err(StoreError::DuplicateEventId {
                    event_id,
                    stored_stream_id: stored_stream,
                });
            }
            positions.push(row.try_get::<i64, _>("global_position")?);
            last_version = row.try_get::<i64, _>("stream_version")?;
        }
        if rows.len() != events.len() {
            // Part of the batch is stored: this is not a retry of one earlier append.
            let stored: Uuid = rows[0].try_get("event_id")?;
            return Err(StoreError::DuplicateEventId {
                event_id: stored,
                stored_stream_id: stream_id.to_owned(),
            });
        }
        Ok(Some(AppendResult {
            stream_version: last_version,
            global_positions: positions,
            already_stored: true,
        }))
    }
}

/// The append's events as parallel arrays for UNNEST.
struct Columns {
    event_ids: Vec<Uuid>,
    event_types: Vec<String>,
    schema_versions: Vec<i32>,
    data: Vec<String>,
    metadata: Vec<String>,
}

impl Columns {
    fn of(events: &[NewEvent]) -> Result<Self, StoreError> {
        let mut columns = Columns {
            event_ids: Vec::with_capacity(events.len()),
            event_types: Vec::with_capacity(events.len()),
            schema_versions: Vec::with_capacity(events.len()),
            data: Vec::with_capacity(events.len()),
            metadata: Vec::with_capacity(events.len()),
        };
        for event in events {
            columns.event_ids.push(event.event_id);
            columns.event_types.push(event.event_type.clone());
            columns.schema_versions.push(event.schema_version);
            columns.data.push(event.data.to_string());
            columns.metadata.push(
                serde_json::to_string(&event.metadata)
                    .map_err(|error| StoreError::InvalidAppend(error.to_string()))?,
            );
        }
        Ok(columns)
    }
}

fn violated_constraint(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(database) if database.code().as_deref() == Some("23505") => {
            database.constraint().map(str::to_owned)
        }
        _ => None,
    }
}

#[async_trait]
impl EventStore for PostgresEventStore {
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
        let mut sealed = events.clone();
        self.seal(stream_id, &mut sealed).await?;
        let columns = Columns::of(&sealed)?;
        for _ in 0..ANY_VERSION_ATTEMPTS {
            match self.try_insert(stream_id, expected, &columns).await {
                Ok(stored) if stored.is_empty() => {
                    // Exact(n) where version n does not exist, or NoStream never inserts nothing.
                    if let Some(result) = self.already_stored(stream_id, &events).await? {
                        return Ok(result);
                    }
                    return Err(StoreError::Conflict {
                        stream_id: stream_id.to_owned(),
                        expected,
                        actual: self.stream_version(stream_id).await?,
                    });
                }
                Ok(stored) => {
                    self.woke();
                    return Ok(AppendResult {
                        stream_version: stored.last().map_or(0, |&(_, version)| version),
                        global_positions: stored
                            .into_iter()
                            .map(|(position, _)| position)
                            .collect(),
                        already_stored: false,
                    });
                }
                Err(error) => match violated_constraint(&error).as_deref() {
                    Some(EVENT_ID_CONSTRAINT) | Some(STREAM_VERSION_CONSTRAINT) => {
                        if let Some(result) = self.already_stored(stream_id, &events).await? {
                            return Ok(result);
                        }
                        if expected != ExpectedVersion::Any {
                            return Err(StoreError::Conflict {
                                stream_id: stream_id.to_owned(),
                                expected,
                                actual: self.stream_version(stream_id).await?,
                            });
                        }
                        // Any: a concurrent writer took the next version; go again.
                    }
                    _ => return Err(error.into()),
                },
            }
        }
        Err(StoreError::Conflict {
            stream_id: stream_id.to_owned(),
            expected,
            actual: self.stream_version(stream_id).await?,
        })
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: i64,
        limit: Option<i64>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {SELECT_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version >= $2 \
             ORDER BY stream_version LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(stream_id)
            .bind(from_version)
            .bind(limit)
            .fetch(&self.inner.pool);
        let events = self.decode_stream(rows, 16).await?;
        self.finish(events).await
    }

    async fn read_all(
        &self,
        after: Checkpoint,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // The table-qualified names matter: unqualified, ORDER BY transaction_id would sort by
        // the output column (the bigint cast) and miss the index.
        let sql = format!(
            "SELECT {SELECT_COLUMNS} FROM events \
             WHERE (events.transaction_id, events.global_position) > ($1::text::xid8, $2) \
               AND events.transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
             ORDER BY events.transaction_id, events.global_position LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after.transaction_id.to_string())
            .bind(after.global_position)
            .bind(limit)
            .fetch(&self.inner.pool);
        let events = self.decode_stream(rows, limit).await?;
        self.finish(events).await
    }

    async fn stream_version(&self, stream_id: &str) -> Result<Option<i64>, StoreError> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(stream_version) FROM events WHERE stream_id = $1")
                .bind(stream_id)
                .fetch_one(&self.inner.pool)
                .await?;
        Ok(version)
    }

    fn wake_ups(&self) -> watch::Receiver<u64> {
        self.inner.wake_sender.subscribe()
    }
}

impl PostgresEventStore {
    /// Events matching `query`, one page: jsonb operators on `metadata`, text comparison of
    /// occurred_at in the C collation (RFC 3339 with micros and `Z` sorts as time).
    #[tracing::instrument(level = "debug", skip_all, err)]
    pub async fn query_events(
        &self,
        query: &super::EventQuery,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        use super::{EventCursor, EventOrder, like_prefix, query_time};
        let mut sql = sqlx::QueryBuilder::<sqlx::Postgres>::new(format!(
            "SELECT {SELECT_COLUMNS} FROM events WHERE true"
        ));
        if let Some(from) = query.occurred_from {
            sql.push(" AND (metadata->>'occurred_at') COLLATE \"C\" >= ")
                .push_bind(query_time(from));
        }
        if let Some(to) = query.occurred_to {
            sql.push(" AND (metadata->>'occurred_at') COLLATE \"C\" <= ")
                .push_bind(query_time(to));
        }
        if let Some(actor) = &query.actor {
            sql.push(" AND metadata->'actor'->>'kind' = ")
                .push_bind(actor.kind().to_owned())
                .push(" AND metadata->'actor'->>'name' = ")
                .push_bind(actor.name().to_owned());
        }
        if let Some(event_type) = &query.event_type {
            sql.push(" AND event_type = ").push_bind(event_type.clone());
        }
        if let Some(prefix) = &query.stream_prefix {
            sql.push(" AND stream_id LIKE ")
                .push_bind(like_prefix(prefix))
                .push(" ESCAPE '\\'");
        }
        if let Some(correlation_id) = query.correlation_id {
            sql.push(" AND metadata->>'correlation_id' = ")
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
        sql.push(" LIMIT ").push_bind(query.limit);
        let rows = sql.build().fetch(&self.inner.pool);
        let events = self.decode_stream(rows, query.limit).await?;
        self.finish(events).await
    }

    /// Decodes rows as they arrive, so the client parses one part of a page while the server
    /// is still sending the rest (with `fetch_all` the two would take turns).
    async fn decode_stream(
        &self,
        mut rows: futures::stream::BoxStream<'_, Result<PgRow, sqlx::Error>>,
        expected: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        use futures::TryStreamExt;
        let mut events =
            Vec::with_capacity(usize::try_from(expected.clamp(0, 10_000)).unwrap_or(0));
        while let Some(row) = rows.try_next().await? {
            events.push(self.decode_row(&row)?);
        }
        Ok(events)
    }

    fn decode_row(&self, row: &PgRow) -> Result<RecordedEvent, StoreError> {
        let global_position: i64 = row.try_get(0)?;
        let event_type: String = row.try_get(5)?;
        // Parsed straight from the column's bytes into the struct, without a JSON tree between.
        let metadata: Metadata = row
            .try_get::<sqlx::types::Json<Metadata>, _>(8)
            .map_err(|error| StoreError::Decode {
                event_type: event_type.clone(),
                global_position,
                message: format!("metadata: {error}"),
            })?
            .0;
        let recorded_at: DateTime<Utc> = row.try_get(9)?;
        let event = RecordedEvent {
            global_position,
            transaction_id: decode_xid8(row, 1)?,
            stream_id: row.try_get(2)?,
            stream_version: row.try_get(3)?,
            event_id: row.try_get(4)?,
            event_type,
            schema_version: row.try_get(6)?,
            data: row.try_get(7)?,
            metadata,
            recorded_at,
        };
        Ok(event)
    }
}

/// An `xid8` column as the non-negative `i64` of [`Checkpoint::transaction_id`]: 8 big-endian
/// bytes in binary, digits in text.
fn decode_xid8(row: &PgRow, index: usize) -> Result<i64, StoreError> {
    use sqlx::postgres::PgValueFormat;
    let value = row.try_get_raw(index)?;
    let decoded: Result<i64, sqlx::error::BoxDynError> = match value.format() {
        PgValueFormat::Binary => value.as_bytes().and_then(|bytes| {
            let bytes: [u8; 8] = bytes.try_into()?;
            Ok(i64::try_from(u64::from_be_bytes(bytes))?)
        }),
        PgValueFormat::Text => value.as_str().and_then(|text| Ok(text.parse::<i64>()?)),
    };
    decoded.map_err(|source| StoreError::Database(sqlx::Error::Decode(source)))
}

/// Sends one NOTIFY per burst of appends: every append stores a permit; one statement drains
/// however many appends came in while the previous one ran or within [`NOTIFY_COALESCE`] of
/// it (a leading-edge throttle: an append after a quiet spell wakes other processes without
/// waiting, a steady stream costs at most one NOTIFY per window). The NOTIFY runs on its own
/// connection with `synchronous_commit = off`: a wake-up needs no durability, and a NOTIFY
/// transaction would otherwise wait for its own WAL flush, doubling the fsyncs of a writer.
async fn send_notifications(inner: Weak<Inner>, pending: Arc<Notify>, shutdown: CancellationToken) {
    let notify_pool = {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let options = (*strong.pool.connect_options())
            .clone()
            .options([("synchronous_commit", "off")]);
        PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options)
    };
    loop {
        tokio::select! {
            () = pending.notified() => {}
            () = shutdown.cancelled() => break,
        }
        let started = tokio::time::Instant::now();
        {
            let Some(inner) = inner.upgrade() else { break };
            if inner.pool.is_closed() {
                break;
            }
        }
        let sent = sqlx::query("SELECT pg_notify($1, '')")
            .bind(NOTIFY_CHANNEL)
            .execute(&notify_pool)
            .await;
        if let Err(error) = sent {
            // Readers fall back to polling; a lost wake-up only delays them.
            tracing::debug!(%error, "NOTIFY failed");
        }
        // Appends during the window leave a permit: the next NOTIFY carries them all. In-process
        // readers were woken through the watch channel already and never wait for this.
        tokio::select! {
            () = tokio::time::sleep_until(started + NOTIFY_COALESCE) => {}
            () = shutdown.cancelled() => break,
        }
    }
    notify_pool.close().await;
}

/// Turns NOTIFYs from any process into local wake-ups.
async fn listen_for_notifications(inner: Weak<Inner>, shutdown: CancellationToken) {
    let mut listener = {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        match PgListener::connect_with(&strong.pool).await {
            Ok(mut listener) => match listener.listen(NOTIFY_CHANNEL).await {
                Ok(()) => listener,
                Err(error) => {
                    tracing::warn!(%error, "LISTEN failed; readers will poll");
                    return;
                }
            },
            Err(error) => {
                tracing::warn!(%error, "cannot open the LISTEN connection; readers will poll");
                return;
            }
        }
    };
    loop {
        // Wake periodically to notice that the store was dropped; a notification lost to a
        // timeout or a reconnect only delays readers until their next poll.
        let received = tokio::select! {
            received = tokio::time::timeout(Duration::from_secs(1), listener.recv()) => received,
            () = shutdown.cancelled() => return,
        };
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if strong.pool.is_closed() {
            return;
        }
        match received {
            Ok(Ok(_notification)) => {
                strong
                    .wake_sender
                    .send_modify(|count| *count = count.wrapping_add(1));
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "LISTEN connection lost; reconnecting");
                drop(strong);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(_elapsed) => {}
        }
    }
}
