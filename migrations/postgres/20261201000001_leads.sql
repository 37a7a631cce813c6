-- The lead table: a projection of the `lead-<uuid>` streams, one row per lead, written by the
-- `leads` subscription and rebuilt from the log by `salesdept replay leads`. It can be dropped
-- and rebuilt at any time; the log is the truth.
--
-- Decisions:
-- * The first 15 columns are the seed's Sheet columns in DESIGN.md order, so `SELECT *` reads
--   like the Sheet. Hidden fields the projection needs to evolve a row follow them.
-- * Text columns are NOT NULL DEFAULT '': an unknown value is an empty cell, exactly as the
--   Sheet and the CSV show it, so readers never distinguish NULL from ''. Only the typed columns
--   (quality_score, last_contacted, updated_at, status_before_review) may be NULL.
-- * contact_status holds the status label the team sees ("In Review", "Closed Won"), the
--   seed's Contact Status values; the code maps labels to LeadStatus in one place.
-- * version is the stream version of the last event applied. Every write is an upsert guarded
--   by `leads.version < EXCLUDED.version`, so a redelivered batch, or the live subscription
--   applying an event the rebuild already applied, changes nothing.
-- * updated_at is the domain time (metadata.occurred_at) of the last event applied, never
--   now(): a rebuild gives the very same bytes as the live table.
-- * forgotten marks a crypto-shredded person: their personal columns stay blank for good.
-- * Indexes serve the HTTP API's filters and orders: status, classification, score (also the
--   allocation order, best first) and updated_at (recent changes, incremental Sheet syncs).
--   Text search over name/company/position is an ILIKE scan: a department has at most a few
--   hundred thousand leads, and pg_trgm is not assumed to be installed.
-- * The rebuild creates `leads_rebuild (LIKE leads INCLUDING ALL)` and renames it into place;
--   index names follow PostgreSQL's own `<table>_<column>_idx` pattern so that the rebuilt
--   table's indexes get their names back after the swap.
CREATE TABLE leads (
    lead_id              uuid             PRIMARY KEY,
    name                 text             NOT NULL DEFAULT '',
    position             text             NOT NULL DEFAULT '',
    company              text             NOT NULL DEFAULT '',
    linkedin_url         text             NOT NULL DEFAULT '',
    classification       text             NOT NULL DEFAULT '',
    quality_score        double precision,
    contact_status       text             NOT NULL DEFAULT 'New',
    last_contacted       timestamptz,
    message_sent         text             NOT NULL DEFAULT '',
    response             text             NOT NULL DEFAULT '',
    response_sentiment   text             NOT NULL DEFAULT '',
    response_intent      text             NOT NULL DEFAULT '',
    assigned_to          text             NOT NULL DEFAULT '',
    notes                text             NOT NULL DEFAULT '',
    status_before_review text,
    version              bigint           NOT NULL CHECK (version > 0),
    updated_at           timestamptz,
    forgotten            boolean          NOT NULL DEFAULT false
);

CREATE INDEX leads_contact_status_idx ON leads (contact_status);
CREATE INDEX leads_classification_idx ON leads (classification);
CREATE INDEX leads_quality_score_idx ON leads (quality_score);
CREATE INDEX leads_updated_at_idx ON leads (updated_at);
