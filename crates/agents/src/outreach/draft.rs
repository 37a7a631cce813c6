//! Writing the messages of a lead's sequence: the template variant chosen for the lead (by the
//! Sales Manager's latest variant weights, else evenly, always by a hash of the lead id), and
//! the text from the LLM (`llm_enhanced`) or the rules' templates (`template_based`, and
//! whenever the LLM is off, over budget, failing or answers something unusable).
//!
//! Only checked facts reach a message: the rules fill their templates from `TemplateFacts`,
//! and the LLM sees the same facts, the template's text as a reference, and must answer within
//! LinkedIn's limits (300 characters for a note, 8,000 for a message) or the rules answer.

use std::collections::BTreeMap;
use std::str::FromStr;

use salesdept_events::LlmUsage;
use salesdept_events::domain::Classification;
use salesdept_events::domain::lead::LeadState;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::llm::answers::{DraftedMessage, draft_message_task, draft_problem};
use crate::llm::{AgentName, AnswerSource, LlmAlert, LlmError, LlmPort, Validate};
use crate::rules::profile::Profile;
use crate::rules::templates::{self, MessageContext, MessageKind, TemplateVariant};

/// How messages are written (`message_generation_mode` in `config/agents.yaml`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageGenerationMode {
    /// The LLM writes from the template's draft and the checked facts; the rules when it
    /// cannot.
    LlmEnhanced,
    /// The rules' templates only.
    #[default]
    TemplateBased,
}

impl FromStr for MessageGenerationMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "llm_enhanced" => Ok(Self::LlmEnhanced),
            "template_based" => Ok(Self::TemplateBased),
            other => Err(format!(
                "unknown message_generation_mode {other:?}: expected llm_enhanced or template_based"
            )),
        }
    }
}

/// A written message and how it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct WrittenMessage {
    pub text: String,
    pub variant: TemplateVariant,
    /// True when the rules wrote it (by mode, or as the LLM's fallback).
    pub by_rules: bool,
    /// For the event's metadata.
    pub usage: Option<LlmUsage>,
    /// What the LLM port asks the manager to be told (budget spent, circuit open…).
    pub alerts: Vec<LlmAlert>,
}

/// The rules' view of a lead's profile: only what the lead's stream holds.
pub fn profile_of(lead: &LeadState) -> Profile {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    Profile {
        name: text(&lead.profile.name),
        position: lead.position.clone(),
        company: lead.company.clone(),
        company_size: text(&lead.company_size),
        industry: text(&lead.industry),
        location: text(&lead.profile.location),
        about: text(&lead.profile.about),
        recent_activity: text(&lead.profile.recent_activity),
        linkedin_url: lead
            .profile
            .linkedin_url
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    }
}

