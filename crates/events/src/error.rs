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
    /// Personal-data encryption failed (the message never holds key material or personal data).
    #[error("personal data vault: {0}")]
    Vault(String),
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

/// Whether `error`, or any error in its chain of sources, is a lost connection or a busy
/// database (a [`StoreError`] or a `sqlx::Error` that [`StoreError::is_transient`] calls so).
/// Callers that only see a boxed error — a subscription's handler failure, a scheduled job's —
/// use it to retry later instead of giving up on the work (parking an event, skipping a job).
pub fn is_transient_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(store) = error.downcast_ref::<StoreError>()
            && store.is_transient()
        {
            return true;
        }
        if let Some(sqlx) = error.downcast_ref::<sqlx::Error>()
            && is_transient_sqlx(sqlx)
        {
            return true;
        }
        current = error.source();
    }
    false
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An agent's error wrapping the store's, as thiserror writes them.
    #[derive(Debug, thiserror::Error)]
    enum AgentError {
        #[error(transparent)]
        Store(#[from] StoreError),
        #[error("sending failed: {0}")]
        Send(#[source] StoreError),
        #[error("the model refused")]
        Refused,
    }

    fn lost_connection() -> StoreError {
        StoreError::Database(sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset,
        )))
    }

    #[test]
    fn a_lost_connection_is_transient_however_deep_it_is_wrapped() {
        let cases: Vec<(Box<dyn std::error::Error + Send + Sync>, bool, &str)> = vec![
            (Box::new(lost_connection()), true, "the store's own error"),
            (
                Box::new(sqlx::Error::PoolTimedOut),
                true,
                "no connection within the timeout",
            ),
            (
                Box::new(AgentError::Store(lost_connection())),
                true,
                "wrapped transparently",
            ),
            (
                Box::new(AgentError::Send(lost_connection())),
                true,
                "wrapped as a source",
            ),
            (
                Box::new(AgentError::Refused),
                false,
                "an agent's own failure",
            ),
            (
                Box::new(AgentError::Store(StoreError::InvalidAppend("empty".into()))),
                false,
                "a store error no retry fixes",
            ),
            ("a handler's message".into(), false, "plain text"),
        ];
        for (error, transient, case) in cases {
            assert_eq!(is_transient_error(error.as_ref()), transient, "{case}");
        }
    }
}
