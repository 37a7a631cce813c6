//! The `department` stream: the Sales Manager's strategy, performance alerts, agent errors and
//! the daily reports. Nothing personal is written here: leads are referred to by id.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::DomainError;
use super::event::{Aggregate, DecisionContext, domain_events};
use super::values::QualityScore;

domain_events! {
    /// Events of the `department` stream.
    pub enum DepartmentEvent {
        StrategyUpdate(StrategyUpdate) = "strategy_update",
        PerformanceAlert(PerformanceAlert) = "performance_alert",
        AgentError(AgentError) = "agent_error",
        DailyReportGenerated(DailyReportGenerated) = "daily_report_generated",
        DailyReportMailed(DailyReportMailed) = "daily_report_mailed",
        CoordinationCompleted(CoordinationCompleted) = "coordination_completed",
        AgentPaused(AgentPaused) = "agent_paused",
        AgentResumed(AgentResumed) = "agent_resumed",
    }
}

/// A person paused an agent (e.g. `outreach`): it does no work until resumed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentPaused {
    pub agent: String,
    /// Why, without personal data.
    #[serde(default)]
    pub reason: String,
}

/// A paused agent may work again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentResumed {
    pub agent: String,
}

/// How the Sales Manager allocates from now on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StrategyUpdate {
    /// 1, 2, 3… in the order the strategies were adopted.
    pub version: u32,
    /// The share of speakers among allocated leads (the rest are sponsors), 0–1.
    pub speaker_share: f64,
    /// Leads allocated per day.
    pub daily_allocation: u32,
    /// Leads below this score are not allocated first.
    pub min_quality_score: QualityScore,
    #[serde(default)]
    pub rationale: String,
    /// How often each template variant (e.g. `speaker_a`) should be chosen, relative to the
    /// others; empty means "no preference". Read by Outreach to pick a variant.
    #[serde(default)]
    pub variant_weights: BTreeMap<String, f64>,
}

/// How bad an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertSeverity {
    Info,
    Warning,
    Critical,
}

/// A metric crossed its threshold (e.g. reply rate below 8 %).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PerformanceAlert {
    pub metric: String,
    pub value: f64,
    pub threshold: f64,
    pub severity: AlertSeverity,
    /// The day (UTC, by the domain clock) the alert is about.
    pub date: NaiveDate,
    #[serde(default)]
    pub message: String,
}

/// An agent failed at something (and whether trying again may help).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentError {
    pub agent: String,
    pub operation: String,
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_id: Option<Uuid>,
    pub retryable: bool,
}

/// A decision the manager is unsure of, for a human to check (the report's self-review).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UncertainDecision {
    pub lead_id: Uuid,
    /// e.g. `not_selected`, `unclear_classification`.
    pub kind: String,
    /// Why, without personal data.
    pub reason: String,
}

/// The day's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DailyReport {
    pub leads_discovered: u32,
    pub leads_allocated: u32,
    pub invitations_sent: u32,
    pub messages_sent: u32,
    pub follow_ups_sent: u32,
    pub responses: u32,
    pub positive_responses: u32,
    pub handed_over: u32,
    /// Which caps bound the day, e.g. `primary: invitations_per_week`.
    #[serde(default)]
    pub binding_caps: Vec<String>,
    #[serde(default)]
    pub uncertain_decisions: Vec<UncertainDecision>,
    /// First messages and follow-ups sent in the 7 days ending with the report's day.
    #[serde(default)]
    pub week_messages_sent: u32,
    /// Replies so far to the first messages of those 7 days, and the positive ones (0–1).
    #[serde(default)]
    pub week_reply_rate: f64,
    #[serde(default)]
    pub week_positive_rate: f64,
    /// `agent_error` events of the day, per agent.
    #[serde(default)]
    pub agent_errors: BTreeMap<String, u32>,
    /// The metrics of the day's `performance_alert`s.
    #[serde(default)]
    pub alerts: Vec<String>,
    /// LLM usage recorded in the day's event metadata.
    #[serde(default)]
    pub llm_decisions: u32,
    #[serde(default)]
    pub llm_prompt_tokens: u64,
    #[serde(default)]
    pub llm_completion_tokens: u64,
    /// Strategies adopted on the day, as versions.
    #[serde(default)]
    pub strategy_versions: Vec<u32>,
    /// Positive replies of the day (ids, intents and classes only; names go in the mail).
    #[serde(default)]
    pub notable_replies: Vec<NotableReply>,
}

