//! [`LlmRouter`], the production [`LlmPort`]: for each request it looks in the cache, checks
//! the agent's daily budget, walks the agent's fallback chain (one repair attempt per provider
//! for an answer that does not parse or validate), accounts every call's tokens and cost, and
//! ends in the caller's rules fallback.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;
use salesdept_events::{LlmUsage, Store};

use super::config::{DailyBudget, LlmConfig, LlmConfigError, ResolvedStep};
use super::openai::{ChatMessage, ChatReply, ChatRequest, OpenAiCompatible, ProviderError};
use super::prompt::{Prompt, parse_answer, repair_message};
use super::store::{CachedAnswer, DailySpend, LlmCache, UsageLedger};
use super::{
    AgentName, AnswerSource, CallOutcome, FallbackReason, LlmAlert, LlmAlertKind, LlmAnswer,
    LlmError, LlmPort, LlmTask, ProviderCall, StructuredAnswer,
};
use crate::resilience::{BreakerState, CallError, CircuitBreaker};

/// The model name in [`LlmUsage`] when the rules answered.
pub const RULES_MODEL: &str = "rules";

/// Where the budget's day comes from: the domain clock's date.
pub type Today = Arc<dyn Fn() -> NaiveDate + Send + Sync>;

/// The production LLM port.
pub struct LlmRouter {
    chains: HashMap<AgentName, Vec<ResolvedStep>>,
    budgets: HashMap<AgentName, DailyBudget>,
    providers: HashMap<String, OpenAiCompatible>,
    cache: LlmCache,
    ledger: UsageLedger,
    today: Today,
    /// (agent, day) pairs whose budget alert was already raised.
    budget_alerts_raised: Mutex<HashSet<(AgentName, NaiveDate)>>,
}

impl fmt::Debug for LlmRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmRouter")
            .field("chains", &self.chains)
            .field("budgets", &self.budgets)
            .field("providers", &self.providers)
            .finish_non_exhaustive()
    }
}

impl LlmRouter {
    /// Checks `config` and builds one client (and one circuit breaker) per provider. `today`
    /// gives the domain clock's date, which the daily budgets count by.
    pub fn new(
        config: &LlmConfig,
        store: Store,
        today: impl Fn() -> NaiveDate + Send + Sync + 'static,
    ) -> Result<Self, LlmConfigError> {
        config.validate()?;
        let providers = config
            .providers
            .iter()
            .map(|(name, provider)| {
                OpenAiCompatible::new(name, provider, config.resilience_of(name))
                    .map(|client| (name.clone(), client))
            })
            .collect::<Result<_, _>>()?;
        let mut chains = HashMap::new();
        let mut budgets = HashMap::new();
        for (agent, settings) in &config.agents {
            chains.insert(*agent, config.resolved_chain(*agent)?);
            if let Some(budget) = &settings.daily_budget {
                budgets.insert(*agent, budget.clone());
            }
        }
        Ok(Self {
            chains,
            budgets,
            providers,
            cache: LlmCache::new(store.clone()),
            ledger: UsageLedger::new(store),
            today: Arc::new(today),
            budget_alerts_raised: Mutex::new(HashSet::new()),
        })
    }

    /// Every provider's circuit breaker, to watch (`subscribe`) and alert on.
    pub fn breakers(&self) -> impl Iterator<Item = (&str, &CircuitBreaker)> {
        self.providers
            .iter()
            .map(|(name, provider)| (name.as_str(), provider.resilience().breaker()))
    }

    /// What `agent` has spent today.
    pub async fn spent_today(&self, agent: AgentName) -> Result<DailySpend, LlmError> {
        self.ledger
            .spent(agent, (self.today)())
            .await
            .map_err(LlmError::Ledger)
    }

