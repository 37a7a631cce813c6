//! The weekly strategy optimisation: shift allocation weights toward what works.
//!
//! The evidence is the reports' reply rates of the first messages sent in the last
//! `strategy_window_days` (ending `reply_rate_lag_days` ago), per template variant and per
//! classification. Only keys with at least `min_samples` first messages are compared. Each is
//! an arm of a bandit with a Beta(1 + replies, 1 + no replies) posterior; Thompson sampling —
//! many draws from the posteriors with a ChaCha RNG seeded from the ISO week, so the same log
//! gives the same decision — estimates each arm's probability of being the best:
//!
//! - template variants compete within their family (`speaker_*`, `sponsor_*`); the new
//!   `variant_weights` are `floor + (1 − n × floor) × P(best)` with `floor = min_variant_weight`
//!   (so they sum to 1 per family and exploration never stops). Variants with too few samples are left out of the map (no preference).
//! - Speaker against Sponsor moves `speaker_share` halfway toward
//!   `low + (high − low) × P(speakers reply best)` within `speaker_share_bounds`.
//!
//! The `strategy_update` carries the evidence (rates, samples, posterior means, probabilities)
//! in its `rationale`, and a short written analysis: from the LLM when one is configured for
//! the Sales Manager, else from rules. One strategy per ISO week.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{Datelike, TimeDelta};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use salesdept_events::domain::department::{DepartmentCommand, DepartmentEvent, StrategyUpdate};
use salesdept_events::domain::{DEPARTMENT_STREAM, QualityScore};
use salesdept_projections::reports::{Dimension, NO_KEY, ReplyRateRow, reply_rates};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{MANAGER_NAMESPACE, ManagerError, ReadModels, SALES_MANAGER, SalesManager};
use crate::llm::{AgentName, LlmPort, LlmTask, Validate};

/// Draws per Thompson estimate: enough that the probabilities are stable to about ±0.01.
const DRAWS: u32 = 4000;

/// One compared arm (a variant or a classification) and what the sampling made of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VariantEvidence {
    pub key: String,
    pub sent: u64,
    pub replied: u64,
    pub positive: u64,
    pub reply_rate: f64,
    pub positive_rate: f64,
    /// Mean of the Beta(1 + replied, 1 + sent − replied) posterior.
    pub reply_posterior_mean: f64,
    /// Mean of the Beta(1 + positive, 1 + sent − positive) posterior.
    pub positive_posterior_mean: f64,
    /// The Thompson estimate of the probability that this arm replies best in its group.
    pub probability_best: f64,
}

/// The LLM's short written analysis of the evidence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StrategyAnalysis {
    /// At most a few sentences, from the numbers given only.
    pub analysis: String,
}

impl Validate for StrategyAnalysis {
    fn validate(&self) -> Result<(), String> {
        let length = self.analysis.trim().chars().count();
        if length == 0 {
            return Err("the analysis is empty: write 2–5 sentences".into());
        }
        if length > 1500 {
            return Err(format!(
                "the analysis has {length} characters: keep it under 1500"
            ));
        }
        Ok(())
    }
}

/// The probability that each arm (`key`, successes, trials) is the best, by Thompson sampling
/// over Beta(1 + successes, 1 + failures) posteriors: `draws` rounds, ties to the first arm.
pub fn thompson_weights(
    arms: &[(String, u64, u64)],
    draws: u32,
    rng: &mut ChaCha8Rng,
) -> BTreeMap<String, f64> {
    let mut wins = vec![0_u32; arms.len()];
    for _ in 0..draws {
        let mut best: Option<(usize, f64)> = None;
        for (index, (_, successes, trials)) in arms.iter().enumerate() {
            let failures = trials.saturating_sub(*successes);
            let draw = sample_beta(1.0 + *successes as f64, 1.0 + failures as f64, rng);
            if best.is_none_or(|(_, value)| draw > value) {
                best = Some((index, draw));
            }
        }
        if let Some((index, _)) = best {
            wins[index] += 1;
        }
    }
    arms.iter()
        .zip(wins)
        .map(|((key, _, _), won)| (key.clone(), f64::from(won) / f64::from(draws.max(1))))
        .collect()
}

