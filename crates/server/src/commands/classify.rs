//! `salesdept classify profiles|replies FILE.jsonl`: runs the configured classifier on a file,
//! one JSON line out per line in.
//!
//! The classifier is the agent's chain: the LLM router from `llm.yaml` when `agents.yaml`
//! gives the agent an LLM provider (profiles: `lead_finder`; replies: `sales_manager`, the
//! agent that records `response_analysed`), else the rules engine; `--rules` forces the rules.
//! The store is opened only for the LLM chain, whose response cache and budget ledger live
//! there. A bad line is reported on stderr with its number and does not stop the others; the
//! command exits non-zero at the end if any line failed. Lines with labels (`label`/`tier` for
//! profiles, `sentiment`/`intent` for replies, as in the fixtures) are scored: accuracy and
//! a confusion matrix per field go to stderr at the end.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use chrono::Utc;
use salesdept_agents::llm::{
    AgentName, AnswerSource, LlmPort, LlmRouter, ProfileAssessment, ReplyAssessment, RulesOnly,
    analyse_reply_task, classify_profile_task,
};
use salesdept_agents::rules::evaluation::ConfusionMatrix;
use salesdept_agents::rules::{self, Profile};
use salesdept_events::domain::{Classification, Intent, Sentiment};
use serde_json::{Map, Value, json};

use crate::cli::{ClassifyCommand, GlobalArgs};
use crate::config::{load_agents, load_llm};
use crate::database::open_store;

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Input {
    Profiles,
    Replies,
}

impl Input {
    fn agent(self) -> AgentName {
        match self {
            Self::Profiles => AgentName::LeadFinder,
            Self::Replies => AgentName::SalesManager,
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::Profiles => "profiles",
            Self::Replies => "replies",
        }
    }
}

pub async fn run(global: &GlobalArgs, command: &ClassifyCommand) -> anyhow::Result<()> {
    let (input, args) = match command {
        ClassifyCommand::Profiles(args) => (Input::Profiles, args),
        ClassifyCommand::Replies(args) => (Input::Replies, args),
    };
    let lines = read_lines(&args.file)?;
    match llm_chain(global, input.agent(), args.rules)? {
        None => {
            eprintln!("classify: {} with the rules engine", input.noun());
            classify_all(&RulesOnly, input, &lines).await
        }
        Some(config) => {
            let store = open_store(global).await?;
            let router = LlmRouter::new(&config, store.clone(), || Utc::now().date_naive())
                .context("cannot build the LLM router from llm.yaml")?;
            eprintln!(
                "classify: {} with the LLM chain of {} (then the rules)",
                input.noun(),
                input.agent()
            );
            let result = classify_all(&router, input, &lines).await;
            store.close().await;
            result
        }
    }
}

/// The LLM configuration an agent is configured with, or None for the rules engine (also
/// when `rules_only`).
/// Checks `llm.yaml` (when present, whether or not an agent uses it) and every agent's
/// `llm_provider` against it: what `serve` builds its LLM router from, checked before anything
/// is opened or written.
pub(crate) fn check_llm_chains(global: &GlobalArgs) -> anyhow::Result<()> {
    load_llm(&global.config)?;
    for agent in [
        AgentName::LeadFinder,
        AgentName::Outreach,
        AgentName::SalesManager,
    ] {
        llm_chain(global, agent, false)?;
    }
    Ok(())
}

pub(crate) fn llm_chain(
    global: &GlobalArgs,
    agent: AgentName,
    rules_only: bool,
) -> anyhow::Result<Option<salesdept_agents::llm::LlmConfig>> {
    if rules_only {
        return Ok(None);
    }
    let agents = load_agents(&global.config)?;
    let provider = match agent {
        AgentName::LeadFinder => &agents.lead_finder.llm_provider,
        AgentName::Outreach => &agents.outreach.llm_provider,
        AgentName::SalesManager => &agents.sales_manager.llm_provider,
    };
    if provider == "rules" {
        return Ok(None);
    }
    let Some(config) = load_llm(&global.config)? else {
        bail!(
            "{}: {}.llm_provider is {provider:?}, but there is no {} (use --rules for the rules engine)",
            global.config.join("agents.yaml").display(),
            agent,
            global.config.join("llm.yaml").display()
        );
    };
    if !config.providers.contains_key(provider.as_str()) {
        bail!(
            "{}: {}.llm_provider {provider:?} is not a provider of {}",
            global.config.join("agents.yaml").display(),
            agent,
            global.config.join("llm.yaml").display()
        );
    }
    Ok(Some(config))
}

