-- The lead table, embedded edition: a projection of the `lead-<uuid>` streams, one row per
-- lead, written by the `leads` subscription and rebuilt by `salesdept replay leads`.
--
-- Decisions (see the PostgreSQL migration for the shared ones: column order, '' for unknown
-- text, status labels, the version guard on every upsert, domain time in updated_at):
-- * Ids are hyphenated TEXT, times RFC 3339 TEXT with microseconds and a `Z` (the format of
--   metadata.occurred_at), so text order is time order and the file reads well in sqlite3.
-- * quality_score is REAL, forgotten an INTEGER 0/1.
-- * The rebuild copies this table's CREATE statement from sqlite_master to make
--   `leads_rebuild`, and re-creates these indexes from their stored statements after the swap
--   (SQLite cannot rename an index).
CREATE TABLE leads (
    lead_id              TEXT    PRIMARY KEY NOT NULL,
    name                 TEXT    NOT NULL DEFAULT '',
    position             TEXT    NOT NULL DEFAULT '',
    company              TEXT    NOT NULL DEFAULT '',
    linkedin_url         TEXT    NOT NULL DEFAULT '',
    classification       TEXT    NOT NULL DEFAULT '',
    quality_score        REAL,
    contact_status       TEXT    NOT NULL DEFAULT 'New',
    last_contacted       TEXT,
    message_sent         TEXT    NOT NULL DEFAULT '',
    response             TEXT    NOT NULL DEFAULT '',
    response_sentiment   TEXT    NOT NULL DEFAULT '',
    response_intent      TEXT    NOT NULL DEFAULT '',
    assigned_to          TEXT    NOT NULL DEFAULT '',
    notes                TEXT    NOT NULL DEFAULT '',
    status_before_review TEXT,
    version              INTEGER NOT NULL CHECK (version > 0),
    updated_at           TEXT,
    forgotten            INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX leads_contact_status_idx ON leads (contact_status);
CREATE INDEX leads_classification_idx ON leads (classification);
CREATE INDEX leads_quality_score_idx ON leads (quality_score);
CREATE INDEX leads_updated_at_idx ON leads (updated_at);
