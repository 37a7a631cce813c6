//! The LLM port: agents ask for a typed, validated answer to a task and always get one — from
//! a provider, from the response cache, or from the rules engine they pass as the fallback.
//!
//! - [`LlmPort`] is the trait agents use; [`LlmRouter`] is the production implementation
//!   (async-openai against OpenAI-compatible servers, a fallback chain per agent from
//!   `config/llm.yaml`, the store-backed cache, token accounting and a daily budget);
//!   [`RulesOnly`] is the embedded default that needs no network and no key.
//! - Answers are typed: `T` derives `Deserialize` and `JsonSchema` and implements [`Validate`]
//!   for what the type system cannot say (ranges, consistency). An answer that does not parse
//!   or validate gets one repair attempt that shows the model its error; then the next
//!   provider is tried; then the rules.
//! - Untrusted text goes in [`LlmTask::data`] and only ever reaches the model as quoted JSON in
//!   the user message ([`prompt`]).

pub mod answers;
pub mod config;
pub mod openai;
pub mod prompt;
pub mod router;
pub mod store;

use std::fmt;
use std::future::Future;
use std::str::FromStr;

use chrono::NaiveDate;
use salesdept_events::LlmUsage;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use answers::{
    DraftedMessage, ProfileAssessment, ReplyAssessment, analyse_reply_task, classify_profile_task,
    draft_message_task,
};
pub use config::{LlmConfig, LlmConfigError, ProviderKind, StructuredOutput};
pub use router::LlmRouter;

/// The agents that ask the LLM (the keys of `agents:` in `config/llm.yaml`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentName {
    LeadFinder,
    Outreach,
    SalesManager,
}

impl AgentName {
    pub const ALL: [AgentName; 3] = [Self::LeadFinder, Self::Outreach, Self::SalesManager];

    /// `lead_finder`, `outreach` or `sales_manager` (also the actor name of the agent's events).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LeadFinder => "lead_finder",
            Self::Outreach => "outreach",
            Self::SalesManager => "sales_manager",
        }
    }
}

impl fmt::Display for AgentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|agent| agent.as_str() == text)
            .ok_or_else(|| {
                format!("unknown agent {text:?}: expected lead_finder, outreach or sales_manager")
            })
    }
}

/// The checks a parsed answer must pass beyond its type: ranges, allowed combinations. The
/// error is shown to the model in the repair attempt, so say what is wrong and what is allowed.
pub trait Validate {
    fn validate(&self) -> Result<(), String>;
}

/// What an answer type needs: a schema to show the model, parsing, checks, and serialising
/// for the cache.
pub trait StructuredAnswer:
    DeserializeOwned + Serialize + JsonSchema + Validate + Send + Sync + 'static
{
}

impl<T> StructuredAnswer for T where
    T: DeserializeOwned + Serialize + JsonSchema + Validate + Send + Sync + 'static
{
}

/// One question for the LLM.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmTask {
    /// Names the task and its answer schema: 1–64 letters, digits, `_` or `-`
    /// (e.g. `classify_profile`, `analyse_reply`).
    pub name: String,
    /// What to do. Our own, trusted text: it goes into the system message.
    pub instructions: String,
    /// The input: untrusted (a profile, a reply). It reaches the model only as quoted JSON
    /// data in the user message, never as instructions.
    pub data: serde_json::Value,
}

/// Where an answer came from.
#[derive(Clone, Debug, PartialEq)]
pub enum AnswerSource {
    /// A provider of the agent's chain answered (after one repair attempt when `repaired`).
    Provider {
        provider: String,
        model: String,
        repaired: bool,
    },
    /// The same prompt was answered before by this model.
    Cache { model: String },
    /// The caller's rules fallback.
    Fallback(FallbackReason),
}

/// Why the rules answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FallbackReason {
    /// No LLM is configured for the agent.
    NotConfigured,
    /// The agent's daily token or cost budget is spent.
    BudgetExceeded,
    /// Every provider of the chain failed or answered invalidly.
    ChainExhausted,
}

