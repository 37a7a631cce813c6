//! The lead table: one SQL row per lead ([`LeadRow`]), kept by the `leads` subscription
//! ([`LeadTableHandler`]), rebuilt from the whole log by [`rebuild_leads`], read by the HTTP API
//! through [`list_leads`] and [`get_lead`].
//!
//! Every write path works a batch at a time: the batch's lead events are collected, the rows of
//! those leads are loaded in one query, the events are applied in log order with
//! [`LeadRow::apply_recorded`] (idempotent by stream version) and the changed rows are written
//! back in one multi-row upsert per chunk, guarded by `version < EXCLUDED.version`. The live
//! handler does this inside the subscription's transaction, so rows and checkpoint commit
//! together.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use salesdept_events::domain::LeadStatus;
use salesdept_events::domain::streams::lead_id_of;
use salesdept_events::{
    Checkpoint, EventStore, Handler, HandlerContext, HandlerError, RecordedEvent, Store,
    StoreError, StoreTx,
};
use sqlx::Row;
use uuid::Uuid;

use crate::row::{COLUMNS, LeadRow};

/// The live table.
pub const LEADS_TABLE: &str = "leads";
/// Where [`rebuild_leads`] builds the new table before swapping it in.
pub const REBUILD_TABLE: &str = "leads_rebuild";
/// The subscription that keeps the live table.
pub const SUBSCRIPTION_NAME: &str = "leads";

/// The 15 visible columns and the hidden fields, in table order.
pub const ALL_COLUMNS: [&str; 19] = [
    COLUMNS[0],
    COLUMNS[1],
    COLUMNS[2],
    COLUMNS[3],
    COLUMNS[4],
    COLUMNS[5],
    COLUMNS[6],
    COLUMNS[7],
    COLUMNS[8],
    COLUMNS[9],
    COLUMNS[10],
    COLUMNS[11],
    COLUMNS[12],
    COLUMNS[13],
    COLUMNS[14],
    "status_before_review",
    "version",
    "updated_at",
    "forgotten",
];

/// Rows per upsert statement: 19 binds a row stays far below SQLite's 32,766 variables; on
/// PostgreSQL the rows travel as 19 arrays, so the chunk only bounds one statement's size.
const SQLITE_UPSERT_CHUNK: usize = 1000;
const POSTGRES_UPSERT_CHUNK: usize = 10_000;

/// Why the lead table could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the lead table holds a value it cannot read: {0}")]
    Corrupt(String),
    #[error("the rebuild could not catch up with the live subscription: {0}")]
    CatchUp(String),
    #[error("another rebuild of the lead table is running")]
    RebuildRunning,
}

/// Which of the two tables a batch goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Table {
    Live,
    Rebuild,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Self::Live => LEADS_TABLE,
            Self::Rebuild => REBUILD_TABLE,
        }
    }
}

/// What one batch did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Lead events in the batch.
    pub lead_events: u64,
    /// Rows written (changed by the batch).
    pub rows_written: u64,
    /// Upsert statements executed.
    pub upserts: u64,
    /// Row-loading queries executed.
    pub loads: u64,
}

/// The `leads` subscription's handler. It counts its statements so tests can check that a
/// batch costs one load and one upsert per chunk, not one round trip per event.
#[derive(Debug, Default)]
pub struct LeadTableHandler {
    upserts: AtomicU64,
    loads: AtomicU64,
    batches: AtomicU64,
}

impl LeadTableHandler {
    pub fn new() -> Self {
        Self::default()
    }

    /// Upsert statements executed so far.
    pub fn upsert_statements(&self) -> u64 {
        self.upserts.load(Ordering::Relaxed)
    }

