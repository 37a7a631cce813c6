//! Reading a reply: the LLM's analysis with the rules as fallback (`analyse_reply_task`,
//! `analyse_reply`), turned into the lead command that records it. The lead's rules then do
//! the rest in the same append: a positive reply (Interested, InfoRequest, Referral) qualifies
//! the lead for the team (whose mail the hand-over handler sends), NotInterested closes it
//! lost, DoNotContact stops it for good, and OutOfOffice reschedules the next follow-up after
//! the return date the reply gives (or a configured delay).

use chrono::{DateTime, NaiveDate, Utc};
use salesdept_events::LlmUsage;
use salesdept_events::domain::Intent;
use salesdept_events::domain::lead::{FollowUpPolicy, LeadCommand};

use crate::llm::answers::{ReplyAssessment, analyse_reply_task};
use crate::llm::{AgentName, AnswerSource, LlmAlert, LlmError, LlmPort};
use crate::rules::reply::{ReturnDate, analyse_reply};

/// A reply's analysis and how it was obtained.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysedReply {
    pub assessment: ReplyAssessment,
    /// True when the rules answered.
    pub by_rules: bool,
    pub usage: Option<LlmUsage>,
    pub alerts: Vec<LlmAlert>,
}

impl AnalysedReply {
    /// For an OutOfOffice reply, the day the person says they are back, resolved against the
    /// day the reply came.
    pub fn return_date(&self, received_at: DateTime<Utc>) -> Option<NaiveDate> {
        if self.assessment.intent != Intent::OutOfOffice {
            return None;
        }
        ReturnDate::parse(self.assessment.return_date.as_deref()?)?
            .resolve(received_at.date_naive())
    }

    /// The command that records the analysis of reply `response_number` (received at
    /// `received_at`); a positive reply is handed over to `hand_over_to`, an OutOfOffice one
    /// reschedules the next follow-up under `policy` not before its return date (or
    /// `policy.out_of_office_delay` after the reply when it gives none).
    pub fn command(
        &self,
        response_number: u32,
        received_at: DateTime<Utc>,
        hand_over_to: &str,
        policy: FollowUpPolicy,
    ) -> LeadCommand {
        LeadCommand::AnalyseResponse {
            response_number,
            sentiment: self.assessment.sentiment,
            intent: self.assessment.intent,
            confidence: self.assessment.confidence,
            rationale: Some(self.assessment.rationale.clone()),
            hand_over_to: hand_over_to.to_owned(),
            return_date: self.return_date(received_at),
            policy,
        }
    }
}

/// Analyses `text` through the LLM port, the rules answering when no model can.
pub async fn analyse<L: LlmPort>(llm: &L, text: &str) -> Result<AnalysedReply, LlmError> {
    let answer = llm
        .complete(AgentName::Outreach, &analyse_reply_task(text), || {
            analyse_reply(text)
        })
        .await?;
    Ok(AnalysedReply {
        by_rules: matches!(answer.source, AnswerSource::Fallback(_)),
        assessment: answer.value,
        usage: answer.usage,
        alerts: answer.alerts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::RulesOnly;

    #[tokio::test]
    async fn the_rules_answer_without_a_model_and_give_the_return_date() {
        let reply = analyse(
            &RulesOnly,
            "I am out of the office until 12 January with limited access to email.",
        )
        .await
        .unwrap();
        assert!(reply.by_rules);
        assert_eq!(reply.assessment.intent, Intent::OutOfOffice);
        let received: DateTime<Utc> = "2026-12-20T10:00:00Z".parse().unwrap();
        assert_eq!(
            reply.return_date(received),
            NaiveDate::from_ymd_opt(2027, 1, 12)
        );
        let stop = analyse(&RulesOnly, "Please remove me from your list.")
            .await
            .unwrap();
        assert_eq!(stop.assessment.intent, Intent::DoNotContact);
        assert_eq!(stop.return_date(received), None);
    }
}