/// The file's lines with their numbers (from 1), blank lines left out. `-` reads stdin.
fn read_lines(path: &Path) -> anyhow::Result<Vec<(usize, String)>> {
    let reader: Box<dyn BufRead> = if path == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut lines = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", path.display()))?;
        if !line.trim().is_empty() {
            lines.push((index + 1, line));
        }
    }
    Ok(lines)
}

/// Labels a line carried, to score the answers against.
#[derive(Default)]
struct Scores {
    classification: Option<ConfusionMatrix>,
    intent: Option<ConfusionMatrix>,
    sentiment: Option<ConfusionMatrix>,
    /// Quality scores by the human tier.
    tiers: BTreeMap<String, Vec<f64>>,
}

fn names<T: Copy>(values: &[T], name: impl Fn(T) -> &'static str) -> Vec<&'static str> {
    values.iter().map(|value| name(*value)).collect()
}

impl Scores {
    fn record(
        slot: &mut Option<ConfusionMatrix>,
        field: &str,
        labels: &[&str],
        expected: &str,
        got: &str,
    ) {
        slot.get_or_insert_with(|| ConfusionMatrix::new(field, labels))
            .record(expected, got);
    }

    fn report(&self) {
        let matrices = [&self.classification, &self.intent, &self.sentiment];
        for matrix in matrices.into_iter().flatten() {
            eprintln!("{matrix}");
            if matrix.field == "intent"
                && let Some(recall) = matrix.recall(Intent::DoNotContact.as_str())
            {
                eprintln!("DoNotContact recall: {:.1} %\n", recall * 100.0);
            }
        }
        if !self.tiers.is_empty() {
            let means: Vec<String> = self
                .tiers
                .iter()
                .map(|(tier, scores)| {
                    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
                    format!("{tier} {mean:.2} (n={})", scores.len())
                })
                .collect();
            eprintln!("quality_score mean by tier: {}", means.join(", "));
        }
    }
}

/// How the answers were obtained.
#[derive(Default)]
struct Sources {
    provider: usize,
    cache: usize,
    rules: usize,
}

impl Sources {
    fn count(&mut self, source: &AnswerSource) {
        match source {
            AnswerSource::Provider { .. } => self.provider += 1,
            AnswerSource::Cache { .. } => self.cache += 1,
            AnswerSource::Fallback(_) => self.rules += 1,
        }
    }
}

async fn classify_all<L: LlmPort>(
    llm: &L,
    input: Input,
    lines: &[(usize, String)],
) -> anyhow::Result<()> {
    let mut scores = Scores::default();
    let mut sources = Sources::default();
    let mut failed = 0;
    let stdout = std::io::stdout();
    for (number, line) in lines {
        let result = match input {
            Input::Profiles => profile_line(llm, line, *number, &mut scores, &mut sources).await,
            Input::Replies => reply_line(llm, line, *number, &mut scores, &mut sources).await,
        };
        match result {
            Ok(output) => {
                let mut out = stdout.lock();
                writeln!(out, "{output}").context("cannot write to stdout")?;
            }
            Err(error) => {
                failed += 1;
                eprintln!("error: line {number}: {error:#}");
            }
        }
    }
    stdout.lock().flush().context("cannot write to stdout")?;
    eprintln!(
        "classify: {} of {} lines classified (provider {}, cache {}, rules {})",
        lines.len() - failed,
        lines.len(),
        sources.provider,
        sources.cache,
        sources.rules
    );
    scores.report();
    if failed > 0 {
        Err(anyhow!(
            "{failed} of {} lines could not be classified",
            lines.len()
        ))
    } else {
        Ok(())
    }
}

/// A line's JSON object and its id (the line number when it has none).
fn parse_object(line: &str, number: usize) -> anyhow::Result<(Map<String, Value>, Value)> {
    let value: Value = serde_json::from_str(line).context("not valid JSON")?;
    let Value::Object(object) = value else {
        bail!("expected a JSON object, found {}", kind_of(&value));
    };
    let id = match object.get("id") {
        None | Some(Value::Null) => json!(number),
        Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
        Some(other) => bail!("id must be a string or a number, found {}", kind_of(other)),
    };
    Ok((object, id))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An optional label field: absent or null is no label, anything else must parse.
fn label<T: std::str::FromStr>(
    object: &Map<String, Value>,
    field: &str,
) -> anyhow::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => text
            .parse()
            .map(Some)
            .map_err(|error| anyhow!("label {field}: {error}")),
        Some(other) => bail!("label {field} must be a string, found {}", kind_of(other)),
    }
}