    async fn cached<T: StructuredAnswer>(
        &self,
        chain: &[ResolvedStep],
        prompt_hash: &str,
    ) -> Option<(usize, String, T)> {
        let mut seen = HashSet::new();
        for (index, step) in chain.iter().enumerate() {
            if !seen.insert(step.model.as_str()) {
                continue;
            }
            match self.cache.get(&step.model, prompt_hash).await {
                Ok(Some(cached)) => {
                    let value = serde_json::from_value::<T>(cached.answer)
                        .map_err(|error| error.to_string())
                        .and_then(|value| value.validate().map(|()| value));
                    match value {
                        Ok(value) => return Some((index, step.model.clone(), value)),
                        Err(problem) => tracing::warn!(
                            model = %step.model,
                            %problem,
                            "ignoring a cached answer that no longer fits its type"
                        ),
                    }
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "the LLM cache cannot be read; asking the model");
                    return None;
                }
            }
        }
        None
    }

    /// Whether the agent's budget for `day` is spent; raises the alert the first time.
    async fn over_budget(
        &self,
        agent: AgentName,
        day: NaiveDate,
        request: &mut Request,
    ) -> Result<bool, LlmError> {
        let Some(budget) = self.budgets.get(&agent) else {
            return Ok(false);
        };
        let spent = self
            .ledger
            .spent(agent, day)
            .await
            .map_err(LlmError::Ledger)?;
        let over_tokens = budget.tokens.filter(|limit| spent.tokens() >= *limit);
        let over_cost = budget.cost_usd.filter(|limit| spent.cost_usd() >= *limit);
        let (metric, value, threshold) = match (over_tokens, over_cost) {
            (Some(limit), _) => ("llm_daily_tokens", spent.tokens() as f64, limit as f64),
            (None, Some(limit)) => ("llm_daily_cost_usd", spent.cost_usd(), limit),
            (None, None) => return Ok(false),
        };
        let first_time = self
            .budget_alerts_raised
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert((agent, day));
        tracing::warn!(%agent, %day, metric, value, threshold, "LLM budget spent; using the rules");
        if first_time {
            request.alerts.push(LlmAlert {
                kind: LlmAlertKind::BudgetExceeded,
                agent,
                date: day,
                metric: metric.to_owned(),
                value,
                threshold,
                message: format!(
                    "{agent} spent its daily LLM budget ({metric} {value} of {threshold}); \
                     it uses the rules engine until the end of {day}"
                ),
            });
        }
        Ok(true)
    }

    /// One chat call through the provider's policy, accounted in the request and the ledger.
    async fn call(
        &self,
        agent: AgentName,
        day: NaiveDate,
        step: &ResolvedStep,
        prompt: &Prompt,
        messages: Vec<ChatMessage>,
        request: &mut Request,
    ) -> Result<ChatReply, CallError<ProviderError>> {
        let provider = &self.providers[&step.provider];
        let breaker = provider.resilience().breaker();
        let was_open = breaker.state() == BreakerState::Open;
        let result = provider
            .chat(&ChatRequest {
                model: step.model.clone(),
                messages,
                temperature: step.temperature,
                max_tokens: step.max_tokens,
                schema_name: prompt.schema_name.clone(),
                schema: prompt.schema.clone(),
            })
            .await;
        if !was_open && breaker.state() == BreakerState::Open {
            request.alerts.push(LlmAlert {
                kind: LlmAlertKind::CircuitOpened {
                    provider: step.provider.clone(),
                },
                agent,
                date: day,
                metric: "llm_circuit_open".to_owned(),
                value: 1.0,
                threshold: 1.0,
                message: format!(
                    "LLM provider {} keeps failing; its circuit is open and it is skipped for now",
                    step.provider
                ),
            });
        }
        if let Ok(reply) = &result {
            let cost = step
                .price
                .cost_micro_usd(reply.prompt_tokens, reply.completion_tokens);
            let labels = [
                ("agent", agent.as_str().to_owned()),
                ("provider", step.provider.clone()),
            ];
            metrics::counter!("salesdept_llm_tokens_total", &labels)
                .increment(u64::from(reply.prompt_tokens) + u64::from(reply.completion_tokens));
            metrics::counter!("salesdept_llm_cost_micro_usd_total", &labels)
                .increment(u64::try_from(cost).unwrap_or(0));
            request.prompt_tokens += reply.prompt_tokens;
            request.completion_tokens += reply.completion_tokens;
            request.cost_micro_usd += cost;
            if let Err(error) = self
                .ledger
                .record(
                    agent,
                    day,
                    reply.prompt_tokens,
                    reply.completion_tokens,
                    cost,
                )
                .await
            {
                tracing::error!(%error, %agent, "cannot record LLM usage in the ledger");
            }
        }
        result
    }

    fn fallback<T>(&self, value: T, reason: FallbackReason, request: Request) -> LlmAnswer<T> {
        LlmAnswer {
            value,
            source: AnswerSource::Fallback(reason),
            usage: Some(LlmUsage {
                model: RULES_MODEL.to_owned(),
                prompt_tokens: request.prompt_tokens,
                completion_tokens: request.completion_tokens,
                cached: false,
                fallback: true,
                fallback_reason: None,
            }),
            cost_micro_usd: request.cost_micro_usd,
            calls: request.calls,
            alerts: request.alerts,
        }
    }
}

/// What one request has done so far.
#[derive(Default)]
struct Request {
    calls: Vec<ProviderCall>,
    alerts: Vec<LlmAlert>,
    prompt_tokens: u32,
    completion_tokens: u32,
    cost_micro_usd: i64,
}

impl Request {
    fn record(
        &mut self,
        step: &ResolvedStep,
        repair: bool,
        result: &Result<ChatReply, CallError<ProviderError>>,
        outcome: CallOutcome,
    ) {
        let (http_attempts, prompt_tokens, completion_tokens) = match result {
            Ok(reply) => (
                reply.http_attempts,
                reply.prompt_tokens,
                reply.completion_tokens,
            ),
            Err(error) => (error.attempts(), 0, 0),
        };
        self.calls.push(ProviderCall {
            provider: step.provider.clone(),
            model: step.model.clone(),
            repair,
            outcome,
            http_attempts,
            prompt_tokens,
            completion_tokens,
            cost_micro_usd: step.price.cost_micro_usd(prompt_tokens, completion_tokens),
        });
    }
}

