-- The append-only event log, embedded edition. Same columns as PostgreSQL's table.
--
-- Decisions:
-- * SQLite serialises writers, so global_position alone orders the log safely; transaction_id
--   is kept for the same column set and always holds 0.
-- * Ids are stored as hyphenated TEXT and JSON as TEXT so the file is readable with the
--   sqlite3 shell; times are RFC 3339 TEXT.
-- * AUTOINCREMENT guarantees a position is never reused, even after the last row is deleted.
CREATE TABLE events (
    global_position INTEGER PRIMARY KEY AUTOINCREMENT,
    transaction_id  INTEGER NOT NULL DEFAULT 0,
    stream_id       TEXT    NOT NULL,
    stream_version  INTEGER NOT NULL CHECK (stream_version > 0),
    event_id        TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    schema_version  INTEGER NOT NULL DEFAULT 1,
    data            TEXT    NOT NULL,
    metadata        TEXT    NOT NULL DEFAULT '{}',
    recorded_at     TEXT    NOT NULL,
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version),
    CONSTRAINT events_event_id_key UNIQUE (event_id)
);
CREATE INDEX events_event_type ON events (event_type);

CREATE TABLE subscriptions (
    name              TEXT PRIMARY KEY,
    checkpoint_tx     INTEGER NOT NULL DEFAULT 0,
    checkpoint_pos    INTEGER NOT NULL DEFAULT 0,
    lease_owner       TEXT,
    lease_expires_at  INTEGER, -- unix milliseconds
    updated_at        TEXT NOT NULL
);

CREATE TABLE dead_letters (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription     TEXT    NOT NULL,
    global_position  INTEGER NOT NULL,
    transaction_id   INTEGER NOT NULL,
    event_id         TEXT    NOT NULL,
    stream_id        TEXT    NOT NULL,
    event_type       TEXT    NOT NULL,
    error            TEXT    NOT NULL,
    attempts         INTEGER NOT NULL,
    parked_at        TEXT    NOT NULL,
    retry_requested_at TEXT,
    resolved_at      TEXT,
    CONSTRAINT dead_letters_once UNIQUE (subscription, event_id)
);