async fn profile_line<L: LlmPort>(
    llm: &L,
    line: &str,
    number: usize,
    scores: &mut Scores,
    sources: &mut Sources,
) -> anyhow::Result<Value> {
    let (object, id) = parse_object(line, number)?;
    let expected: Option<Classification> = label(&object, "label")?;
    let tier = match object.get("tier") {
        Some(Value::String(tier)) => Some(tier.clone()),
        None | Some(Value::Null) => None,
        Some(other) => bail!("label tier must be a string, found {}", kind_of(other)),
    };
    let profile: Profile = serde_json::from_value(Value::Object(object))
        .context("not a profile (name, position, company, … must be strings)")?;
    if [&profile.name, &profile.position, &profile.about]
        .iter()
        .all(|field| field.trim().is_empty())
    {
        bail!("the profile has no name, position or about");
    }
    let answer = llm
        .complete(
            AgentName::LeadFinder,
            &classify_profile_task(&profile),
            || rules::assess_profile(&profile),
        )
        .await
        .context("the classifier gave no answer")?;
    sources.count(&answer.source);
    let ProfileAssessment {
        classification,
        confidence,
        quality_score,
        rationale,
        ..
    } = answer.value;
    if let Some(expected) = expected {
        let labels = names(&Classification::ALL, Classification::as_str);
        Scores::record(
            &mut scores.classification,
            "classification",
            &labels,
            expected.as_str(),
            classification.as_str(),
        );
    }
    if let Some(tier) = tier {
        scores
            .tiers
            .entry(tier)
            .or_default()
            .push(quality_score.value());
    }
    Ok(json!({
        "id": id,
        "classification": classification,
        "confidence": confidence,
        "quality_score": quality_score,
        "rationale": rationale,
    }))
}

async fn reply_line<L: LlmPort>(
    llm: &L,
    line: &str,
    number: usize,
    scores: &mut Scores,
    sources: &mut Sources,
) -> anyhow::Result<Value> {
    let (object, id) = parse_object(line, number)?;
    let expected_intent: Option<Intent> = label(&object, "intent")?;
    let expected_sentiment: Option<Sentiment> = label(&object, "sentiment")?;
    let text = match object.get("text") {
        Some(Value::String(text)) => text.clone(),
        None => bail!("the reply has no text field"),
        Some(other) => bail!("text must be a string, found {}", kind_of(other)),
    };
    let answer = llm
        .complete(AgentName::SalesManager, &analyse_reply_task(&text), || {
            rules::analyse_reply(&text)
        })
        .await
        .context("the classifier gave no answer")?;
    sources.count(&answer.source);
    let ReplyAssessment {
        sentiment,
        intent,
        confidence,
        return_date,
        referred_person,
        ..
    } = answer.value;
    if let Some(expected) = expected_intent {
        let labels = names(&Intent::ALL, Intent::as_str);
        Scores::record(
            &mut scores.intent,
            "intent",
            &labels,
            expected.as_str(),
            intent.as_str(),
        );
    }
    if let Some(expected) = expected_sentiment {
        let labels = names(&Sentiment::ALL, Sentiment::as_str);
        Scores::record(
            &mut scores.sentiment,
            "sentiment",
            &labels,
            expected.as_str(),
            sentiment.as_str(),
        );
    }
    let mut output = json!({
        "id": id,
        "sentiment": sentiment,
        "intent": intent,
        "confidence": confidence,
    });
    // Present only when the reply gives them.
    if let Some(date) = return_date {
        output["return_date"] = json!(date);
    }
    if let Some(person) = referred_person {
        output["referred_person"] = json!(person);
    }
    Ok(output)
}
