-- The Google Sheet projection's own state: its checkpoint in the log and where each lead's row
-- is, per target (a CSV file, or one tab of one spreadsheet).
--
-- Decisions:
-- * The state is keyed by target (`csv:<path>` or `google:<spreadsheet id>/<tab>`), so
--   switching the configuration to another sheet starts that sheet from the beginning instead
--   of writing rows at another sheet's row numbers.
-- * The checkpoint is the pair the log is read by (transaction id, global position). It and the
--   row mapping move only after the sheet confirmed a write, in one transaction: a failed write
--   moves nothing and the next tick does it again.
-- * `generation` counts commits; a commit expects the generation it loaded, so two sync runners
--   racing on one target cannot both commit (the loser fails and the next tick reloads).
-- * What was last written per lead is kept to tell a person's edit from our own write: the
--   Contact Status label, and the Notes column as a JSON array of the SHA-256 of each line
--   (hashes, not the text: notes are personal data, which lives only in the log, sealed).
CREATE TABLE sheet_sync (
    target          text        NOT NULL,
    checkpoint_tx   bigint      NOT NULL DEFAULT 0,
    checkpoint_pos  bigint      NOT NULL DEFAULT 0,
    header_written  boolean     NOT NULL DEFAULT false,
    generation      bigint      NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sheet_sync_pkey PRIMARY KEY (target)
);

CREATE TABLE sheet_rows (
    target          text   NOT NULL,
    lead_id         uuid   NOT NULL,
    row_number      bigint NOT NULL,
    written_status  text   NOT NULL,
    written_notes   jsonb  NOT NULL,
    CONSTRAINT sheet_rows_pkey PRIMARY KEY (target, lead_id),
    CONSTRAINT sheet_rows_row_number_key UNIQUE (target, row_number)
);
