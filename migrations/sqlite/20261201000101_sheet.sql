-- The Google Sheet projection's own state. Same tables as PostgreSQL's (see
-- migrations/postgres/20261201000101_sheet.sql for the decisions).
--
-- Embedded-edition decisions:
-- * The lead id is TEXT (the UUID's hyphenated form), the notes' line hashes JSON as TEXT, the
--   flag an INTEGER 0/1 and times RFC 3339 TEXT, as in the events table.
CREATE TABLE sheet_sync (
    target          TEXT    NOT NULL PRIMARY KEY,
    checkpoint_tx   INTEGER NOT NULL DEFAULT 0,
    checkpoint_pos  INTEGER NOT NULL DEFAULT 0,
    header_written  INTEGER NOT NULL DEFAULT 0,
    generation      INTEGER NOT NULL DEFAULT 0,
    updated_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE sheet_rows (
    target          TEXT    NOT NULL,
    lead_id         TEXT    NOT NULL,
    row_number      INTEGER NOT NULL,
    written_status  TEXT    NOT NULL,
    written_notes   TEXT    NOT NULL,
    PRIMARY KEY (target, lead_id),
    UNIQUE (target, row_number)
);