fn failure_outcome(error: &CallError<ProviderError>) -> CallOutcome {
    match error {
        CallError::CircuitOpen { .. } => CallOutcome::CircuitOpen,
        other => CallOutcome::Failed {
            error: other.to_string(),
        },
    }
}

impl LlmPort for LlmRouter {
    #[tracing::instrument(skip_all, fields(%agent, task = %task.name), err)]
    async fn complete<T, F>(
        &self,
        agent: AgentName,
        task: &LlmTask,
        fallback: F,
    ) -> Result<LlmAnswer<T>, LlmError>
    where
        T: StructuredAnswer,
        F: FnOnce() -> T + Send,
    {
        let prompt = Prompt::build::<T>(task)?;
        let chain = self
            .chains
            .get(&agent)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut request = Request::default();
        if chain.is_empty() {
            return Ok(self.fallback(fallback(), FallbackReason::NotConfigured, request));
        }
        let prompt_hash = prompt.hash();
        if let Some((index, model, value)) = self.cached::<T>(chain, &prompt_hash).await {
            tracing::debug!(%model, "answered from the LLM cache");
            return Ok(LlmAnswer {
                value,
                source: AnswerSource::Cache {
                    model: model.clone(),
                },
                usage: Some(LlmUsage {
                    model,
                    prompt_tokens: 0,
                    completion_tokens: 0,
                    cached: true,
                    fallback: index > 0,
                    fallback_reason: None,
                }),
                cost_micro_usd: 0,
                calls: Vec::new(),
                alerts: Vec::new(),
            });
        }

        let day = (self.today)();
        for (index, step) in chain.iter().enumerate() {
            let mut messages = vec![
                ChatMessage::System(prompt.system.clone()),
                ChatMessage::User(prompt.user.clone()),
            ];
            for repair in [false, true] {
                if self.over_budget(agent, day, &mut request).await? {
                    return Ok(self.fallback(fallback(), FallbackReason::BudgetExceeded, request));
                }
                let result = self
                    .call(agent, day, step, &prompt, messages.clone(), &mut request)
                    .await;
                let reply = match &result {
                    Ok(reply) => reply,
                    Err(error) => {
                        tracing::warn!(provider = %step.provider, %error, "LLM call failed; next provider");
                        request.record(step, repair, &result, failure_outcome(error));
                        break;
                    }
                };
                match parse_answer::<T>(&reply.content) {
                    Ok(value) => {
                        request.record(step, repair, &result, CallOutcome::Valid);
                        self.store_in_cache(&step.model, &prompt_hash, &value, &request)
                            .await;
                        return Ok(LlmAnswer {
                            value,
                            source: AnswerSource::Provider {
                                provider: step.provider.clone(),
                                model: step.model.clone(),
                                repaired: repair,
                            },
                            usage: Some(LlmUsage {
                                model: step.model.clone(),
                                prompt_tokens: request.prompt_tokens,
                                completion_tokens: request.completion_tokens,
                                cached: false,
                                fallback: index > 0,
                                fallback_reason: None,
                            }),
                            cost_micro_usd: request.cost_micro_usd,
                            calls: request.calls,
                            alerts: request.alerts,
                        });
                    }
                    Err(problem) => {
                        tracing::warn!(provider = %step.provider, repair, %problem, "invalid LLM answer");
                        messages.push(ChatMessage::Assistant(reply.content.clone()));
                        messages.push(ChatMessage::User(repair_message(&problem)));
                        request.record(step, repair, &result, CallOutcome::Invalid { problem });
                    }
                }
            }
        }

        request.alerts.push(LlmAlert {
            kind: LlmAlertKind::ChainExhausted,
            agent,
            date: day,
            metric: "llm_chain_failed".to_owned(),
            value: chain.len() as f64,
            threshold: chain.len() as f64,
            message: format!(
                "no LLM provider of {agent} gave a valid answer to {}; the rules answered",
                task.name
            ),
        });
        Ok(self.fallback(fallback(), FallbackReason::ChainExhausted, request))
    }
}

impl LlmRouter {
    async fn store_in_cache<T: StructuredAnswer>(
        &self,
        model: &str,
        prompt_hash: &str,
        value: &T,
        request: &Request,
    ) {
        let answer = match serde_json::to_value(value) {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!(%error, "cannot serialise the answer for the cache");
                return;
            }
        };
        let cached = CachedAnswer {
            answer,
            prompt_tokens: request.prompt_tokens,
            completion_tokens: request.completion_tokens,
        };
        if let Err(error) = self.cache.put(model, prompt_hash, &cached).await {
            tracing::warn!(%error, "cannot store the answer in the LLM cache");
        }
    }
}
