//! The event log's one error type.

use crate::envelope::ExpectedVersion;

/// Everything that can go wrong reading or writing the log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended to the stream first (optimistic concurrency).
    #[error("version conflict on stream {stream_id}: expected {expected}, actual {}", actual.map_or_else(|| "no stream".to_owned(), |version| version.to_string()))]
    Conflict {
        stream_id: String,
        expected: ExpectedVersion,
        /// The stream's version when the conflict was detected (None: no stream).
        actual: Option<i64>,
    },
    /// An event id is already stored with other content or in another stream.
    #[error(
        "event id {event_id} is already stored in stream {stored_stream_id} with different content"
    )]
    DuplicateEventId {
        event_id: uuid::Uuid,
        stored_stream_id: String,
    },
    /// The append was refused before reaching the database.
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    #[error("invalid checkpoint {0:?}: expected the opaque text printed by `log read`")]
    InvalidCheckpoint(String),
    #[error("invalid database URL {0:?}: use postgres://… or sqlite://…")]
    InvalidDatabaseUrl(String),
    #[error("cannot decode {event_type} event at position {global_position}: {message}")]
    Decode {
        event_type: String,
        global_position: i64,
        message: String,
    },
    #[error("cannot upcast {event_type} from schema version {from}: {message}")]
    Upcast {
        event_type: String,
        from: i32,
        message: String,
    },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot create the data directory {path}: {message}")]
    DataDirectory { path: String, message: String },
}

impl StoreError {
    /// Whether this error is a version conflict (the caller should reload and decide again).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    /// Whether retrying the same operation later may succeed (a lost connection, a busy database).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Database(error) => is_transient_sqlx(error),
            _ => false,
        }
    }
}

/// Connection-level failures that a reconnect can fix.
pub(crate) fn is_transient_sqlx(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(database) => {
            // 08xxx: connection exceptions; 57P01..57P03: admin shutdown, crash shutdown,
            // cannot connect now; 40001/40P01: serialization failure and deadlock;
            // SQLite 5/6: SQLITE_BUSY / SQLITE_LOCKED.
            database.code().is_some_and(|code| {
                code.starts_with("08")
                    || matches!(
                        code.as_ref(),
                        "57P01" | "57P02" | "57P03" | "40001" | "40P01" | "5" | "6" | "517"
                    )
            })
        }
        _ => false,
    }
}