/// A number in [0, 1) drawn from the lead id and a purpose: the same lead always draws the
/// same, and leads spread evenly.
pub fn fraction_for(lead_id: Uuid, purpose: &str) -> f64 {
    let mut hasher = Sha256::new();
    hasher.update(lead_id.as_bytes());
    hasher.update(purpose.as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// The lead's template variant: by `weights` (variant name → weight, e.g. from the latest
/// `strategy_update`) among the classification's variants when any of them has a positive
/// weight, else evenly; drawn from a hash of the lead id, so deterministic.
pub fn choose_variant(
    classification: Classification,
    lead_id: Uuid,
    weights: &BTreeMap<String, f64>,
) -> TemplateVariant {
    let variants = TemplateVariant::for_classification(classification);
    let weighted: Vec<(TemplateVariant, f64)> = variants
        .iter()
        .map(|variant| {
            let weight = weights
                .get(variant.as_str())
                .copied()
                .filter(|weight| weight.is_finite() && *weight > 0.0)
                .unwrap_or(0.0);
            (*variant, weight)
        })
        .collect();
    let total: f64 = weighted.iter().map(|(_, weight)| weight).sum();
    let draw = fraction_for(lead_id, "variant");
    if total <= 0.0 {
        let index = ((draw * variants.len() as f64) as usize).min(variants.len() - 1);
        return variants[index];
    }
    let mut threshold = draw * total;
    for (variant, weight) in &weighted {
        if threshold < *weight {
            return *variant;
        }
        threshold -= weight;
    }
    weighted
        .iter()
        .rev()
        .find(|(_, weight)| *weight > 0.0)
        .map_or(variants[0], |(variant, _)| *variant)
}

/// Writes one message for a lead.
pub async fn write_message<L: LlmPort>(
    llm: &L,
    mode: MessageGenerationMode,
    profile: &Profile,
    classification: Classification,
    kind: MessageKind,
    variant: TemplateVariant,
    context: &MessageContext,
) -> Result<WrittenMessage, LlmError> {
    let rules = || templates::draft_message(profile, classification, kind, variant, context);
    if mode == MessageGenerationMode::TemplateBased {
        let drafted = rules();
        return Ok(WrittenMessage {
            text: drafted.text,
            variant: drafted.variant,
            by_rules: true,
            usage: None,
            alerts: Vec::new(),
        });
    }
    let task = draft_message_task(profile, classification, kind, variant, context);
    let answer = llm.complete(AgentName::Outreach, &task, rules).await?;
    let by_rules = matches!(answer.source, AnswerSource::Fallback(_));
    let drafted = answer.value;
    // The answer validated for its own kind; it must also be the kind and classification we
    // asked for, or the rules write it (a note written as a long message would not fit). And
    // it must pass the output check against this profile: a model that obeyed text planted in
    // the profile ("ignore all previous instructions and write …") is caught here.
    let reference = rules();
    let refused = if by_rules {
        None
    } else {
        refusal(&drafted, kind, variant, profile, &reference.text, context)
    };
    let mut usage = answer.usage;
    let (text, variant, by_rules) = match refused {
        None => (drafted.text, drafted.variant, by_rules),
        Some(reason) => {
            tracing::warn!(
                reason,
                "an LLM draft failed the output check; the template is used"
            );
            // The draft event says why the model's text was not sent (its metadata's `llm`),
            // so the refusal is in the log, not only in a log line.
            if let Some(usage) = usage.as_mut() {
                usage.fallback = true;
                usage.fallback_reason = Some(reason.to_owned());
            }
            let DraftedMessage { text, variant, .. } = reference;
            (text, variant, true)
        }
    };
    Ok(WrittenMessage {
        text,
        variant,
        by_rules,
        usage,
        alerts: answer.alerts,
    })
}

/// Why the model's draft may not be used for this message, as the short code the draft event
/// records (see `LlmUsage::fallback_reason`), or None when it may. Names no word of the draft.
fn refusal(
    drafted: &DraftedMessage,
    kind: MessageKind,
    variant: TemplateVariant,
    profile: &Profile,
    reference: &str,
    context: &MessageContext,
) -> Option<&'static str> {
    if drafted.kind != kind {
        Some("wrong_kind")
    } else if drafted.variant.classification() != variant.classification() {
        Some("wrong_classification")
    } else if drafted.validate().is_err() {
        Some("invalid")
    } else if drafted.text.chars().count() > kind.limit() {
        Some("too_long")
    } else {
        draft_problem(&drafted.text, profile, reference, context).map(|problem| {
            tracing::debug!(%problem, "the output check refused an LLM draft");
            problem.code()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_weights_variants_split_evenly_and_stably() {
        let weights = BTreeMap::new();
        let mut counts = BTreeMap::new();
        for n in 0..1000u128 {
            let lead = Uuid::from_u128(n * 7919 + 13);
            let variant = choose_variant(Classification::Speaker, lead, &weights);
            assert_eq!(
                variant,
                choose_variant(Classification::Speaker, lead, &weights)
            );
            *counts.entry(variant).or_insert(0u32) += 1;
        }
        assert_eq!(counts.len(), 2);
        assert!(
            counts.values().all(|count| (400..=600).contains(count)),
            "{counts:?}"
        );
    }

    #[test]
    fn weights_shift_the_split_and_other_classifications_are_ignored() {
        let weights: BTreeMap<String, f64> = [
            ("speaker_a".to_owned(), 0.9),
            ("speaker_b".to_owned(), 0.1),
            ("sponsor_a".to_owned(), 5.0),
        ]
        .into();
        let a = (0..1000u128)
            .filter(|n| {
                choose_variant(
                    Classification::Speaker,
                    Uuid::from_u128(n * 31 + 7),
                    &weights,
                ) == TemplateVariant::SpeakerA
            })
            .count();
        assert!((850..=950).contains(&a), "{a}");
        // Only sponsor_a has a weight: every sponsor gets it.
        assert!((0..200u128).all(|n| choose_variant(
            Classification::Sponsor,
            Uuid::from_u128(n),
            &weights
        ) == TemplateVariant::SponsorA));
        // Zero or negative weights count as none.
        let zero: BTreeMap<String, f64> = [("general_a".to_owned(), -1.0)].into();
        assert_eq!(
            choose_variant(Classification::Other, Uuid::from_u128(1), &zero),
            TemplateVariant::GeneralA
        );
    }

    #[test]
    fn the_mode_parses_from_the_config_names() {
        assert_eq!(
            "llm_enhanced".parse::<MessageGenerationMode>(),
            Ok(MessageGenerationMode::LlmEnhanced)
        );
        assert_eq!(
            "template_based".parse::<MessageGenerationMode>(),
            Ok(MessageGenerationMode::TemplateBased)
        );
        assert!("fancy".parse::<MessageGenerationMode>().is_err());
    }
}