    /// Row-loading queries executed so far.
    pub fn load_queries(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    /// Batches handled so far (including retried ones).
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl Handler for LeadTableHandler {
    async fn handle(
        &self,
        event: &RecordedEvent,
        context: &mut HandlerContext,
    ) -> Result<(), HandlerError> {
        self.handle_batch(std::slice::from_ref(event), context)
            .await
            .map_err(|(_, error)| error)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(events = events.len()))]
    async fn handle_batch(
        &self,
        events: &[RecordedEvent],
        context: &mut HandlerContext,
    ) -> Result<(), (usize, HandlerError)> {
        if !events
            .iter()
            .any(|event| lead_id_of(&event.stream_id).is_some())
        {
            return Ok(());
        }
        self.batches.fetch_add(1, Ordering::Relaxed);
        let tx = context
            .transaction()
            .await
            .map_err(|error| (0, Box::new(error) as HandlerError))?;
        let result = apply_batch(tx, Table::Live, events).await;
        let stats = match &result {
            Ok(stats) => *stats,
            Err(failure) => failure.stats,
        };
        self.upserts.fetch_add(stats.upserts, Ordering::Relaxed);
        self.loads.fetch_add(stats.loads, Ordering::Relaxed);
        result.map(drop).map_err(|failure| {
            (
                failure.index,
                Box::new(failure.error) as Box<dyn std::error::Error + Send + Sync>,
            )
        })
    }
}

/// A batch that failed at `index`; the events before it were written.
#[derive(Debug)]
struct BatchFailure {
    index: usize,
    error: ProjectionError,
    stats: BatchStats,
}

/// Applies a batch to `table` inside `tx`: one load, the fold, one upsert per chunk. On a
/// decoding failure at event `i`, the rows of the events before `i` are written first, as the
/// [`Handler::handle_batch`] contract asks.
async fn apply_batch(
    tx: &mut StoreTx,
    table: Table,
    events: &[RecordedEvent],
) -> Result<BatchStats, BatchFailure> {
    let mut stats = BatchStats::default();
    let lead_events: Vec<(usize, Uuid)> = events
        .iter()
        .enumerate()
        .filter_map(|(index, event)| lead_id_of(&event.stream_id).map(|id| (index, id)))
        .collect();
    if lead_events.is_empty() {
        return Ok(stats);
    }
    stats.lead_events = lead_events.len() as u64;
    // A lead whose first event here is its discovery (version 1) has no row yet, unless this is
    // a redelivery, and then folding from scratch gives the same row, which the version guard
    // refuses to write twice. Only the others need loading.
    let mut seen = HashSet::new();
    let to_load: Vec<Uuid> = lead_events
        .iter()
        .filter(|(index, id)| seen.insert(*id) && events[*index].stream_version > 1)
        .map(|(_, id)| *id)
        .collect();
    let mut rows: HashMap<Uuid, LeadRow> = if to_load.is_empty() {
        HashMap::new()
    } else {
        stats.loads += 1;
        load_rows(tx, table, &to_load, table == Table::Live)
            .await
            .map_err(|error| BatchFailure {
                index: 0,
                error,
                stats,
            })?
            .into_iter()
            .map(|row| (row.lead_id, row))
            .collect()
    };
    let mut changed: Vec<Uuid> = Vec::new();
    let mut changed_set = HashSet::new();
    let mut decode_failure = None;
    for (index, lead_id) in &lead_events {
        let row = rows
            .entry(*lead_id)
            .or_insert_with(|| LeadRow::new(*lead_id));
        match row.apply_recorded(&events[*index]) {
            Ok(true) => {
                if changed_set.insert(*lead_id) {
                    changed.push(*lead_id);
                }
            }
            Ok(false) => {}
            // The live subscription retries an event it cannot read and then parks it in
            // dead letters; the rebuild skips it likewise, so both tables agree.
            Err(error) if table == Table::Rebuild => {
                tracing::warn!(position = events[*index].global_position, %error, "rebuild skips an unreadable lead event");
            }
            Err(error) => {
                decode_failure = Some((*index, error));
                break;
            }
        }
    }
    let changed_rows: Vec<&LeadRow> = changed.iter().map(|id| &rows[id]).collect();
    let written = upsert_rows(tx, table, &changed_rows, &mut stats).await;
    if let Err(error) = written {
        return Err(BatchFailure {
            index: 0,
            error,
            stats,
        });
    }
    stats.rows_written = changed_rows.len() as u64;
    match decode_failure {
        Some((index, error)) => Err(BatchFailure {
            index,
            error: error.into(),
            stats,
        }),
        None => Ok(stats),
    }
}

fn column_list() -> String {
    ALL_COLUMNS.join(", ")
}

/// Loads the rows of `ids` from `table` in one query. The live handler locks them (`FOR
/// UPDATE`, a ROW SHARE table lock on PostgreSQL) so that the rebuild's `LOCK TABLE … IN
/// EXCLUSIVE MODE` and this handler queue behind each other instead of deadlocking.
async fn load_rows(
    tx: &mut StoreTx,
    table: Table,
    ids: &[Uuid],
    lock: bool,
) -> Result<Vec<LeadRow>, ProjectionError> {
    let columns = column_list();
    let table = table.name();
    match tx {
        StoreTx::Postgres(tx) => {
            let sql = format!(
                "SELECT {columns} FROM {table} WHERE lead_id = ANY($1){}",
                if lock { " FOR UPDATE" } else { "" }
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(ids)
                .fetch_all(&mut **tx)
                .await?;
            rows.iter().map(postgres_row).collect()
        }
        StoreTx::Sqlite(tx) => {
            let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
            let sql = format!(
                "SELECT {columns} FROM {table} WHERE lead_id IN (SELECT value FROM json_each(?1))"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(serde_json::to_string(&ids).expect("strings serialise"))
                .fetch_all(&mut **tx)
                .await?;
            rows.iter().map(sqlite_row).collect()
        }
    }
}

/// Writes `rows` into `table`: one statement per chunk, never lowering a row's version.
async fn upsert_rows(
    tx: &mut StoreTx,
    table: Table,
    rows: &[&LeadRow],
    stats: &mut BatchStats,
) -> Result<(), ProjectionError> {
    if rows.is_empty() {
        return Ok(());
    }
    let table = table.name();
    let columns = column_list();
    let updates = ALL_COLUMNS[1..]
        .iter()
        .map(|column| format!("{column} = EXCLUDED.{column}"))
        .collect::<Vec<_>>()
        .join(", ");
    match tx {
        StoreTx::Postgres(tx) => {
            let sql = format!(
                "INSERT INTO {table} ({columns}) SELECT * FROM UNNEST($1::uuid[], $2::text[], \
                 $3::text[], $4::text[], $5::text[], $6::text[], $7::float8[], $8::text[], \
                 $9::timestamptz[], $10::text[], $11::text[], $12::text[], $13::text[], \
                 $14::text[], $15::text[], $16::text[], $17::int8[], $18::timestamptz[], \
                 $19::bool[]) \
                 ON CONFLICT (lead_id) DO UPDATE SET {updates} WHERE {table}.version < EXCLUDED.version"
            );
            for chunk in rows.chunks(POSTGRES_UPSERT_CHUNK) {
                // The arrays borrow the rows' text: no copy of a string before encoding it.
                let column =
                    |f: fn(&LeadRow) -> &str| -> Vec<&str> { chunk.iter().map(|r| f(r)).collect() };
                let ids: Vec<Uuid> = chunk.iter().map(|row| row.lead_id).collect();
                let names = column(|r| &r.name);
                let positions = column(|r| &r.position);
                let companies = column(|r| &r.company);
                let urls = column(|r| &r.linkedin_url);
                let classifications = column(|r| &r.classification);
                let scores: Vec<Option<f64>> = chunk.iter().map(|r| r.quality_score).collect();
                let statuses = column(|r| r.contact_status.label());
                let contacted: Vec<Option<DateTime<Utc>>> =
                    chunk.iter().map(|r| r.last_contacted).collect();
                let messages = column(|r| &r.message_sent);
                let responses = column(|r| &r.response);
                let sentiments = column(|r| &r.response_sentiment);
                let intents = column(|r| &r.response_intent);
                let assigned = column(|r| &r.assigned_to);
                let notes = column(|r| &r.notes);
                let before_review: Vec<Option<&str>> = chunk
                    .iter()
                    .map(|r| r.status_before_review.map(|s| s.label()))
                    .collect();
                let versions: Vec<i64> = chunk.iter().map(|r| r.version).collect();
                let updated: Vec<Option<DateTime<Utc>>> =
                    chunk.iter().map(|r| r.updated_at).collect();
                let forgotten: Vec<bool> = chunk.iter().map(|r| r.forgotten).collect();
                sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                    .bind(ids)
                    .bind(names)
                    .bind(positions)
                    .bind(companies)
                    .bind(urls)
                    .bind(classifications)
                    .bind(scores)
                    .bind(statuses)
                    .bind(contacted)
                    .bind(messages)
                    .bind(responses)
                    .bind(sentiments)
                    .bind(intents)
                    .bind(assigned)
                    .bind(notes)
                    .bind(before_review)
                    .bind(versions)
                    .bind(updated)
                    .bind(forgotten)
                    .execute(&mut **tx)
                    .await?;
                stats.upserts += 1;
            }
        }
        StoreTx::Sqlite(tx) => {
            for chunk in rows.chunks(SQLITE_UPSERT_CHUNK) {
                let mut sql = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
                    "INSERT INTO {table} ({columns}) "
                ));
                sql.push_values(chunk.iter(), |mut values, row| {
                    values
                        .push_bind(row.lead_id.to_string())
                        .push_bind(row.name.clone())
                        .push_bind(row.position.clone())
                        .push_bind(row.company.clone())
                        .push_bind(row.linkedin_url.clone())
                        .push_bind(row.classification.clone())
                        .push_bind(row.quality_score)
                        .push_bind(row.contact_status.label())
                        .push_bind(row.last_contacted.map(text_time))
                        .push_bind(row.message_sent.clone())
                        .push_bind(row.response.clone())
                        .push_bind(row.response_sentiment.clone())
                        .push_bind(row.response_intent.clone())
                        .push_bind(row.assigned_to.clone())
                        .push_bind(row.notes.clone())
                        .push_bind(row.status_before_review.map(|s| s.label()))
                        .push_bind(row.version)
                        .push_bind(row.updated_at.map(text_time))
                        .push_bind(row.forgotten);
                });
                sql.push(format!(
                    " ON CONFLICT (lead_id) DO UPDATE SET {updates} WHERE {table}.version < EXCLUDED.version"
                ));
                sql.build().execute(&mut **tx).await?;
                stats.upserts += 1;
            }
        }
    }
    Ok(())
}

/// Times in SQLite columns: RFC 3339 with microseconds and a `Z`, like occurred_at.
fn text_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_text_time(text: &str) -> Result<DateTime<Utc>, ProjectionError> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| ProjectionError::Corrupt(format!("time {text:?}: {error}")))
}