/// Beta(a, b) as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b).
fn sample_beta(a: f64, b: f64, rng: &mut ChaCha8Rng) -> f64 {
    let x = sample_gamma(a, rng);
    let y = sample_gamma(b, rng);
    if x + y > 0.0 { x / (x + y) } else { 0.5 }
}

/// Gamma(shape, 1) by Marsaglia and Tsang's method (shape ≥ 1 here: the posteriors' shapes
/// are 1 plus a count).
fn sample_gamma(shape: f64, rng: &mut ChaCha8Rng) -> f64 {
    if shape < 1.0 {
        let u: f64 = rng.random();
        return sample_gamma(shape + 1.0, rng) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = standard_normal(rng);
        let v = 1.0 + c * x;
        if v <= 0.0 {
            continue;
        }
        let v = v * v * v;
        let u: f64 = rng.random();
        if u < 1.0 - 0.0331 * x.powi(4) || u.ln() < 0.5 * x * x + d * (1.0 - v + v.ln()) {
            return d * v;
        }
    }
}

/// Box–Muller.
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn evidence(rows: &[&ReplyRateRow], probabilities: &BTreeMap<String, f64>) -> Vec<VariantEvidence> {
    rows.iter()
        .map(|row| VariantEvidence {
            key: row.key.clone(),
            sent: row.sent,
            replied: row.replied,
            positive: row.positive,
            reply_rate: row.reply_rate,
            positive_rate: row.positive_rate,
            reply_posterior_mean: (1.0 + row.replied as f64) / (2.0 + row.sent as f64),
            positive_posterior_mean: (1.0 + row.positive as f64) / (2.0 + row.sent as f64),
            probability_best: probabilities.get(&row.key).copied().unwrap_or(0.0),
        })
        .collect()
}

fn arms(rows: &[&ReplyRateRow]) -> Vec<(String, u64, u64)> {
    rows.iter()
        .map(|row| (row.key.clone(), row.replied, row.sent))
        .collect()
}

/// The family of a variant: `speaker` of `speaker_a`.
fn family(variant: &str) -> &str {
    variant.split('_').next().unwrap_or(variant)
}

fn round_to(value: f64, places: i32) -> f64 {
    let factor = 10_f64.powi(places);
    (value * factor).round() / factor
}

