//! The sheet projection's state in the store (`sheet_sync`, `sheet_rows`): its checkpoint, and
//! per lead the row it occupies and what was last written to its editable cells. Loaded once per
//! tick and committed in one transaction after the sheet confirmed a write.

use std::collections::HashMap;

use salesdept_events::{Checkpoint, Store, StoreTx};
use sha2::{Digest, Sha256};
use sqlx::{Postgres, QueryBuilder, Row, Sqlite};
use uuid::Uuid;

use super::{FIRST_LEAD_ROW, SheetError};

/// What the store knows of one target's sheet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SheetState {
    pub target: String,
    pub checkpoint: Checkpoint,
    pub header_written: bool,
    /// Commits so far; a commit expects the generation it loaded.
    pub generation: i64,
    pub rows: HashMap<Uuid, SheetRowState>,
}

/// One lead's row and what was last written to its editable cells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SheetRowState {
    pub lead_id: Uuid,
    pub row: u32,
    /// The Contact Status label written.
    pub written_status: String,
    /// The SHA-256 (hex) of each Notes line written.
    pub written_notes: Vec<String>,
}

impl SheetState {
    /// The last row holding a lead (1, the header, when there is none).
    pub fn last_row(&self) -> u32 {
        self.rows
            .values()
            .map(|row| row.row)
            .max()
            .unwrap_or(FIRST_LEAD_ROW - 1)
    }

    /// The lead in each row.
    pub fn leads_by_row(&self) -> HashMap<u32, Uuid> {
        self.rows
            .values()
            .map(|row| (row.row, row.lead_id))
            .collect()
    }
}

/// The hash a Notes line is remembered by.
pub fn line_hash(line: &str) -> String {
    hex::encode(Sha256::digest(line.trim().as_bytes()))
}

