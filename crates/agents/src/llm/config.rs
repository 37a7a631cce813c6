//! The typed form of `config/llm.yaml`: the providers (where models are served and with which
//! key), each agent's fallback chain and daily budget, the price table, and the resilience
//! policy of LLM calls. The server loads the file (and expands `${VAR}`); this module only
//! describes and checks it.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::SecretString;
use serde::Deserialize;

use super::AgentName;
use crate::resilience::ResilienceConfig;

/// The whole LLM configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// Providers by the name chains refer to (e.g. `openai`, `anthropic`, `local`).
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Each agent's chain and budget. An agent without an entry (or with an empty chain) uses
    /// the rules engine only.
    #[serde(default)]
    pub agents: BTreeMap<AgentName, AgentLlmConfig>,
    /// USD per million tokens, by model name.
    #[serde(default)]
    pub prices: BTreeMap<String, ModelPrice>,
    /// The policy of every LLM call, unless a provider has its own.
    pub resilience: ResilienceConfig,
}

/// One OpenAI-compatible endpoint. The keys `api_key`, `default_model`, `max_tokens` and
/// `temperature` are the seed's.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// The API base, e.g. `https://api.openai.com/v1`, `http://localhost:11434/v1`.
    pub base_url: String,
    /// Held as a secret: never printed by Debug, never logged. Local servers need none.
    #[serde(default)]
    pub api_key: Option<SecretString>,
    pub default_model: String,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Overrides how this provider is asked for JSON (default: by `kind`).
    #[serde(default)]
    pub structured_output: Option<StructuredOutput>,
    /// Overrides the shared resilience policy for this provider.
    #[serde(default)]
    pub resilience: Option<ResilienceConfig>,
}

/// What kind of server a provider is; decides what the request may contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// OpenAI itself: structured outputs with a strict JSON schema, `max_completion_tokens`.
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic's OpenAI-compatible endpoint (`https://api.anthropic.com/v1/`). Its
    /// documentation lists `response_format` as ignored, temperature as clamped to 0–1 and
    /// system messages as hoisted into one: the schema is therefore given in the prompt and
    /// the answer is checked like any other.
    Anthropic,
    /// OpenRouter: passes `response_format` with a JSON schema to the models that support it.
    #[serde(rename = "openrouter")]
    OpenRouter,
    /// Ollama's `/v1` endpoint: honours a JSON schema in `response_format` (0.5 and later).
    Ollama,
    /// vLLM's OpenAI-compatible server: guided decoding from a JSON schema.
    Vllm,
    /// llama.cpp's `llama-server`: grammar-constrained decoding from a JSON schema.
    LlamaCpp,
    /// Any other OpenAI-compatible server: asked for JSON mode only.
    #[serde(rename = "openai_compatible")]
    OpenAiCompatible,
}

impl ProviderKind {
    /// How this kind of server is asked for JSON unless configured otherwise.
    pub fn default_structured_output(self) -> StructuredOutput {
        match self {
            Self::OpenAi | Self::OpenRouter | Self::Ollama | Self::Vllm | Self::LlamaCpp => {
                StructuredOutput::JsonSchema
            }
            Self::Anthropic => StructuredOutput::Prompt,
            Self::OpenAiCompatible => StructuredOutput::JsonObject,
        }
    }

    /// The highest temperature the server accepts.
    pub fn max_temperature(self) -> f32 {
        match self {
            Self::Anthropic => 1.0,
            _ => 2.0,
        }
    }

    /// Whether the token limit goes in `max_completion_tokens` (OpenAI's current field; its
    /// newer models reject `max_tokens`) rather than `max_tokens` (what other servers read).
    pub fn uses_max_completion_tokens(self) -> bool {
        matches!(self, Self::OpenAi)
    }

    /// Whether models served this way run on our own hardware, so a missing price means free.
    pub fn is_self_hosted(self) -> bool {
        matches!(self, Self::Ollama | Self::Vllm | Self::LlamaCpp)
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::OpenRouter => "openrouter",
            Self::Ollama => "ollama",
            Self::Vllm => "vllm",
            Self::LlamaCpp => "llama_cpp",
            Self::OpenAiCompatible => "openai_compatible",
        })
    }
}

/// How a server is asked for a JSON answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructuredOutput {
    /// `response_format: {type: json_schema, ...}` with the answer's schema.
    JsonSchema,
    /// `response_format: {type: json_object}`; the schema is in the prompt.
    JsonObject,
    /// No `response_format`; the schema is in the prompt.
    Prompt,
}

/// An agent's LLM settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentLlmConfig {
    /// Tried in order; after the last one, the rules engine.
    #[serde(default)]
    pub chain: Vec<ChainEntry>,
    #[serde(default)]
    pub daily_budget: Option<DailyBudget>,
}

/// One step of a chain: the seed's provider, model, temperature and max tokens.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainEntry {
    pub provider: String,
    /// Default: the provider's `default_model`.
    #[serde(default)]
    pub model: Option<String>,
    /// Default: the provider's `temperature` (else the server's default).
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Default: the provider's `max_tokens` (else the server's default).
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

