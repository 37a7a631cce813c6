-- The append-only event log. This table is a public interface: auditors query it with SQL.
--
-- Decisions:
-- * global_position is an identity column: it orders inserts, but a transaction that commits
--   late can make a lower position visible after a higher one. Readers therefore order and
--   checkpoint by (transaction_id, global_position) and only read transactions below the
--   visibility horizon (pg_snapshot_xmin of the current snapshot), never skipping gaps on a timer.
-- * transaction_id is the writing transaction's xid8; an append is the first write of its
--   transaction, so xid order follows stream order.
-- * Optimistic concurrency is enforced by the UNIQUE (stream_id, stream_version) constraint
--   alone: no lock, no SELECT before the INSERT. The constraint names are part of the code:
--   the store maps a 23505 on events_stream_version_key to a version conflict and a 23505 on
--   events_event_id_key to an idempotent retry.
CREATE TABLE events (
    global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_id       text        NOT NULL,
    stream_version  bigint      NOT NULL,
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    schema_version  int         NOT NULL DEFAULT 1,
    data            jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_positive CHECK (stream_version > 0)
);

-- The whole-log reader's order.
CREATE INDEX events_transaction_order ON events (transaction_id, global_position);
-- No other index on the write path: each one costs every append. Audit queries by type or
-- time scan, or use indexes added by later migrations where a read model needs them.

-- Durable subscriptions: one row per named subscriber holding its checkpoint and its lease.
-- The lease is an expiring row renewed in short transactions (never a long-open transaction,
-- which would pin the xid horizon and stall every log reader).
CREATE TABLE subscriptions (
    name              text PRIMARY KEY,
    checkpoint_tx     bigint      NOT NULL DEFAULT 0,
    checkpoint_pos    bigint      NOT NULL DEFAULT 0,
    lease_owner       text,
    lease_expires_at  timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Events a subscription's handler kept failing on; the subscription moved past them.
CREATE TABLE dead_letters (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription     text        NOT NULL,
    global_position  bigint      NOT NULL,
    transaction_id   bigint      NOT NULL,
    event_id         uuid        NOT NULL,
    stream_id        text        NOT NULL,
    event_type       text        NOT NULL,
    error            text        NOT NULL,
    attempts         int         NOT NULL,
    parked_at        timestamptz NOT NULL DEFAULT now(),
    retry_requested_at timestamptz,
    resolved_at      timestamptz,
    CONSTRAINT dead_letters_once UNIQUE (subscription, event_id)
);
CREATE INDEX dead_letters_open ON dead_letters (subscription) WHERE resolved_at IS NULL;