/// The status with this label ("In Review") or name (`in_review`).
pub fn parse_status(text: &str) -> Option<LeadStatus> {
    let text = text.trim();
    LeadStatus::ALL.into_iter().find(|status| {
        status.label().eq_ignore_ascii_case(text) || status.as_str().eq_ignore_ascii_case(text)
    })
}

fn status_of(text: &str) -> Result<LeadStatus, ProjectionError> {
    parse_status(text).ok_or_else(|| ProjectionError::Corrupt(format!("status {text:?}")))
}

fn postgres_row(row: &sqlx::postgres::PgRow) -> Result<LeadRow, ProjectionError> {
    let status: String = row.try_get(7)?;
    let before_review: Option<String> = row.try_get(15)?;
    Ok(LeadRow {
        lead_id: row.try_get(0)?,
        name: row.try_get(1)?,
        position: row.try_get(2)?,
        company: row.try_get(3)?,
        linkedin_url: row.try_get(4)?,
        classification: row.try_get(5)?,
        quality_score: row.try_get(6)?,
        contact_status: status_of(&status)?,
        last_contacted: row.try_get(8)?,
        message_sent: row.try_get(9)?,
        response: row.try_get(10)?,
        response_sentiment: row.try_get(11)?,
        response_intent: row.try_get(12)?,
        assigned_to: row.try_get(13)?,
        notes: row.try_get(14)?,
        status_before_review: before_review.as_deref().map(status_of).transpose()?,
        version: row.try_get(16)?,
        updated_at: row.try_get(17)?,
        forgotten: row.try_get(18)?,
    })
}