/// A reply worth a human's attention, without personal data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NotableReply {
    pub lead_id: Uuid,
    /// e.g. `Interested`.
    pub intent: String,
    /// The lead's classification, e.g. `Speaker`.
    #[serde(default)]
    pub classification: String,
}

/// The daily report was mailed to the team (the mail's Message-ID derives from the
/// `daily_report_generated` event, so a retry is recognisable).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DailyReportMailed {
    pub date: NaiveDate,
    pub message_id: String,
    pub recipients: u32,
}

/// A daily coordination ran: what it allocated against which limits, and the leads it chose
/// not to allocate (for the report's self-review). A later run of the same day records again
/// only when it did something new.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoordinationCompleted {
    pub date: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_id: Option<Uuid>,
    /// Leads allocated by this day's coordination so far (all runs).
    pub allocated: u32,
    pub speakers: u32,
    pub sponsors: u32,
    /// The day's allocation target and the first contacts the accounts could still make.
    pub target: u32,
    pub capacity: u32,
    /// What bound the allocation, e.g. `capacity`, `daily_allocation`, `candidates`.
    #[serde(default)]
    pub bound_by: String,
    #[serde(default)]
    pub not_selected: Vec<UncertainDecision>,
}

/// The report of one day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DailyReportGenerated {
    pub date: NaiveDate,
    #[serde(flatten)]
    pub report: DailyReport,
}

#[derive(Clone, Debug, PartialEq)]
pub enum DepartmentCommand {
    UpdateStrategy {
        speaker_share: f64,
        daily_allocation: u32,
        min_quality_score: QualityScore,
        rationale: String,
        /// How many first contacts the accounts can make per day, all caps considered.
        sending_capacity: u32,
        /// Template variant → relative weight (finite, not negative).
        variant_weights: BTreeMap<String, f64>,
    },
    RaiseAlert {
        metric: String,
        value: f64,
        threshold: f64,
        severity: AlertSeverity,
        message: String,
    },
    RecordAgentError {
        agent: String,
        operation: String,
        error: String,
        lead_id: Option<Uuid>,
        retryable: bool,
    },
    GenerateDailyReport {
        date: NaiveDate,
        report: DailyReport,
    },
    /// The day's report was mailed (a no-op when already recorded).
    RecordReportMailed {
        date: NaiveDate,
        message_id: String,
        recipients: u32,
    },
    /// A coordination run's outcome (a no-op when it equals the day's last record).
    RecordCoordination(CoordinationCompleted),
    /// Pause an agent (a no-op when it is paused already).
    PauseAgent { agent: String, reason: String },
    /// Resume a paused agent (a no-op when it is not paused).
    ResumeAgent { agent: String },
}

/// What the department's rules need to remember.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DepartmentState {
    pub strategy: Option<StrategyUpdate>,
    /// (metric, day) pairs already alerted.
    pub alerts: HashSet<(String, NaiveDate)>,
    pub reported_days: BTreeSet<NaiveDate>,
    pub mailed_days: BTreeSet<NaiveDate>,
    pub agent_errors: u64,
    /// The last coordination record of each day.
    pub coordinations: BTreeMap<NaiveDate, CoordinationCompleted>,
    /// Agents a person paused and did not resume yet.
    pub paused_agents: BTreeSet<String>,
}

impl Aggregate for DepartmentState {
    type Event = DepartmentEvent;
    type Command = DepartmentCommand;

