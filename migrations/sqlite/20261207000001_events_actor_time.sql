-- Serves the audit queries that filter the log by actor and by the domain clock's time
-- (monitoring's heartbeat and error-rate checks, the coordination's look at its own earlier
-- allocations of the day). Without it each such query scanned the whole log, so the cost of
-- monitoring grew with the log.
--
-- Decisions:
-- * An index on expressions, not a new column: the events table keeps DESIGN.md's columns.
--   SQLite uses it only when a query spells the expressions the same way, which
--   SqliteEventStore::query_events does (`json_extract(metadata, '$.actor.kind')`, ...).
-- * Actor first, then time: every time-filtered query of the log names an actor or an event
--   type (event_type has its own index), and an actor's events in a window are a short range.
CREATE INDEX events_actor_occurred_at ON events (
    json_extract(metadata, '$.actor.kind'),
    json_extract(metadata, '$.actor.name'),
    json_extract(metadata, '$.occurred_at')
);