/// The most an agent may spend on LLM calls in one day (by the domain clock). Either limit may
/// be left out; reaching one sends the agent to the rules engine until the next day.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DailyBudget {
    #[serde(default)]
    pub tokens: Option<u64>,
    #[serde(default)]
    pub cost_usd: Option<f64>,
}

/// A model's price in USD per million tokens.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    pub prompt: f64,
    pub completion: f64,
}

impl ModelPrice {
    pub const FREE: Self = Self {
        prompt: 0.0,
        completion: 0.0,
    };

    /// The cost of a call in micro-dollars (millionths of a USD), rounded.
    pub fn cost_micro_usd(&self, prompt_tokens: u32, completion_tokens: u32) -> i64 {
        // USD per million tokens × tokens = micro-dollars.
        (self.prompt * f64::from(prompt_tokens) + self.completion * f64::from(completion_tokens))
            .round() as i64
    }
}

/// A chain step with every default filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedStep {
    pub provider: String,
    pub model: String,
    pub temperature: Option<f32>,
    pub max_tokens: Option<u32>,
    pub price: ModelPrice,
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LlmConfigError {
    #[error(
        "agent {agent}: chain step {step} names provider {provider:?}, which is not configured"
    )]
    UnknownProvider {
        agent: AgentName,
        step: usize,
        provider: String,
    },
    #[error("provider {provider:?}: base_url {base_url:?} is not an http(s) URL")]
    InvalidBaseUrl { provider: String, base_url: String },
    #[error("provider {provider:?}: {problem}")]
    InvalidProvider { provider: String, problem: String },
    #[error("agent {agent}: chain step {step}: {problem}")]
    InvalidStep {
        agent: AgentName,
        step: usize,
        problem: String,
    },
    #[error(
        "model {model:?} (provider {provider:?}) has no entry in prices; add one, or 0 if it is free"
    )]
    MissingPrice { provider: String, model: String },
    #[error("agent {agent}: daily budget: {problem}")]
    InvalidBudget { agent: AgentName, problem: String },
    #[error("provider {provider:?}: cannot build its HTTP client: {message}")]
    HttpClient { provider: String, message: String },
}

impl LlmConfig {
    /// Checks that every chain names a configured provider, that temperatures, token limits and
    /// budgets make sense, and that every paid model has a price (so a cost budget holds).
    pub fn validate(&self) -> Result<(), LlmConfigError> {
        for (name, provider) in &self.providers {
            let url = url::Url::parse(&provider.base_url).ok();
            if !url.is_some_and(|url| matches!(url.scheme(), "http" | "https")) {
                return Err(LlmConfigError::InvalidBaseUrl {
                    provider: name.clone(),
                    base_url: provider.base_url.clone(),
                });
            }
            if provider.default_model.trim().is_empty() {
                return Err(LlmConfigError::InvalidProvider {
                    provider: name.clone(),
                    problem: "default_model must not be empty".into(),
                });
            }
        }
        for agent in self.agents.keys() {
            let steps = self.resolved_chain(*agent)?;
            for (step, resolved) in steps.iter().enumerate() {
                let kind = self.providers[&resolved.provider].kind;
                let invalid = |problem: String| LlmConfigError::InvalidStep {
                    agent: *agent,
                    step,
                    problem,
                };
                if let Some(temperature) = resolved.temperature
                    && !(0.0..=kind.max_temperature()).contains(&temperature)
                {
                    return Err(invalid(format!(
                        "temperature {temperature} is outside 0–{} for a {kind} provider",
                        kind.max_temperature()
                    )));
                }
                if resolved.max_tokens == Some(0) {
                    return Err(invalid("max_tokens must be at least 1".into()));
                }
            }
            if let Some(budget) = &self.agents[agent].daily_budget {
                let problem = match (budget.tokens, budget.cost_usd) {
                    (None, None) => Some("give tokens, cost_usd or both"),
                    (_, Some(cost)) if !(cost.is_finite() && cost >= 0.0) => {
                        Some("cost_usd must be a number of dollars, 0 or more")
                    }
                    _ => None,
                };
                if let Some(problem) = problem {
                    return Err(LlmConfigError::InvalidBudget {
                        agent: *agent,
                        problem: problem.into(),
                    });
                }
            }
        }
        for (model, price) in &self.prices {
            if !(price.prompt >= 0.0 && price.completion >= 0.0) {
                return Err(LlmConfigError::InvalidProvider {
                    provider: format!("prices.{model}"),
                    problem: "prices must be 0 or more".into(),
                });
            }
        }
        Ok(())
    }