fn sqlite_row(row: &sqlx::sqlite::SqliteRow) -> Result<LeadRow, ProjectionError> {
    let lead_id: String = row.try_get(0)?;
    let status: String = row.try_get(7)?;
    let before_review: Option<String> = row.try_get(15)?;
    let last_contacted: Option<String> = row.try_get(8)?;
    let updated_at: Option<String> = row.try_get(17)?;
    Ok(LeadRow {
        lead_id: Uuid::parse_str(&lead_id)
            .map_err(|error| ProjectionError::Corrupt(format!("lead id {lead_id:?}: {error}")))?,
        name: row.try_get(1)?,
        position: row.try_get(2)?,
        company: row.try_get(3)?,
        linkedin_url: row.try_get(4)?,
        classification: row.try_get(5)?,
        quality_score: row.try_get(6)?,
        contact_status: status_of(&status)?,
        last_contacted: last_contacted.as_deref().map(parse_text_time).transpose()?,
        message_sent: row.try_get(9)?,
        response: row.try_get(10)?,
        response_sentiment: row.try_get(11)?,
        response_intent: row.try_get(12)?,
        assigned_to: row.try_get(13)?,
        notes: row.try_get(14)?,
        status_before_review: before_review.as_deref().map(status_of).transpose()?,
        version: row.try_get(16)?,
        updated_at: updated_at.as_deref().map(parse_text_time).transpose()?,
        forgotten: row.try_get(18)?,
    })
}

// ---------------------------------------------------------------------------------------------
// Reading, for the HTTP API.

/// Which leads [`list_leads`] returns; every field narrows the list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LeadFilter {
    pub status: Option<LeadStatus>,
    /// `Speaker`, `Sponsor`, `Other` (or "" for unclassified).
    pub classification: Option<String>,
    pub min_score: Option<f64>,
    pub max_score: Option<f64>,
    /// Case-insensitive substring of name, company or position.
    pub search: Option<String>,
}

/// A page of [`list_leads`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            limit: 50,
            offset: 0,
        }
    }
}

/// The order of [`list_leads`]; ties are broken by lead id so pages never overlap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LeadOrder {
    /// Most recently changed first.
    #[default]
    UpdatedDesc,
    /// Best quality score first (unscored last).
    ScoreDesc,
    NameAsc,
    LeadId,
}

impl LeadOrder {
    fn sql(self) -> &'static str {
        match self {
            Self::UpdatedDesc => " ORDER BY updated_at DESC, lead_id",
            // NULLS LAST is PostgreSQL's and SQLite's (3.30+) syntax alike.
            Self::ScoreDesc => " ORDER BY quality_score DESC NULLS LAST, lead_id",
            Self::NameAsc => " ORDER BY name, lead_id",
            Self::LeadId => " ORDER BY lead_id",
        }
    }
}