pub(super) async fn optimise<S, L>(
    manager: &SalesManager<S, L>,
) -> Result<Option<StrategyUpdate>, ManagerError>
where
    S: ReadModels + ?Sized + 'static,
    L: LlmPort,
{
    let settings = &manager.settings;
    let now = manager.now();
    let week = now.date_naive().iso_week();
    let week_name = format!("{}-W{:02}", week.year(), week.week());

    // One strategy per week: a second run (a retry, a restart) changes nothing.
    let department_events = manager
        .store
        .read_stream(DEPARTMENT_STREAM, 1, None)
        .await?;
    let this_week = department_events.iter().rev().any(|event| {
        event.event_type == "strategy_update"
            && event.metadata.actor.name() == SALES_MANAGER
            && event.metadata.occurred_at.date_naive().iso_week() == week
    });
    if this_week {
        return Ok(None);
    }
    let department = manager.department().await?;
    let previous = department.strategy.clone();

    let to = now.date_naive() - TimeDelta::days(i64::from(settings.alerts.reply_rate_lag_days));
    let from = to - TimeDelta::days(i64::from(settings.strategy_window_days.max(1)) - 1);
    let store = manager.read_models();
    let variant_rows = reply_rates(store, Dimension::Variant, from, to).await?;
    let class_rows = reply_rates(store, Dimension::Classification, from, to).await?;
    let min = u64::from(settings.min_samples);

    let seed = u64::from(week.year().unsigned_abs()) << 8 | u64::from(week.week());
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5a1e_5d3e_0000_0006);

    // Variants, family by family (in key order, so the RNG's draws are in a fixed order).
    let mut families: BTreeMap<&str, Vec<&ReplyRateRow>> = BTreeMap::new();
    for row in &variant_rows {
        if row.key != NO_KEY && row.sent >= min {
            families.entry(family(&row.key)).or_default().push(row);
        }
    }
    let mut variant_weights = previous
        .as_ref()
        .map(|strategy| strategy.variant_weights.clone())
        .unwrap_or_default();
    let mut variant_evidence = Vec::new();
    for rows in families.values().filter(|rows| rows.len() >= 2) {
        let probabilities = thompson_weights(&arms(rows), DRAWS, &mut rng);
        // Every variant keeps the floor; the rest is shared by the probability of being best.
        let floor = settings
            .min_variant_weight
            .clamp(0.0, 1.0 / probabilities.len() as f64);
        let spread = 1.0 - floor * probabilities.len() as f64;
        for (key, probability) in &probabilities {
            variant_weights.insert(key.clone(), round_to(floor + spread * probability, 3));
        }
        variant_evidence.extend(evidence(rows, &probabilities));
    }

    // Speakers against sponsors.
    let class_pair: Vec<&ReplyRateRow> = ["Speaker", "Sponsor"]
        .iter()
        .filter_map(|key| class_rows.iter().find(|row| row.key == *key))
        .filter(|row| row.sent >= min)
        .collect();
    let previous_share = previous
        .as_ref()
        .map_or(settings.speaker_share, |strategy| strategy.speaker_share);
    let (low, high) = settings.speaker_share_bounds;
    let mut class_evidence = Vec::new();
    let mut speaker_share = previous_share;
    if class_pair.len() == 2 {
        let probabilities = thompson_weights(&arms(&class_pair), DRAWS, &mut rng);
        let p_speaker = probabilities.get("Speaker").copied().unwrap_or(0.5);
        let goal = low + (high - low) * p_speaker;
        speaker_share = round_to(((previous_share + goal) / 2.0).clamp(low, high), 3);
        class_evidence = evidence(&class_pair, &probabilities);
    }

    if variant_evidence.is_empty() && class_evidence.is_empty() {
        tracing::info!(%week_name, "too few samples to compare: the strategy stays");
        return Ok(None);
    }

    let capacity = manager.full_day_capacity();
    if capacity == 0 {
        return Err(ManagerError::InvalidSettings(
            "no sending account is configured: a strategy cannot allocate".into(),
        ));
    }
    let daily_allocation = previous
        .as_ref()
        .map_or(settings.daily_allocation_max, |s| s.daily_allocation)
        .clamp(settings.daily_allocation_min, settings.daily_allocation_max)
        .min(capacity);
    let min_quality_score = match &previous {
        Some(strategy) => strategy.min_quality_score,
        None => QualityScore::parse(settings.quality_threshold.clamp(1.0, 10.0))
            .map_err(|error| ManagerError::InvalidSettings(error.to_string()))?,
    };

    let mut rationale = format!(
        "{week_name}: first messages sent {from} to {to}, arms with at least {min} samples, \
         Thompson sampling ({DRAWS} draws, Beta(1 + replies, 1 + no replies)).\n"
    );
    for item in variant_evidence.iter().chain(&class_evidence) {
        let _ = writeln!(
            rationale,
            "- {}: {} sent, {} replied ({:.1} %), {} positive ({:.1} %); posterior means reply \
             {:.3}, positive {:.3}; P(best) {:.3}",
            item.key,
            item.sent,
            item.replied,
            item.reply_rate * 100.0,
            item.positive,
            item.positive_rate * 100.0,
            item.reply_posterior_mean,
            item.positive_posterior_mean,
            item.probability_best
        );
    }
    let _ = writeln!(
        rationale,
        "Speaker share {previous_share:.3} → {speaker_share:.3}; variant weights {}.",
        if variant_weights.is_empty() {
            "none".to_owned()
        } else {
            variant_weights
                .iter()
                .map(|(key, weight)| format!("{key} {weight:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );

    let rules_text = rules_analysis(
        &variant_evidence,
        &class_evidence,
        previous_share,
        speaker_share,
    );
    let task = LlmTask {
        name: "strategy_analysis".into(),
        instructions: "You are the head of a sales department that recruits speakers and \
                       sponsors for technology events over LinkedIn. Write a short analysis \
                       (2–5 sentences) of the outreach results in the data and of the strategy \
                       change decided from them. Use only the numbers given; do not invent any."
            .into(),
        data: serde_json::json!({
            "week": week_name,
            "variants": variant_evidence,
            "classifications": class_evidence,
            "speaker_share": { "previous": previous_share, "new": speaker_share },
            "variant_weights": variant_weights,
        }),
    };
    let answer = manager
        .llm
        .complete(AgentName::SalesManager, &task, || StrategyAnalysis {
            analysis: rules_text.clone(),
        })
        .await?;
    let _ = write!(rationale, "Analysis: {}", answer.value.analysis.trim());

    let week_cause = Uuid::new_v5(
        &MANAGER_NAMESPACE,
        format!("strategy:{week_name}").as_bytes(),
    );
    let metadata = manager
        .metadata()
        .with_step(week_cause, "strategy_update")
        .with_llm(answer.usage.clone());
    let command = DepartmentCommand::UpdateStrategy {
        speaker_share,
        daily_allocation,
        min_quality_score,
        rationale,
        sending_capacity: capacity,
        variant_weights,
    };
    let executed = manager.department_command(&command, &metadata).await?;
    Ok(executed.events.into_iter().find_map(|event| match event {
        DepartmentEvent::StrategyUpdate(update) => Some(update),
        _ => None,
    }))
}

/// The analysis written without an LLM: which arm leads, by how much, and what changed.
fn rules_analysis(
    variants: &[VariantEvidence],
    classes: &[VariantEvidence],
    previous_share: f64,
    speaker_share: f64,
) -> String {
    let mut sentences = Vec::new();
    let mut by_family: BTreeMap<&str, Vec<&VariantEvidence>> = BTreeMap::new();
    for item in variants {
        by_family.entry(family(&item.key)).or_default().push(item);
    }
    for items in by_family.values() {
        let best = items
            .iter()
            .max_by(|a, b| a.probability_best.total_cmp(&b.probability_best));
        if let Some(best) = best {
            sentences.push(format!(
                "{} leads its family with a {:.1} % reply rate over {} messages (probability \
                 {:.0} % of being best), so it gets more of the messages.",
                best.key,
                best.reply_rate * 100.0,
                best.sent,
                best.probability_best * 100.0
            ));
        }
    }
    if let [speaker, sponsor] = classes {
        sentences.push(format!(
            "Speakers reply at {:.1} % and sponsors at {:.1} %; the speaker share moves from \
             {:.0} % to {:.0} %.",
            speaker.reply_rate * 100.0,
            sponsor.reply_rate * 100.0,
            previous_share * 100.0,
            speaker_share * 100.0
        ));
    }
    sentences.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thompson_sampling_favours_the_clearly_better_arm_and_repeats_itself() {
        let arms = vec![
            ("speaker_a".to_string(), 30, 100),
            ("speaker_b".to_string(), 5, 100),
        ];
        let first = thompson_weights(&arms, DRAWS, &mut ChaCha8Rng::seed_from_u64(7));
        let again = thompson_weights(&arms, DRAWS, &mut ChaCha8Rng::seed_from_u64(7));
        assert_eq!(first, again);
        assert!(first["speaker_a"] > 0.99, "{first:?}");
        let even = vec![("a".to_string(), 10, 100), ("b".to_string(), 10, 100)];
        let weights = thompson_weights(&even, DRAWS, &mut ChaCha8Rng::seed_from_u64(7));
        assert!((weights["a"] - 0.5).abs() < 0.05, "{weights:?}");
    }

    #[test]
    fn beta_samples_have_the_right_mean() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mean: f64 = (0..20_000)
            .map(|_| sample_beta(3.0, 7.0, &mut rng))
            .sum::<f64>()
            / 20_000.0;
        assert!((mean - 0.3).abs() < 0.01, "{mean}");
    }
}