    /// The agent's chain with the providers' defaults and the prices filled in.
    pub fn resolved_chain(&self, agent: AgentName) -> Result<Vec<ResolvedStep>, LlmConfigError> {
        let Some(settings) = self.agents.get(&agent) else {
            return Ok(Vec::new());
        };
        settings
            .chain
            .iter()
            .enumerate()
            .map(|(step, entry)| {
                let provider = self.providers.get(&entry.provider).ok_or_else(|| {
                    LlmConfigError::UnknownProvider {
                        agent,
                        step,
                        provider: entry.provider.clone(),
                    }
                })?;
                let model = entry
                    .model
                    .clone()
                    .unwrap_or_else(|| provider.default_model.clone());
                let price = match self.prices.get(&model) {
                    Some(price) => *price,
                    None if provider.kind.is_self_hosted() => ModelPrice::FREE,
                    None => {
                        return Err(LlmConfigError::MissingPrice {
                            provider: entry.provider.clone(),
                            model,
                        });
                    }
                };
                Ok(ResolvedStep {
                    provider: entry.provider.clone(),
                    model,
                    temperature: entry.temperature.or(provider.temperature),
                    max_tokens: entry.max_tokens.or(provider.max_tokens),
                    price,
                })
            })
            .collect()
    }

    /// The resilience policy of one provider.
    pub fn resilience_of(&self, provider: &str) -> &ResilienceConfig {
        self.providers
            .get(provider)
            .and_then(|provider| provider.resilience.as_ref())
            .unwrap_or(&self.resilience)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml_like: serde_json::Value) -> LlmConfig {
        serde_json::from_value(yaml_like).unwrap()
    }

    fn base() -> serde_json::Value {
        serde_json::json!({
            "providers": {
                "openai": {"kind": "openai", "base_url": "https://api.openai.com/v1",
                           "api_key": "sk-test", "default_model": "gpt-4o-mini",
                           "max_tokens": 500, "temperature": 0.7},
                "local": {"kind": "ollama", "base_url": "http://localhost:11434/v1",
                          "default_model": "llama3.1:8b"}
            },
            "agents": {
                "lead_finder": {"chain": [{"provider": "openai"}, {"provider": "local", "temperature": 0.0}],
                                "daily_budget": {"tokens": 1000}}
            },
            "prices": {"gpt-4o-mini": {"prompt": 0.15, "completion": 0.6}},
            "resilience": {"timeout_seconds": 30, "max_retries": 2, "min_backoff_seconds": 0.5,
                           "max_backoff_seconds": 10, "max_retry_after_seconds": 60,
                           "breaker_failure_threshold": 5, "breaker_cool_down_seconds": 60}
        })
    }

    #[test]
    fn a_chain_takes_the_providers_defaults_and_prices() {
        let config = config(base());
        config.validate().unwrap();
        let chain = config.resolved_chain(AgentName::LeadFinder).unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0].model, "gpt-4o-mini");
        assert_eq!(chain[0].temperature, Some(0.7));
        assert_eq!(chain[0].max_tokens, Some(500));
        assert_eq!(
            chain[0].price,
            ModelPrice {
                prompt: 0.15,
                completion: 0.6
            }
        );
        assert_eq!(chain[1].model, "llama3.1:8b");
        assert_eq!(chain[1].temperature, Some(0.0));
        assert_eq!(
            chain[1].price,
            ModelPrice::FREE,
            "a self-hosted model without a price is free"
        );
        assert!(
            config
                .resolved_chain(AgentName::Outreach)
                .unwrap()
                .is_empty()
        );
    }

    /// Turns a valid configuration into a broken one.
    type Breakage = fn(&mut serde_json::Value);

    #[test]
    fn broken_configurations_are_refused_with_a_reason() {
        let cases: [(&str, Breakage); 6] = [
            ("unknown provider", |c| {
                c["agents"]["lead_finder"]["chain"][0]["provider"] = "nope".into()
            }),
            ("paid model without a price", |c| {
                c["prices"] = serde_json::json!({})
            }),
            ("temperature above anthropic's 1.0", |c| {
                c["providers"]["openai"]["kind"] = "anthropic".into();
                c["providers"]["openai"]["temperature"] = 1.5.into();
            }),
            ("zero max tokens", |c| {
                c["agents"]["lead_finder"]["chain"][0]["max_tokens"] = 0.into()
            }),
            ("a budget with no limit", |c| {
                c["agents"]["lead_finder"]["daily_budget"] = serde_json::json!({})
            }),
            ("a base url that is not http", |c| {
                c["providers"]["local"]["base_url"] = "localhost:11434".into()
            }),
        ];
        for (description, break_it) in cases {
            let mut value = base();
            break_it(&mut value);
            assert!(
                config(value).validate().is_err(),
                "{description} was accepted"
            );
        }
    }

    #[test]
    fn prices_are_per_million_tokens_and_costs_are_in_micro_dollars() {
        let price = ModelPrice {
            prompt: 0.15,
            completion: 0.6,
        };
        // 1,000 prompt tokens at $0.15/M = $0.00015 = 150 µ$; 500 completion at $0.60/M = 300 µ$.
        assert_eq!(price.cost_micro_usd(1000, 500), 450);
        assert_eq!(ModelPrice::FREE.cost_micro_usd(1_000_000, 1_000_000), 0);
    }
}
