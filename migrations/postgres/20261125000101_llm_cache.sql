-- What the LLM path keeps: a response cache and a daily spend ledger per agent.
--
-- Decisions:
-- * The cache key is (model, prompt_hash): the SHA-256 of everything the model is shown (schema
--   name, system message with the instructions and the answer's schema, user message with the
--   quoted data). The same input to the same model is answered from here and never paid twice.
--   Only answers that parsed and validated are stored; the rules fallback is never cached.
-- * The answer is the validated value as jsonb; readers parse and validate it again, so a
--   changed answer type ignores stale rows instead of failing.
-- * The ledger counts tokens and cost per (day, agent), the day being the domain clock's date,
--   so a daily budget holds across restarts. Cost is in integer micro-dollars so sums are exact.
--   One upsert per LLM call; no row lock is held beyond that statement.
CREATE TABLE llm_cache (
    model             text        NOT NULL,
    prompt_hash       text        NOT NULL,
    answer            jsonb       NOT NULL,
    prompt_tokens     int         NOT NULL DEFAULT 0,
    completion_tokens int         NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT llm_cache_pkey PRIMARY KEY (model, prompt_hash)
);

CREATE TABLE llm_usage_daily (
    day               date   NOT NULL,
    agent             text   NOT NULL,
    prompt_tokens     bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0,
    cost_micro_usd    bigint NOT NULL DEFAULT 0,
    calls             bigint NOT NULL DEFAULT 0,
    CONSTRAINT llm_usage_daily_pkey PRIMARY KEY (day, agent)
);
