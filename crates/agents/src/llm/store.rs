//! What the LLM path keeps in the store: the response cache (so an identical prompt to the
//! same model is never paid for twice) and the daily token and cost ledger per agent (so a
//! budget holds across restarts). Tables from `migrations/*/20261125000101_llm_cache.sql`.

use chrono::NaiveDate;
use salesdept_events::Store;
use serde_json::Value;
use sqlx::Row;

use super::AgentName;

/// A cached answer.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedAnswer {
    pub answer: Value,
    /// What the original call cost (the cache hit itself costs nothing).
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// The response cache, keyed by model and prompt hash.
#[derive(Clone, Debug)]
pub struct LlmCache {
    store: Store,
}

impl LlmCache {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// The answer stored for this model and prompt, if any.
    pub async fn get(
        &self,
        model: &str,
        prompt_hash: &str,
    ) -> Result<Option<CachedAnswer>, sqlx::Error> {
        const SQL_PG: &str = "SELECT answer, prompt_tokens, completion_tokens FROM llm_cache \
                              WHERE model = $1 AND prompt_hash = $2";
        const SQL_LITE: &str = "SELECT answer, prompt_tokens, completion_tokens FROM llm_cache \
                                WHERE model = ?1 AND prompt_hash = ?2";
        let row = match &self.store {
            Store::Postgres(store) => {
                let row = sqlx::query(SQL_PG)
                    .bind(model)
                    .bind(prompt_hash)
                    .fetch_optional(store.pool())
                    .await?;
                row.map(|row| -> Result<_, sqlx::Error> {
                    Ok((
                        row.try_get::<Value, _>(0)?,
                        row.try_get::<i32, _>(1)?,
                        row.try_get::<i32, _>(2)?,
                    ))
                })
                .transpose()?
            }
            Store::Sqlite(store) => {
                let row = sqlx::query(SQL_LITE)
                    .bind(model)
                    .bind(prompt_hash)
                    .fetch_optional(store.read_pool())
                    .await?;
                row.map(|row| -> Result<_, sqlx::Error> {
                    let text: String = row.try_get(0)?;
                    let answer = serde_json::from_str(&text)
                        .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
                    Ok((answer, row.try_get::<i32, _>(1)?, row.try_get::<i32, _>(2)?))
                })
                .transpose()?
            }
        };
        Ok(
            row.map(|(answer, prompt_tokens, completion_tokens)| CachedAnswer {
                answer,
                prompt_tokens: u32::try_from(prompt_tokens).unwrap_or(0),
                completion_tokens: u32::try_from(completion_tokens).unwrap_or(0),
            }),
        )
    }

    /// Stores an answer; a concurrent identical call that stored first wins (both are valid).
    pub async fn put(
        &self,
        model: &str,
        prompt_hash: &str,
        answer: &CachedAnswer,
    ) -> Result<(), sqlx::Error> {
        let prompt_tokens = i32::try_from(answer.prompt_tokens).unwrap_or(i32::MAX);
        let completion_tokens = i32::try_from(answer.completion_tokens).unwrap_or(i32::MAX);
        match &self.store {
            Store::Postgres(store) => {
                sqlx::query(
                    "INSERT INTO llm_cache (model, prompt_hash, answer, prompt_tokens, completion_tokens) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (model, prompt_hash) DO NOTHING",
                )
                .bind(model)
                .bind(prompt_hash)
                .bind(&answer.answer)
                .bind(prompt_tokens)
                .bind(completion_tokens)
                .execute(store.pool())
                .await?;
            }
            Store::Sqlite(store) => {
                sqlx::query(
                    "INSERT INTO llm_cache (model, prompt_hash, answer, prompt_tokens, completion_tokens) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (model, prompt_hash) DO NOTHING",
                )
                .bind(model)
                .bind(prompt_hash)
                .bind(answer.answer.to_string())
                .bind(prompt_tokens)
                .bind(completion_tokens)
                .execute(store.write_pool())
                .await?;
            }
        }
        Ok(())
    }
}

/// What an agent spent on LLM calls in one day.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DailySpend {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Millionths of a US dollar.
    pub cost_micro_usd: i64,
    pub calls: u64,
}