/// One page of leads and how many match the filter in all.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LeadPage {
    pub rows: Vec<LeadRow>,
    pub total: i64,
}

/// `%text%` with LIKE's wildcards escaped by `\`.
fn like_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

fn push_filter<DB: sqlx::Database>(
    sql: &mut sqlx::QueryBuilder<DB>,
    filter: &LeadFilter,
    like: &str,
) where
    String: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    f64: for<'q> sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    if let Some(status) = filter.status {
        sql.push(" AND contact_status = ")
            .push_bind(status.label().to_owned());
    }
    if let Some(classification) = &filter.classification {
        sql.push(" AND classification = ")
            .push_bind(classification.clone());
    }
    if let Some(min) = filter.min_score {
        sql.push(" AND quality_score >= ").push_bind(min);
    }
    if let Some(max) = filter.max_score {
        sql.push(" AND quality_score <= ").push_bind(max);
    }
    if let Some(search) = filter.search.as_deref().filter(|s| !s.trim().is_empty()) {
        let pattern = like_pattern(search.trim());
        sql.push(" AND (");
        for (index, column) in ["name", "company", "position"].iter().enumerate() {
            if index > 0 {
                sql.push(" OR ");
            }
            sql.push(format!("{column} {like} "))
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\'");
        }
        sql.push(")");
    }
}

/// A page of the lead table matching `filter`, in `order`, with the total count.
#[tracing::instrument(level = "debug", skip_all, err)]
pub async fn list_leads(
    store: &Store,
    filter: &LeadFilter,
    page: Page,
    order: LeadOrder,
) -> Result<LeadPage, ProjectionError> {
    let columns = column_list();
    let limit = page.limit.clamp(0, 10_000);
    let offset = page.offset.max(0);
    match store {
        Store::Postgres(pg) => {
            let mut count = sqlx::QueryBuilder::new("SELECT COUNT(*) FROM leads WHERE true");
            push_filter(&mut count, filter, "ILIKE");
            let total: i64 = count.build_query_scalar().fetch_one(pg.pool()).await?;
            let mut sql =
                sqlx::QueryBuilder::new(format!("SELECT {columns} FROM leads WHERE true"));
            push_filter(&mut sql, filter, "ILIKE");
            sql.push(order.sql());
            sql.push(" LIMIT ").push_bind(limit);
            sql.push(" OFFSET ").push_bind(offset);
            let rows = sql.build().fetch_all(pg.pool()).await?;
            Ok(LeadPage {
                rows: rows.iter().map(postgres_row).collect::<Result<_, _>>()?,
                total,
            })
        }
        Store::Sqlite(lite) => {
            // SQLite's LIKE ignores ASCII case already.
            let mut count = sqlx::QueryBuilder::new("SELECT COUNT(*) FROM leads WHERE 1");
            push_filter(&mut count, filter, "LIKE");
            let total: i64 = count
                .build_query_scalar()
                .fetch_one(lite.read_pool())
                .await?;
            let mut sql = sqlx::QueryBuilder::new(format!("SELECT {columns} FROM leads WHERE 1"));
            push_filter(&mut sql, filter, "LIKE");
            sql.push(order.sql());
            sql.push(" LIMIT ").push_bind(limit);
            sql.push(" OFFSET ").push_bind(offset);
            let rows = sql.build().fetch_all(lite.read_pool()).await?;
            Ok(LeadPage {
                rows: rows.iter().map(sqlite_row).collect::<Result<_, _>>()?,
                total,
            })
        }
    }
}

/// One lead's row, if the table has it.
#[tracing::instrument(level = "debug", skip_all, fields(%lead_id), err)]
pub async fn get_lead(store: &Store, lead_id: Uuid) -> Result<Option<LeadRow>, ProjectionError> {
    let columns = column_list();
    match store {
        Store::Postgres(pg) => {
            let sql = format!("SELECT {columns} FROM leads WHERE lead_id = $1");
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(lead_id)
                .fetch_optional(pg.pool())
                .await?;
            row.as_ref().map(postgres_row).transpose()
        }
        Store::Sqlite(lite) => {
            let sql = format!("SELECT {columns} FROM leads WHERE lead_id = ?1");
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(lead_id.to_string())
                .fetch_optional(lite.read_pool())
                .await?;
            row.as_ref().map(sqlite_row).transpose()
        }
    }
}