/// What happened to one chat call of a request.
#[derive(Clone, Debug, PartialEq)]
pub enum CallOutcome {
    /// The answer parsed and validated.
    Valid,
    /// The answer did not parse or validate.
    Invalid { problem: String },
    /// The call failed (after the resilience policy's retries).
    Failed { error: String },
    /// The provider's circuit is open: it was not called.
    CircuitOpen,
}

/// One chat call made (or skipped) for a request, for logs and reports.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderCall {
    pub provider: String,
    pub model: String,
    /// Whether this was the repair attempt.
    pub repair: bool,
    pub outcome: CallOutcome,
    /// HTTP attempts made, retries included.
    pub http_attempts: u32,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub cost_micro_usd: i64,
}

/// Something the caller should turn into a `performance_alert` on the `department` stream.
/// The fields are those of `PerformanceAlert`.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmAlert {
    pub kind: LlmAlertKind,
    pub agent: AgentName,
    /// The domain clock's day.
    pub date: NaiveDate,
    /// e.g. `llm_daily_tokens`, `llm_daily_cost_usd`, `llm_circuit_open`, `llm_chain_failed`.
    pub metric: String,
    pub value: f64,
    pub threshold: f64,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LlmAlertKind {
    /// The agent's daily budget is spent; it runs on rules until tomorrow. Raised once per
    /// agent and day (per process).
    BudgetExceeded,
    /// This request's failures opened the provider's circuit.
    CircuitOpened { provider: String },
    /// Every provider failed; the rules answered.
    ChainExhausted,
}

/// A typed answer and how it was obtained.
#[derive(Clone, Debug, PartialEq)]
pub struct LlmAnswer<T> {
    pub value: T,
    pub source: AnswerSource,
    /// For the metadata of the event the answer causes: the model that answered (`rules` for
    /// the fallback) and the tokens this request spent, all calls included (0 from the cache).
    /// None when no LLM was involved at all.
    pub usage: Option<LlmUsage>,
    /// What this request cost, all calls included, in millionths of a USD.
    pub cost_micro_usd: i64,
    pub calls: Vec<ProviderCall>,
    pub alerts: Vec<LlmAlert>,
}

/// Why no answer could be given at all (provider failures never end here: they end in the
/// fallback).
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("invalid task: {0}")]
    InvalidTask(String),
    /// The budget ledger could not be read, so spending more could not be allowed.
    #[error("cannot read the LLM budget ledger: {0}")]
    Ledger(#[source] sqlx::Error),
}

/// The port agents ask through.
pub trait LlmPort: Send + Sync {
    /// A typed, validated answer to `task` for `agent`. `fallback` is the rules engine's
    /// answer, computed only when no provider (and no cached answer) can give one.
    fn complete<T, F>(
        &self,
        agent: AgentName,
        task: &LlmTask,
        fallback: F,
    ) -> impl Future<Output = Result<LlmAnswer<T>, LlmError>> + Send
    where
        T: StructuredAnswer,
        F: FnOnce() -> T + Send;
}

/// The embedded default: no network, no key — the rules answer every task.
#[derive(Clone, Copy, Debug, Default)]
pub struct RulesOnly;

impl LlmPort for RulesOnly {
    async fn complete<T, F>(
        &self,
        _agent: AgentName,
        _task: &LlmTask,
        fallback: F,
    ) -> Result<LlmAnswer<T>, LlmError>
    where
        T: StructuredAnswer,
        F: FnOnce() -> T + Send,
    {
        Ok(LlmAnswer {
            value: fallback(),
            source: AnswerSource::Fallback(FallbackReason::NotConfigured),
            usage: None,
            cost_micro_usd: 0,
            calls: Vec::new(),
            alerts: Vec::new(),
        })
    }
}
