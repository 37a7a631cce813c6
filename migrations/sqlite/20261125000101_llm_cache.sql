-- What the LLM path keeps: a response cache and a daily spend ledger per agent. Same tables as
-- PostgreSQL's (see migrations/postgres/20261125000101_llm_cache.sql for the decisions).
--
-- Embedded-edition decisions:
-- * The answer is JSON as TEXT and times are RFC 3339 TEXT, as in the events table.
-- * The day is ISO 8601 TEXT (YYYY-MM-DD), which sorts and compares like a date.
CREATE TABLE llm_cache (
    model             TEXT    NOT NULL,
    prompt_hash       TEXT    NOT NULL,
    answer            TEXT    NOT NULL,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (model, prompt_hash)
);

CREATE TABLE llm_usage_daily (
    day               TEXT    NOT NULL,
    agent             TEXT    NOT NULL,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cost_micro_usd    INTEGER NOT NULL DEFAULT 0,
    calls             INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, agent)
);