/// Every row of `table` (`leads` or `leads_rebuild`) as text, ordered by lead id: PostgreSQL's
/// record text of each row, SQLite's `quote()` of each column. Two dumps are equal exactly when
/// the tables hold the same bytes; tests and the replay command compare them.
pub async fn dump_table(store: &Store, table: &str) -> Result<Vec<String>, ProjectionError> {
    if table != LEADS_TABLE && table != REBUILD_TABLE {
        return Err(ProjectionError::Corrupt(format!(
            "{table} is not a lead table"
        )));
    }
    match store {
        Store::Postgres(pg) => {
            let sql = format!("SELECT t::text FROM {table} t ORDER BY lead_id");
            Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_all(pg.pool())
                .await?)
        }
        Store::Sqlite(lite) => {
            let quoted = ALL_COLUMNS
                .iter()
                .map(|column| format!("quote({column})"))
                .collect::<Vec<_>>()
                .join(" || '|' || ");
            let sql = format!("SELECT {quoted} FROM {table} ORDER BY lead_id");
            Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_all(lite.read_pool())
                .await?)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rebuild.

/// Tuning of [`rebuild_leads_with`].
#[derive(Clone, Copy, Debug)]
pub struct RebuildOptions {
    /// Events read (and rows at most held) per batch.
    pub batch_size: i64,
    /// How long the swap waits for the log to show what the live subscription already applied.
    pub catch_up_timeout: Duration,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        Self {
            batch_size: 5000,
            catch_up_timeout: Duration::from_secs(30),
        }
    }
}

/// What a rebuild did.
#[derive(Clone, Debug, PartialEq)]
pub struct RebuildReport {
    /// Events read from the log (of every stream).
    pub events: u64,
    /// Rows in the new table.
    pub leads: i64,
    pub elapsed: Duration,
    /// Where the rebuilt table is up to.
    pub checkpoint: Checkpoint,
}

/// Rebuilds the lead table from the whole log with the default options.
pub async fn rebuild_leads(store: &Store) -> Result<RebuildReport, ProjectionError> {
    rebuild_leads_with(store, RebuildOptions::default(), |_| {}).await
}

/// Rebuilds the lead table from the whole log into `leads_rebuild`, then swaps it in.
///
/// The log is streamed in batches (a reader task keeps at most one batch ahead of the writer,
/// so memory stays flat: two batches of events and one batch of rows), each batch written with
/// one load and one upsert per chunk in its own short transaction. The swap is one transaction:
/// it locks the live table against the live subscription's writes, catches the new table up
/// to the head of the log (at least to the live subscription's checkpoint, so nothing the live
/// table shows is lost), and renames. Readers see the old table or the new one, never a half
/// built one. `progress` is called with the number of events read so far.
#[tracing::instrument(skip_all, err)]
pub async fn rebuild_leads_with(
    store: &Store,
    options: RebuildOptions,
    progress: impl FnMut(u64) + Send,
) -> Result<RebuildReport, ProjectionError> {
    // Two rebuilds at once would drop each other's `leads_rebuild`. On PostgreSQL a session
    // advisory lock, held on one idle connection (no open transaction, so the xid horizon is not
    // pinned), lets only one run; on SQLite one process runs the embedded default.
    let guard = match store {
        Store::Postgres(pg) => {
            let mut connection = pg.pool().acquire().await?;
            let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(REBUILD_LOCK_KEY)
                .fetch_one(&mut *connection)
                .await?;
            if !locked {
                return Err(ProjectionError::RebuildRunning);
            }
            Some(connection)
        }
        Store::Sqlite(_) => None,
    };
    let result = rebuild_locked(store, options, progress).await;
    if let Some(mut connection) = guard {
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(REBUILD_LOCK_KEY)
            .execute(&mut *connection)
            .await?;
    }
    result
}

/// The advisory lock key of the lead table's rebuild (any constant unique to it).
const REBUILD_LOCK_KEY: i64 = 0x6c65_6164_735f_7262; // "leads_rb"

async fn rebuild_locked(
    store: &Store,
    options: RebuildOptions,
    mut progress: impl FnMut(u64) + Send,
) -> Result<RebuildReport, ProjectionError> {
    let started = Instant::now();
    let deferred_indexes = prepare_rebuild_table(store).await?;

    let (sender, mut receiver) =
        tokio::sync::mpsc::channel::<Result<Vec<RecordedEvent>, StoreError>>(1);
    let reader_store = store.clone();
    let batch_size = options.batch_size.max(1);
    let reader = tokio::spawn(async move {
        let mut after = Checkpoint::START;
        loop {
            let batch = reader_store.read_all(after, batch_size).await;
            let done = match &batch {
                Ok(events) => match events.last() {
                    Some(last) => {
                        after = last.checkpoint();
                        false
                    }
                    None => true,
                },
                Err(_) => true,
            };
            if done {
                // An empty batch is not sent: the writer sees the channel close.
                if let Err(error) = batch {
                    let _ = sender.send(Err(error)).await;
                }
                return;
            }
            if sender.send(batch).await.is_err() {
                return;
            }
        }
    });

    let mut events_read = 0u64;
    let mut checkpoint = Checkpoint::START;
    while let Some(batch) = receiver.recv().await {
        let events = batch?;
        events_read += events.len() as u64;
        let mut tx = store.begin().await?;
        relax_commit(&mut tx).await?;
        apply_batch(&mut tx, Table::Rebuild, &events)
            .await
            .map_err(|failure| failure.error)?;
        tx.commit().await?;
        checkpoint = events.last().expect("batches are not empty").checkpoint();
        progress(events_read);
    }
    reader
        .await
        .map_err(|error| ProjectionError::CatchUp(format!("reader task: {error}")))?;

    create_deferred_indexes(store, deferred_indexes).await?;
    let (caught_up, final_checkpoint) = swap_in(store, options, checkpoint).await?;
    events_read += caught_up;
    progress(events_read);
    let leads = count_rows(store).await?;
    Ok(RebuildReport {
        events: events_read,
        leads,
        elapsed: started.elapsed(),
        checkpoint: final_checkpoint,
    })
}