impl DailySpend {
    pub fn tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }

    pub fn cost_usd(&self) -> f64 {
        self.cost_micro_usd as f64 / 1_000_000.0
    }
}

/// The daily ledger of tokens and cost per agent.
#[derive(Clone, Debug)]
pub struct UsageLedger {
    store: Store,
}

impl UsageLedger {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// What `agent` has spent on `day`.
    pub async fn spent(&self, agent: AgentName, day: NaiveDate) -> Result<DailySpend, sqlx::Error> {
        let row = match &self.store {
            Store::Postgres(store) => sqlx::query(
                "SELECT prompt_tokens, completion_tokens, cost_micro_usd, calls \
                     FROM llm_usage_daily WHERE day = $1 AND agent = $2",
            )
            .bind(day)
            .bind(agent.as_str())
            .fetch_optional(store.pool())
            .await?
            .map(|row| spend_from_row(&row))
            .transpose()?,
            Store::Sqlite(store) => sqlx::query(
                "SELECT prompt_tokens, completion_tokens, cost_micro_usd, calls \
                     FROM llm_usage_daily WHERE day = ?1 AND agent = ?2",
            )
            .bind(day.to_string())
            .bind(agent.as_str())
            .fetch_optional(store.read_pool())
            .await?
            .map(|row| spend_from_row(&row))
            .transpose()?,
        };
        Ok(row.unwrap_or_default())
    }

    /// Adds one call's tokens and cost to `agent`'s day, in one upsert.
    pub async fn record(
        &self,
        agent: AgentName,
        day: NaiveDate,
        prompt_tokens: u32,
        completion_tokens: u32,
        cost_micro_usd: i64,
    ) -> Result<(), sqlx::Error> {
        let (prompt_tokens, completion_tokens) =
            (i64::from(prompt_tokens), i64::from(completion_tokens));
        match &self.store {
            Store::Postgres(store) => {
                sqlx::query(
                    "INSERT INTO llm_usage_daily AS u (day, agent, prompt_tokens, completion_tokens, cost_micro_usd, calls) \
                     VALUES ($1, $2, $3, $4, $5, 1) \
                     ON CONFLICT (day, agent) DO UPDATE SET \
                       prompt_tokens = u.prompt_tokens + EXCLUDED.prompt_tokens, \
                       completion_tokens = u.completion_tokens + EXCLUDED.completion_tokens, \
                       cost_micro_usd = u.cost_micro_usd + EXCLUDED.cost_micro_usd, \
                       calls = u.calls + 1",
                )
                .bind(day)
                .bind(agent.as_str())
                .bind(prompt_tokens)
                .bind(completion_tokens)
                .bind(cost_micro_usd)
                .execute(store.pool())
                .await?;
            }
            Store::Sqlite(store) => {
                sqlx::query(
                    "INSERT INTO llm_usage_daily (day, agent, prompt_tokens, completion_tokens, cost_micro_usd, calls) \
                     VALUES (?1, ?2, ?3, ?4, ?5, 1) \
                     ON CONFLICT (day, agent) DO UPDATE SET \
                       prompt_tokens = prompt_tokens + excluded.prompt_tokens, \
                       completion_tokens = completion_tokens + excluded.completion_tokens, \
                       cost_micro_usd = cost_micro_usd + excluded.cost_micro_usd, \
                       calls = calls + 1",
                )
                .bind(day.to_string())
                .bind(agent.as_str())
                .bind(prompt_tokens)
                .bind(completion_tokens)
                .bind(cost_micro_usd)
                .execute(store.write_pool())
                .await?;
            }
        }
        Ok(())
    }
}

fn spend_from_row<R: Row>(row: &R) -> Result<DailySpend, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let count = |index: usize| -> Result<u64, sqlx::Error> {
        Ok(u64::try_from(row.try_get::<i64, _>(index)?).unwrap_or(0))
    };
    Ok(DailySpend {
        prompt_tokens: count(0)?,
        completion_tokens: count(1)?,
        cost_micro_usd: row.try_get(2)?,
        calls: count(3)?,
    })
}