/// Loads the state of `target` (the empty state when it never synced).
pub async fn load_state(store: &Store, target: &str) -> Result<SheetState, SheetError> {
    let mut state = SheetState {
        target: target.to_owned(),
        ..SheetState::default()
    };
    let (sync_row, rows) = match store {
        Store::Postgres(store) => {
            let sync_row = sqlx::query(
                "SELECT checkpoint_tx, checkpoint_pos, header_written, generation FROM sheet_sync WHERE target = $1",
            )
            .bind(target)
            .fetch_optional(store.pool())
            .await?
            .map(|row| -> Result<_, sqlx::Error> {
                Ok((row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)?, row.try_get::<bool, _>(2)?, row.try_get::<i64, _>(3)?))
            })
            .transpose()?;
            let rows = sqlx::query(
                "SELECT lead_id, row_number, written_status, written_notes FROM sheet_rows WHERE target = $1",
            )
            .bind(target)
            .fetch_all(store.pool())
            .await?
            .into_iter()
            .map(|row| -> Result<_, SheetError> {
                let notes: serde_json::Value = row.try_get(3)?;
                Ok(SheetRowState {
                    lead_id: row.try_get(0)?,
                    row: row_number(row.try_get(1)?)?,
                    written_status: row.try_get(2)?,
                    written_notes: serde_json::from_value(notes)
                        .map_err(|error| SheetError::Invalid(format!("sheet_rows.written_notes: {error}")))?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
            (sync_row, rows)
        }
        Store::Sqlite(store) => {
            let sync_row = sqlx::query(
                "SELECT checkpoint_tx, checkpoint_pos, header_written, generation FROM sheet_sync WHERE target = ?1",
            )
            .bind(target)
            .fetch_optional(store.read_pool())
            .await?
            .map(|row| -> Result<_, sqlx::Error> {
                Ok((row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)?, row.try_get::<bool, _>(2)?, row.try_get::<i64, _>(3)?))
            })
            .transpose()?;
            let rows = sqlx::query(
                "SELECT lead_id, row_number, written_status, written_notes FROM sheet_rows WHERE target = ?1",
            )
            .bind(target)
            .fetch_all(store.read_pool())
            .await?
            .into_iter()
            .map(|row| -> Result<_, SheetError> {
                let lead_id: String = row.try_get(0)?;
                let notes: String = row.try_get(3)?;
                Ok(SheetRowState {
                    lead_id: Uuid::parse_str(&lead_id)
                        .map_err(|error| SheetError::Invalid(format!("sheet_rows.lead_id: {error}")))?,
                    row: row_number(row.try_get(1)?)?,
                    written_status: row.try_get(2)?,
                    written_notes: serde_json::from_str(&notes)
                        .map_err(|error| SheetError::Invalid(format!("sheet_rows.written_notes: {error}")))?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
            (sync_row, rows)
        }
    };
    if let Some((transaction_id, global_position, header_written, generation)) = sync_row {
        state.checkpoint = Checkpoint {
            transaction_id,
            global_position,
        };
        state.header_written = header_written;
        state.generation = generation;
    }
    state.rows = rows.into_iter().map(|row| (row.lead_id, row)).collect();
    Ok(state)
}

fn row_number(value: i64) -> Result<u32, SheetError> {
    u32::try_from(value).map_err(|_| SheetError::Invalid(format!("sheet_rows.row_number {value}")))
}

/// What a confirmed write changes in the store.
#[derive(Debug)]
pub struct Commit<'a> {
    pub target: &'a str,
    /// The generation the write was planned from.
    pub expected_generation: i64,
    pub checkpoint: Checkpoint,
    pub header_written: bool,
    /// Rows written (inserted or updated by lead).
    pub rows: Vec<SheetRowState>,
    /// Forget every other row of the target first (a full rewrite).
    pub replace: bool,
}

/// Rows per INSERT statement (5 parameters each: well under both databases' limits).
const ROWS_PER_STATEMENT: usize = 1000;

macro_rules! upsert_rows {
    ($db:ty, $tx:expr, $target:expr, $rows:expr, |$row:ident| $lead_id:expr, $notes:expr) => {{
        for chunk in $rows.chunks(ROWS_PER_STATEMENT) {
            let mut builder = QueryBuilder::<$db>::new(
                "INSERT INTO sheet_rows (target, lead_id, row_number, written_status, written_notes) ",
            );
            builder.push_values(chunk, |mut values, $row| {
                values
                    .push_bind($target.to_owned())
                    .push_bind($lead_id)
                    .push_bind(i64::from($row.row))
                    .push_bind($row.written_status.clone())
                    .push_bind($notes);
            });
            builder.push(
                " ON CONFLICT (target, lead_id) DO UPDATE SET row_number = excluded.row_number, \
                 written_status = excluded.written_status, written_notes = excluded.written_notes",
            );
            builder.build().execute(&mut **$tx).await?;
        }
    }};
}

/// Commits a confirmed write: the rows and the checkpoint together, fenced by generation.
pub async fn commit(store: &Store, commit: Commit<'_>) -> Result<(), SheetError> {
    let mut tx = store.begin().await?;
    let result = commit_in(&mut tx, &commit).await;
    match result {
        Ok(()) => Ok(tx.commit().await?),
        Err(error) => {
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}

async fn commit_in(tx: &mut StoreTx, commit: &Commit<'_>) -> Result<(), SheetError> {
    let target = commit.target;
    let affected = match tx {
        StoreTx::Postgres(tx) => {
            sqlx::query("INSERT INTO sheet_sync (target) VALUES ($1) ON CONFLICT DO NOTHING")
                .bind(target)
                .execute(&mut **tx)
                .await?;
            let affected = sqlx::query(
                "UPDATE sheet_sync SET checkpoint_tx = $2, checkpoint_pos = $3, header_written = $4, \
                 generation = generation + 1, updated_at = now() WHERE target = $1 AND generation = $5",
            )
            .bind(target)
            .bind(commit.checkpoint.transaction_id)
            .bind(commit.checkpoint.global_position)
            .bind(commit.header_written)
            .bind(commit.expected_generation)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if affected == 1 {
                if commit.replace {
                    sqlx::query("DELETE FROM sheet_rows WHERE target = $1")
                        .bind(target)
                        .execute(&mut **tx)
                        .await?;
                }
                upsert_rows!(
                    Postgres,
                    tx,
                    target,
                    commit.rows,
                    |row| row.lead_id,
                    serde_json::json!(row.written_notes)
                );
            }
            affected
        }
        StoreTx::Sqlite(tx) => {
            sqlx::query("INSERT INTO sheet_sync (target) VALUES (?1) ON CONFLICT DO NOTHING")
                .bind(target)
                .execute(&mut **tx)
                .await?;
            let affected = sqlx::query(
                "UPDATE sheet_sync SET checkpoint_tx = ?2, checkpoint_pos = ?3, header_written = ?4, \
                 generation = generation + 1, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
                 WHERE target = ?1 AND generation = ?5",
            )
            .bind(target)
            .bind(commit.checkpoint.transaction_id)
            .bind(commit.checkpoint.global_position)
            .bind(commit.header_written)
            .bind(commit.expected_generation)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            if affected == 1 {
                if commit.replace {
                    sqlx::query("DELETE FROM sheet_rows WHERE target = ?1")
                        .bind(target)
                        .execute(&mut **tx)
                        .await?;
                }
                upsert_rows!(
                    Sqlite,
                    tx,
                    target,
                    commit.rows,
                    |row| row.lead_id.to_string(),
                    serde_json::json!(row.written_notes).to_string()
                );
            }
            affected
        }
    };
    if affected != 1 {
        return Err(SheetError::Invalid(format!(
            "another sheet sync of {target} committed while this one ran; the next tick starts from its state"
        )));
    }
    Ok(())
}