    fn evolve(mut self, event: &DepartmentEvent) -> Self {
        match event {
            DepartmentEvent::StrategyUpdate(update) => self.strategy = Some(update.clone()),
            DepartmentEvent::PerformanceAlert(alert) => {
                self.alerts.insert((alert.metric.clone(), alert.date));
            }
            DepartmentEvent::AgentError(_) => self.agent_errors += 1,
            DepartmentEvent::DailyReportGenerated(report) => {
                self.reported_days.insert(report.date);
            }
            DepartmentEvent::DailyReportMailed(mailed) => {
                self.mailed_days.insert(mailed.date);
            }
            DepartmentEvent::CoordinationCompleted(record) => {
                self.coordinations.insert(record.date, record.clone());
            }
            DepartmentEvent::AgentPaused(paused) => {
                self.paused_agents.insert(paused.agent.clone());
            }
            DepartmentEvent::AgentResumed(resumed) => {
                self.paused_agents.remove(&resumed.agent);
            }
        }
        self
    }

    fn decide(
        &self,
        command: &DepartmentCommand,
        context: &DecisionContext,
    ) -> Result<Vec<DepartmentEvent>, DomainError> {
        match command {
            DepartmentCommand::UpdateStrategy {
                speaker_share,
                daily_allocation,
                min_quality_score,
                rationale,
                sending_capacity,
                variant_weights,
            } => {
                if let Some((variant, weight)) = variant_weights.iter().find(|(variant, weight)| {
                    variant.trim().is_empty() || !weight.is_finite() || **weight < 0.0
                }) {
                    return Err(DomainError::InvalidCommand(format!(
                        "the weight {weight} of variant {variant:?} must be a finite number, not negative"
                    )));
                }
                if !(0.0..=1.0).contains(speaker_share) {
                    return Err(DomainError::InvalidCommand(format!(
                        "the speaker share {speaker_share} must be between 0 and 1"
                    )));
                }
                if *daily_allocation == 0 {
                    return Err(DomainError::InvalidCommand(
                        "allocate at least one lead a day".into(),
                    ));
                }
                if daily_allocation > sending_capacity {
                    return Err(DomainError::AllocationExceedsCapacity {
                        daily_allocation: *daily_allocation,
                        capacity: *sending_capacity,
                    });
                }
                let version = self
                    .strategy
                    .as_ref()
                    .map_or(1, |strategy| strategy.version + 1);
                Ok(vec![
                    StrategyUpdate {
                        version,
                        speaker_share: *speaker_share,
                        daily_allocation: *daily_allocation,
                        min_quality_score: *min_quality_score,
                        rationale: rationale.clone(),
                        variant_weights: variant_weights.clone(),
                    }
                    .into(),
                ])
            }
            DepartmentCommand::RaiseAlert {
                metric,
                value,
                threshold,
                severity,
                message,
            } => {
                if metric.trim().is_empty() || !value.is_finite() || !threshold.is_finite() {
                    return Err(DomainError::InvalidCommand(
                        "an alert needs a metric name and finite numbers".into(),
                    ));
                }
                let date = context.now.date_naive();
                // One alert per metric per day: a human reads these, do not flood them.
                if self.alerts.contains(&(metric.clone(), date)) {
                    return Ok(Vec::new());
                }
                Ok(vec![
                    PerformanceAlert {
                        metric: metric.clone(),
                        value: *value,
                        threshold: *threshold,
                        severity: *severity,
                        date,
                        message: message.clone(),
                    }
                    .into(),
                ])
            }
            DepartmentCommand::RecordAgentError {
                agent,
                operation,
                error,
                lead_id,
                retryable,
            } => {
                if agent.trim().is_empty() || operation.trim().is_empty() {
                    return Err(DomainError::InvalidCommand(
                        "an agent error names the agent and operation".into(),
                    ));
                }
                Ok(vec![
                    AgentError {
                        agent: agent.clone(),
                        operation: operation.clone(),
                        error: error.clone(),
                        lead_id: *lead_id,
                        retryable: *retryable,
                    }
                    .into(),
                ])
            }
            DepartmentCommand::GenerateDailyReport { date, report } => {
                if self.reported_days.contains(date) {
                    return Err(DomainError::ReportAlreadyGenerated { date: *date });
                }
                if *date > context.now.date_naive() {
                    return Err(DomainError::InvalidCommand(format!(
                        "{date} has not begun yet"
                    )));
                }
                Ok(vec![
                    DailyReportGenerated {
                        date: *date,
                        report: report.clone(),
                    }
                    .into(),
                ])
            }
            DepartmentCommand::RecordReportMailed {
                date,
                message_id,
                recipients,
            } => {
                if !self.reported_days.contains(date) {
                    return Err(DomainError::InvalidCommand(format!(
                        "the report of {date} was not generated, so it cannot have been mailed"
                    )));
                }
                if self.mailed_days.contains(date) {
                    return Ok(Vec::new());
                }
                non_blank_text(message_id, "a mailed report needs its Message-ID")?;
                Ok(vec![
                    DailyReportMailed {
                        date: *date,
                        message_id: message_id.clone(),
                        recipients: *recipients,
                    }
                    .into(),
                ])
            }
            DepartmentCommand::RecordCoordination(record) => {
                if self.coordinations.get(&record.date) == Some(record) {
                    return Ok(Vec::new());
                }
                if record.date > context.now.date_naive() + chrono::TimeDelta::days(1) {
                    return Err(DomainError::InvalidCommand(format!(
                        "the coordination of {} lies in the future",
                        record.date
                    )));
                }
                Ok(vec![record.clone().into()])
            }
            DepartmentCommand::PauseAgent { agent, reason } => {
                non_blank_text(agent, "pausing needs the agent's name")?;
                if self.paused_agents.contains(agent) {
                    return Ok(Vec::new());
                }
                Ok(vec![
                    AgentPaused {
                        agent: agent.clone(),
                        reason: reason.clone(),
                    }
                    .into(),
                ])
            }
            DepartmentCommand::ResumeAgent { agent } => {
                non_blank_text(agent, "resuming needs the agent's name")?;
                if !self.paused_agents.contains(agent) {
                    return Ok(Vec::new());
                }
                Ok(vec![
                    AgentResumed {
                        agent: agent.clone(),
                    }
                    .into(),
                ])
            }
        }
    }
}