/// A rebuild batch may lose its last commits in a crash without harm (the rebuild starts over),
/// so its commits need not wait for the WAL flush.
async fn relax_commit(tx: &mut StoreTx) -> Result<(), ProjectionError> {
    if let StoreTx::Postgres(tx) = tx {
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// An empty `leads_rebuild` shaped like the live table (the columns of every migration so far),
/// with only its primary key: the secondary indexes are built once the rows are in (see
/// [`create_deferred_indexes`]), which is much cheaper than maintaining them through every
/// upsert of the load. Returns the statements that build them (PostgreSQL; on SQLite the swap
/// re-creates the live table's indexes from their stored statements).
async fn prepare_rebuild_table(store: &Store) -> Result<Vec<String>, ProjectionError> {
    match store {
        Store::Postgres(pg) => {
            let mut tx = pg.pool().begin().await?;
            sqlx::query("DROP TABLE IF EXISTS leads_rebuild")
                .execute(&mut *tx)
                .await?;
            sqlx::query("CREATE TABLE leads_rebuild (LIKE leads INCLUDING ALL)")
                .execute(&mut *tx)
                .await?;
            let deferred: Vec<(String, String)> = sqlx::query_as(
                "SELECT c.relname::text, pg_get_indexdef(i.indexrelid) FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indexrelid \
                 WHERE i.indrelid = 'leads_rebuild'::regclass AND NOT i.indisprimary \
                 AND NOT i.indisunique ORDER BY c.relname",
            )
            .fetch_all(&mut *tx)
            .await?;
            for (name, _) in &deferred {
                let sql = format!("DROP INDEX \"{name}\"");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(deferred
                .into_iter()
                .map(|(_, definition)| definition)
                .collect())
        }
        Store::Sqlite(lite) => {
            let mut tx = lite.write_pool().begin_with("BEGIN IMMEDIATE").await?;
            let create: String = sqlx::query_scalar(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'leads'",
            )
            .fetch_one(&mut *tx)
            .await?;
            // The stored statement names the table as `leads` or, after a rename, `"leads"`:
            // keep everything from the column list on.
            let columns = create.find('(').ok_or_else(|| {
                ProjectionError::Corrupt("the leads table's CREATE statement".into())
            })?;
            sqlx::query("DROP TABLE IF EXISTS leads_rebuild")
                .execute(&mut *tx)
                .await?;
            let sql = format!("CREATE TABLE leads_rebuild {}", &create[columns..]);
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Vec::new())
        }
    }
}

/// Builds the secondary indexes [`prepare_rebuild_table`] left out, before the swap (outside its
/// lock: the live table stays writable meanwhile).
async fn create_deferred_indexes(
    store: &Store,
    definitions: Vec<String>,
) -> Result<(), ProjectionError> {
    if let Store::Postgres(pg) = store {
        for definition in definitions {
            sqlx::query(sqlx::AssertSqlSafe(definition))
                .execute(pg.pool())
                .await?;
        }
    }
    Ok(())
}

/// The live subscription's checkpoint (START if it never ran).
async fn live_checkpoint(tx: &mut StoreTx) -> Result<Checkpoint, ProjectionError> {
    let row: Option<(i64, i64)> = match tx {
        StoreTx::Postgres(tx) => {
            sqlx::query_as(
                "SELECT checkpoint_tx, checkpoint_pos FROM subscriptions WHERE name = $1",
            )
            .bind(SUBSCRIPTION_NAME)
            .fetch_optional(&mut **tx)
            .await?
        }
        StoreTx::Sqlite(tx) => {
            sqlx::query_as(
                "SELECT checkpoint_tx, checkpoint_pos FROM subscriptions WHERE name = ?1",
            )
            .bind(SUBSCRIPTION_NAME)
            .fetch_optional(&mut **tx)
            .await?
        }
    };
    Ok(
        row.map_or(Checkpoint::START, |(transaction_id, global_position)| {
            Checkpoint {
                transaction_id,
                global_position,
            }
        }),
    )
}

/// The swap transaction: lock the live table, catch up, rename. Returns the events applied
/// while catching up and the checkpoint the new table is at.
async fn swap_in(
    store: &Store,
    options: RebuildOptions,
    mut checkpoint: Checkpoint,
) -> Result<(u64, Checkpoint), ProjectionError> {
    let mut tx = store.begin().await?;
    if let StoreTx::Postgres(tx) = &mut tx {
        // EXCLUSIVE blocks the live subscription's writes (and its SELECT … FOR UPDATE) but not
        // plain readers; the renames below take ACCESS EXCLUSIVE for the last moment only.
        sqlx::query("LOCK TABLE leads IN EXCLUSIVE MODE")
            .execute(&mut **tx)
            .await?;
    }
    // On SQLite the transaction is BEGIN IMMEDIATE on the one write connection: no other writer
    // (the live subscription included) runs until it ends.
    let live = live_checkpoint(&mut tx).await?;
    let deadline = Instant::now() + options.catch_up_timeout;
    let mut caught_up = 0u64;
    loop {
        let events = store
            .read_all(checkpoint, options.batch_size.max(1))
            .await?;
        if let Some(last) = events.last() {
            apply_batch(&mut tx, Table::Rebuild, &events)
                .await
                .map_err(|failure| failure.error)?;
            caught_up += events.len() as u64;
            checkpoint = last.checkpoint();
            continue;
        }
        if checkpoint >= live {
            break;
        }
        // The live subscription read these events, so they are committed; a reader's visibility
        // horizon can lag for a moment behind a transaction elsewhere on the server.
        if Instant::now() > deadline {
            return Err(ProjectionError::CatchUp(format!(
                "the log shows events up to {checkpoint} but the live subscription is at {live}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    match &mut tx {
        StoreTx::Postgres(tx) => {
            for statement in [
                "ALTER TABLE leads RENAME TO leads_old",
                "ALTER TABLE leads_rebuild RENAME TO leads",
                "DROP TABLE leads_old",
            ] {
                sqlx::query(statement).execute(&mut **tx).await?;
            }
            // LIKE … INCLUDING ALL named the copies' indexes after leads_rebuild: give them the
            // live table's names back, so every rebuild leaves the same schema.
            let indexes: Vec<String> = sqlx::query_scalar(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() \
                 AND tablename = 'leads' AND indexname LIKE 'leads\\_rebuild\\_%'",
            )
            .fetch_all(&mut **tx)
            .await?;
            for index in indexes {
                let renamed = format!("leads_{}", &index["leads_rebuild_".len()..]);
                let sql = format!("ALTER INDEX \"{index}\" RENAME TO \"{renamed}\"");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut **tx)
                    .await?;
            }
        }
        StoreTx::Sqlite(tx) => {
            let indexes: Vec<String> = sqlx::query_scalar(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'leads' \
                 AND sql IS NOT NULL ORDER BY name",
            )
            .fetch_all(&mut **tx)
            .await?;
            sqlx::query("DROP TABLE leads").execute(&mut **tx).await?;
            sqlx::query("ALTER TABLE leads_rebuild RENAME TO leads")
                .execute(&mut **tx)
                .await?;
            // The stored statements say `ON leads`: they now index the rebuilt table.
            for index in indexes {
                sqlx::query(sqlx::AssertSqlSafe(index))
                    .execute(&mut **tx)
                    .await?;
            }
        }
    }
    tx.commit().await?;
    Ok((caught_up, checkpoint))
}

async fn count_rows(store: &Store) -> Result<i64, ProjectionError> {
    Ok(match store {
        Store::Postgres(pg) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM leads")
                .fetch_one(pg.pool())
                .await?
        }
        Store::Sqlite(lite) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM leads")
                .fetch_one(lite.read_pool())
                .await?
        }
    })
}

/// A row as one JSON object: the 15 columns by their SQL names, then the hidden fields.
pub fn row_to_json(row: &LeadRow) -> serde_json::Value {
    serde_json::json!({
        "lead_id": row.lead_id,
        "name": row.name,
        "position": row.position,
        "company": row.company,
        "linkedin_url": row.linkedin_url,
        "classification": row.classification,
        "quality_score": row.quality_score,
        "contact_status": row.contact_status.label(),
        "last_contacted": row.last_contacted.map(text_time),
        "message_sent": row.message_sent,
        "response": row.response,
        "response_sentiment": row.response_sentiment,
        "response_intent": row.response_intent,
        "assigned_to": row.assigned_to,
        "notes": row.notes,
        "status_before_review": row.status_before_review.map(|status| status.label()),
        "version": row.version,
        "updated_at": row.updated_at.map(text_time),
        "forgotten": row.forgotten,
    })
}
