//! Learning from the team's corrections (`classification_feedback`): when a human overrides a
//! classification or a score, later profiles that look like the corrected one follow the
//! correction. The LLM gets the latest corrections as few-shot examples
//! ([`crate::llm::answers::classify_profile_task_with_corrections`]); the rules apply them here,
//! deterministically.
//!
//! A correction keeps only what is not personal: the position, the industry and the company
//! size of the corrected lead, and what was changed. Two profiles are alike when their position
//! titles share most of their words and their industry and company size agree.

use salesdept_events::domain::{Classification, Confidence, QualityScore};
use serde::Serialize;

use super::Profile;
use super::text::{BREAK, Tokens};
use crate::llm::answers::ProfileAssessment;

/// How alike a profile must be to a corrected one for the correction to apply, 0–1.
pub const SIMILARITY_THRESHOLD: f64 = 0.75;

/// The confidence of a classification taken from a similar profile's correction.
const CORRECTED_CONFIDENCE: f64 = 0.8;

/// One human correction, reduced to the facts that make profiles comparable.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Correction {
    pub position: String,
    pub industry: String,
    pub company_size: String,
    /// What the lead had been classified as before the human changed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_classification: Option<Classification>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrected_classification: Option<Classification>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_score: Option<QualityScore>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrected_score: Option<QualityScore>,
}

impl Correction {
    /// A correction that changes nothing teaches nothing.
    pub fn is_informative(&self) -> bool {
        self.corrected_classification.is_some() || self.corrected_score.is_some()
    }
}

/// How alike a profile is to a corrected one, 0–1: the position titles' word overlap
/// (Jaccard) weighs most, then the industry, then the company size.
pub fn similarity(profile: &Profile, correction: &Correction) -> f64 {
    let position = jaccard(&profile.position, &correction.position);
    let industry = same_text(&profile.industry, &correction.industry);
    let size = same_text(&profile.company_size, &correction.company_size);
    0.6 * position + 0.25 * industry + 0.15 * size
}

/// The assessment after the most similar correction (the latest among equals), if one is
/// similar enough. A corrected classification is taken over; a corrected score moves the
/// rules' score halfway toward the human's.
pub fn apply_corrections(
    profile: &Profile,
    assessment: ProfileAssessment,
    corrections: &[Correction],
) -> ProfileAssessment {
    let best = corrections
        .iter()
        .filter(|correction| correction.is_informative())
        .map(|correction| (similarity(profile, correction), correction))
        .filter(|(score, _)| *score >= SIMILARITY_THRESHOLD)
        .fold(None::<(f64, &Correction)>, |best, candidate| match best {
            Some((score, _)) if score > candidate.0 => best,
            _ => Some(candidate),
        });
    let Some((_, correction)) = best else {
        return assessment;
    };
    let mut assessment = assessment;
    let mut changes = Vec::new();
    if let Some(classification) = correction.corrected_classification
        && classification != assessment.classification
    {
        changes.push(format!(
            "classified {} instead of {}",
            classification.as_str(),
            assessment.classification.as_str()
        ));
        assessment.classification = classification;
        assessment.confidence = Confidence::clamped(CORRECTED_CONFIDENCE);
    }
    if let Some(score) = correction.corrected_score {
        let moved =
            ((assessment.quality_score.value() + score.value()) / 2.0 * 10.0).round() / 10.0;
        let moved = QualityScore::clamped(moved);
        if moved != assessment.quality_score {
            changes.push(format!(
                "score {:.1} instead of {:.1}",
                moved.value(),
                assessment.quality_score.value()
            ));
            assessment.quality_score = moved;
        }
    }
    if !changes.is_empty() {
        assessment.rationale = format!(
            "{} Following a human correction of a similar profile ({}): {}.",
            assessment.rationale.trim_end(),
            correction.position,
            changes.join(", ")
        );
    }
    assessment
}