fn non_blank_text(text: &str, why: &str) -> Result<(), DomainError> {
    if text.trim().is_empty() {
        return Err(DomainError::InvalidCommand(why.into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing::{given, test_time};
    use chrono::TimeDelta;

    fn strategy(share: f64, allocation: u32, capacity: u32) -> DepartmentCommand {
        DepartmentCommand::UpdateStrategy {
            speaker_share: share,
            daily_allocation: allocation,
            min_quality_score: QualityScore::parse(7.0).unwrap(),
            rationale: "speakers reply more".into(),
            sending_capacity: capacity,
            variant_weights: BTreeMap::new(),
        }
    }

    fn adopted(version: u32, share: f64, allocation: u32) -> DepartmentEvent {
        StrategyUpdate {
            version,
            speaker_share: share,
            daily_allocation: allocation,
            min_quality_score: QualityScore::parse(7.0).unwrap(),
            rationale: "speakers reply more".into(),
            variant_weights: BTreeMap::new(),
        }
        .into()
    }

    fn alert(metric: &str) -> DepartmentCommand {
        DepartmentCommand::RaiseAlert {
            metric: metric.into(),
            value: 0.04,
            threshold: 0.08,
            severity: AlertSeverity::Warning,
            message: "reply rate below target".into(),
        }
    }

    fn alerted(metric: &str, date: NaiveDate) -> DepartmentEvent {
        PerformanceAlert {
            metric: metric.into(),
            value: 0.04,
            threshold: 0.08,
            severity: AlertSeverity::Warning,
            date,
            message: "reply rate below target".into(),
        }
        .into()
    }

    #[test]
    fn an_agent_is_paused_once_and_resumed_once() {
        let pause = || DepartmentCommand::PauseAgent {
            agent: "outreach".into(),
            reason: "holiday".into(),
        };
        let paused: DepartmentEvent = AgentPaused {
            agent: "outreach".into(),
            reason: "holiday".into(),
        }
        .into();
        let resumed: DepartmentEvent = AgentResumed {
            agent: "outreach".into(),
        }
        .into();
        given::<DepartmentState>([])
            .when(pause())
            .then([paused.clone()]);
        given::<DepartmentState>([paused.clone()])
            .when(pause())
            .then([]);
        let resume = || DepartmentCommand::ResumeAgent {
            agent: "outreach".into(),
        };
        given::<DepartmentState>([]).when(resume()).then([]);
        given::<DepartmentState>([paused.clone()])
            .when(resume())
            .then([resumed.clone()]);
        let state = DepartmentState::fold([&paused, &resumed]);
        assert!(state.paused_agents.is_empty());
        let error = given::<DepartmentState>([])
            .when(DepartmentCommand::PauseAgent {
                agent: " ".into(),
                reason: String::new(),
            })
            .then_err();
        assert!(matches!(error, DomainError::InvalidCommand(_)), "{error:?}");
    }

    #[test]
    fn strategies_are_numbered_in_order() {
        given::<DepartmentState>([])
            .when(strategy(0.6, 40, 45))
            .then([adopted(1, 0.6, 40)]);
        given::<DepartmentState>([adopted(1, 0.6, 40)])
            .when(strategy(0.5, 30, 45))
            .then([adopted(2, 0.5, 30)]);
    }

    #[test]
    fn a_strategy_never_allocates_more_than_the_accounts_can_send() {
        given::<DepartmentState>([])
            .when(strategy(0.6, 50, 45))
            .then_error(DomainError::AllocationExceedsCapacity {
                daily_allocation: 50,
                capacity: 45,
            });
    }

    #[test]
    fn a_strategy_needs_a_share_between_zero_and_one_and_some_leads() {
        for command in [
            strategy(1.2, 40, 45),
            strategy(f64::NAN, 40, 45),
            strategy(0.6, 0, 45),
        ] {
            let error = given::<DepartmentState>([]).when(command).then_err();
            assert!(matches!(error, DomainError::InvalidCommand(_)), "{error:?}");
        }
    }

    #[test]
    fn a_strategy_carries_variant_weights_and_rejects_bad_ones() {
        let weights = BTreeMap::from([("speaker_a".to_string(), 0.7), ("speaker_b".into(), 0.3)]);
        let command = |weights: BTreeMap<String, f64>| DepartmentCommand::UpdateStrategy {
            speaker_share: 0.6,
            daily_allocation: 40,
            min_quality_score: QualityScore::parse(7.0).unwrap(),
            rationale: "speakers reply more".into(),
            sending_capacity: 45,
            variant_weights: weights,
        };
        given::<DepartmentState>([])
            .when(command(weights.clone()))
            .then([StrategyUpdate {
                version: 1,
                speaker_share: 0.6,
                daily_allocation: 40,
                min_quality_score: QualityScore::parse(7.0).unwrap(),
                rationale: "speakers reply more".into(),
                variant_weights: weights,
            }
            .into()]);
        for bad in [
            BTreeMap::from([("speaker_a".to_string(), -0.1)]),
            BTreeMap::from([("speaker_a".to_string(), f64::INFINITY)]),
            BTreeMap::from([(" ".to_string(), 1.0)]),
        ] {
            let error = given::<DepartmentState>([]).when(command(bad)).then_err();
            assert!(matches!(error, DomainError::InvalidCommand(_)), "{error:?}");
        }
        // Events written before the field existed still read.
        let old: StrategyUpdate = serde_json::from_value(serde_json::json!({
            "version": 1, "speaker_share": 0.6, "daily_allocation": 40, "min_quality_score": 7.0
        }))
        .unwrap();
        assert!(old.variant_weights.is_empty());
    }

    #[test]
    fn a_report_is_mailed_once_and_only_after_it_was_generated() {
        let today = test_time().date_naive();
        let mailed = |id: &str| DepartmentCommand::RecordReportMailed {
            date: today,
            message_id: id.into(),
            recipients: 1,
        };
        let generated: DepartmentEvent = DailyReportGenerated {
            date: today,
            report: DailyReport::default(),
        }
        .into();
        let error = given::<DepartmentState>([]).when(mailed("a@b")).then_err();
        assert!(matches!(error, DomainError::InvalidCommand(_)));
        let record: DepartmentEvent = DailyReportMailed {
            date: today,
            message_id: "a@b".into(),
            recipients: 1,
        }
        .into();
        given::<DepartmentState>([generated.clone()])
            .when(mailed("a@b"))
            .then([record.clone()]);
        given::<DepartmentState>([generated, record])
            .when(mailed("a@b"))
            .then([]);
    }

    #[test]
    fn a_coordination_is_recorded_again_only_when_it_changed() {
        let today = test_time().date_naive();
        let record = CoordinationCompleted {
            date: today,
            search_id: None,
            allocated: 3,
            speakers: 2,
            sponsors: 1,
            target: 30,
            capacity: 3,
            bound_by: "capacity".into(),
            not_selected: Vec::new(),
        };
        given::<DepartmentState>([])
            .when(DepartmentCommand::RecordCoordination(record.clone()))
            .then([record.clone().into()]);
        given::<DepartmentState>([record.clone().into()])
            .when(DepartmentCommand::RecordCoordination(record.clone()))
            .then([]);
        let more = CoordinationCompleted {
            allocated: 4,
            ..record.clone()
        };
        given::<DepartmentState>([record.into()])
            .when(DepartmentCommand::RecordCoordination(more.clone()))
            .then([more.into()]);
    }

    #[test]
    fn an_alert_is_raised_once_per_metric_and_day() {
        let today = test_time().date_naive();
        given::<DepartmentState>([])
            .when(alert("reply_rate"))
            .then([alerted("reply_rate", today)]);
        given::<DepartmentState>([alerted("reply_rate", today)])
            .when(alert("reply_rate"))
            .then([]);
        given::<DepartmentState>([alerted("reply_rate", today)])
            .when(alert("classification_accuracy"))
            .then([alerted("classification_accuracy", today)]);
        given::<DepartmentState>([alerted("reply_rate", today)])
            .at(test_time() + TimeDelta::days(1))
            .when(alert("reply_rate"))
            .then([alerted("reply_rate", today.succ_opt().unwrap())]);
    }

    #[test]
    fn agent_errors_are_recorded_when_they_name_agent_and_operation() {
        let lead_id = Uuid::now_v7();
        let command = |agent: &str| DepartmentCommand::RecordAgentError {
            agent: agent.into(),
            operation: "send_message".into(),
            error: "provider timed out".into(),
            lead_id: Some(lead_id),
            retryable: true,
        };
        given::<DepartmentState>([])
            .when(command("outreach"))
            .then([AgentError {
                agent: "outreach".into(),
                operation: "send_message".into(),
                error: "provider timed out".into(),
                lead_id: Some(lead_id),
                retryable: true,
            }
            .into()]);
        let error = given::<DepartmentState>([]).when(command(" ")).then_err();
        assert!(matches!(error, DomainError::InvalidCommand(_)));
    }

    #[test]
    fn one_daily_report_per_day_and_none_for_the_future() {
        let today = test_time().date_naive();
        let report = DailyReport {
            messages_sent: 41,
            binding_caps: vec!["primary: messages_per_day".into()],
            ..DailyReport::default()
        };
        let generated: DepartmentEvent = DailyReportGenerated {
            date: today,
            report: report.clone(),
        }
        .into();
        given::<DepartmentState>([])
            .when(DepartmentCommand::GenerateDailyReport {
                date: today,
                report: report.clone(),
            })
            .then([generated.clone()]);
        given::<DepartmentState>([generated])
            .when(DepartmentCommand::GenerateDailyReport {
                date: today,
                report: report.clone(),
            })
            .then_error(DomainError::ReportAlreadyGenerated { date: today });
        let error = given::<DepartmentState>([])
            .when(DepartmentCommand::GenerateDailyReport {
                date: today.succ_opt().unwrap(),
                report,
            })
            .then_err();
        assert!(matches!(error, DomainError::InvalidCommand(_)));
    }
}