fn words(text: &str) -> Vec<String> {
    let mut words: Vec<String> = Tokens::new(text)
        .as_slice()
        .iter()
        .filter(|token| token.as_str() != BREAK)
        .cloned()
        .collect();
    words.sort();
    words.dedup();
    words
}

fn jaccard(left: &str, right: &str) -> f64 {
    let (left, right) = (words(left), words(right));
    if left.is_empty() || right.is_empty() {
        return 0.0;
    }
    let shared = left.iter().filter(|word| right.contains(word)).count();
    let union = left.len() + right.len() - shared;
    shared as f64 / union as f64
}

fn same_text(left: &str, right: &str) -> f64 {
    let (left, right) = (left.trim(), right.trim());
    if !left.is_empty() && left.eq_ignore_ascii_case(right) {
        1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::assess_profile;

    fn profile(position: &str, industry: &str, size: &str) -> Profile {
        Profile {
            name: "Ada Example".into(),
            position: position.into(),
            company: "Example Ltd".into(),
            company_size: size.into(),
            industry: industry.into(),
            location: "London".into(),
            about: String::new(),
            recent_activity: String::new(),
            linkedin_url: "https://www.linkedin.com/in/ada-example".into(),
        }
    }

    fn correction(position: &str, class: Classification) -> Correction {
        Correction {
            position: position.into(),
            industry: "Software".into(),
            company_size: "51-200".into(),
            previous_classification: Some(Classification::Other),
            corrected_classification: Some(class),
            ..Correction::default()
        }
    }

    #[test]
    fn a_similar_profile_follows_the_correction() {
        let candidate = profile("Head of Developer Relations", "Software", "51-200");
        let before = assess_profile(&candidate);
        let target = if before.classification == Classification::Sponsor {
            Classification::Other
        } else {
            Classification::Sponsor
        };
        let corrections = [correction("Head of Developer Relations", target)];
        let after = apply_corrections(&candidate, before.clone(), &corrections);
        assert_eq!(after.classification, target);
        assert_eq!(after.confidence.value(), CORRECTED_CONFIDENCE);
        assert!(
            after.rationale.contains("human correction"),
            "{}",
            after.rationale
        );
    }

    #[test]
    fn an_unlike_profile_keeps_the_rules_answer() {
        let candidate = profile("Chief Financial Officer", "Banking", "10001+");
        let before = assess_profile(&candidate);
        let corrections = [correction(
            "Head of Developer Relations",
            Classification::Sponsor,
        )];
        assert!(similarity(&candidate, &corrections[0]) < SIMILARITY_THRESHOLD);
        assert_eq!(
            apply_corrections(&candidate, before.clone(), &corrections),
            before
        );
    }

    #[test]
    fn the_latest_of_equally_similar_corrections_wins_and_scores_move_halfway() {
        let candidate = profile("VP Engineering", "Software", "51-200");
        let before = assess_profile(&candidate);
        let older = correction("VP Engineering", Classification::Speaker);
        let mut newer = correction("VP Engineering", Classification::Sponsor);
        newer.corrected_score = Some(QualityScore::clamped(10.0));
        let after = apply_corrections(&candidate, before.clone(), &[older, newer]);
        assert_eq!(after.classification, Classification::Sponsor);
        let expected = ((before.quality_score.value() + 10.0) / 2.0 * 10.0).round() / 10.0;
        assert!((after.quality_score.value() - expected).abs() < 1e-9);
    }

    #[test]
    fn similarity_weighs_title_words_industry_and_size() {
        let candidate = profile("VP of Engineering", "Software", "51-200");
        let same = correction("VP of Engineering", Classification::Speaker);
        assert!((similarity(&candidate, &same) - 1.0).abs() < 1e-9);
        let mut other_size = same.clone();
        other_size.company_size = "10001+".into();
        assert!((similarity(&candidate, &other_size) - 0.85).abs() < 1e-9);
        let empty = Correction::default();
        assert_eq!(similarity(&candidate, &empty), 0.0);
    }
}
