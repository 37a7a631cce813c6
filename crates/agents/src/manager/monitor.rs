//! Monitoring: is every agent alive, are its errors rare, do people reply?
//!
//! - **Heartbeats**: an agent's last activity is its last event in the log (by actor). An agent
//!   that was active once and has written nothing for `silence_after` (the non-working days in
//!   between not counted) has gone silent.
//! - **Error rates**: the last 24 hours' `agent_error` events per agent, against that agent's
//!   other events in the same hours.
//! - **Reply rate**: the reports' weekly summary, over the 7 days ending `reply_rate_lag_days`
//!   ago (replies take a few days), once enough first messages were sent.
//!
//! Each finding becomes a `performance_alert` through the department's rules, which raise an
//! alert once per metric and day.

use chrono::{DateTime, Datelike, TimeDelta, Utc, Weekday};
use salesdept_events::Actor;
use salesdept_events::domain::department::{
    AlertSeverity, DepartmentCommand, DepartmentEvent, PerformanceAlert,
};
use salesdept_events::store::EventQuery;
use salesdept_projections::reports::weekly_summary;

use super::allocation::query_all;
use super::{ManagerError, ReadModels, SalesManager};
use crate::llm::LlmPort;

/// When monitoring raises an alert.
#[derive(Clone, Debug, PartialEq)]
pub struct MonitorThresholds {
    /// The weekly reply rate below which an alert is raised (0.08, the seed's floor).
    pub reply_rate_floor: f64,
    /// The reply rate is judged only with at least this many first messages in the week.
    pub reply_rate_min_sent: u64,
    /// The week judged ends this many days before today (recent messages had no time yet).
    pub reply_rate_lag_days: u32,
    /// An agent is silent after this long without an event (working days only).
    pub silence_after: TimeDelta,
    /// The agents whose heartbeat and errors are watched (their actor names).
    pub monitored_agents: Vec<String>,
    /// The days the department works: silence on other days does not count.
    pub working_days: Vec<Weekday>,
    /// An agent's share of failed operations above which an alert is raised.
    pub error_rate_ceiling: f64,
    /// ...once it had at least this many errors in the last 24 hours.
    pub min_errors_for_alert: u32,
}

impl Default for MonitorThresholds {
    fn default() -> Self {
        Self {
            reply_rate_floor: 0.08,
            reply_rate_min_sent: 20,
            reply_rate_lag_days: 2,
            silence_after: TimeDelta::hours(26),
            monitored_agents: vec!["lead_finder".into(), "outreach".into()],
            working_days: vec![
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
            ],
            error_rate_ceiling: 0.2,
            min_errors_for_alert: 3,
        }
    }
}

impl MonitorThresholds {
    /// The start of the silence window ending at `now`: `silence_after` back, stretched by
    /// every non-working day it covers.
    pub fn silence_window_start(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let mut start = now - self.silence_after;
        if self.working_days.is_empty() {
            return start;
        }
        // Walk back from today: every non-working day inside the window pushes its start a
        // day further back (which may take in another non-working day).
        let mut day = now.date_naive();
        while day >= start.date_naive() {
            if !self.working_days.contains(&day.weekday()) {
                start -= TimeDelta::days(1);
            }
            match day.pred_opt() {
                Some(previous) => day = previous,
                None => break,
            }
        }
        start
    }
}

/// A finding before the department's rules see it.
struct Finding {
    metric: String,
    value: f64,
    threshold: f64,
    severity: AlertSeverity,
    message: String,
}

pub(super) async fn monitor<S, L>(
    manager: &SalesManager<S, L>,
) -> Result<Vec<PerformanceAlert>, ManagerError>
where
    S: ReadModels + ?Sized + 'static,
    L: LlmPort,
{
    let thresholds = &manager.settings.alerts;
    let now = manager.now();
    let mut findings = Vec::new();

    for agent in &thresholds.monitored_agents {
        if let Some(finding) = heartbeat(manager, agent, now).await? {
            findings.push(finding);
        }
    }
    findings.extend(error_rates(manager, now).await?);
    if let Some(finding) = reply_rate(manager, now).await? {
        findings.push(finding);
    }

    let mut raised = Vec::new();
    for finding in findings {
        let command = DepartmentCommand::RaiseAlert {
            metric: finding.metric,
            value: finding.value,
            threshold: finding.threshold,
            severity: finding.severity,
            message: finding.message,
        };
        let executed = manager
            .department_command(&command, &manager.metadata())
            .await?;
        raised.extend(executed.events.into_iter().filter_map(|event| match event {
            DepartmentEvent::PerformanceAlert(alert) => Some(alert),
            _ => None,
        }));
    }
    Ok(raised)
}

async fn heartbeat<S, L>(
    manager: &SalesManager<S, L>,
    agent: &str,
    now: DateTime<Utc>,
) -> Result<Option<Finding>, ManagerError>
where
    S: ReadModels + ?Sized + 'static,
    L: LlmPort,
{
    let thresholds = &manager.settings.alerts;
    let start = thresholds.silence_window_start(now);
    let store = manager.read_models();
    let query = |from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>| EventQuery {
        occurred_from: from,
        occurred_to: to,
        actor: Some(Actor::agent(agent)),
        limit: 1,
        ..EventQuery::default()
    };
    if !store
        .query_events(&query(Some(start), Some(now)))
        .await?
        .is_empty()
    {
        return Ok(None);
    }
    // Never active at all: nothing has gone silent (the department may just be starting).
    if store
        .query_events(&query(None, Some(start)))
        .await?
        .is_empty()
    {
        return Ok(None);
    }
    let hours = (now - start).num_minutes() as f64 / 60.0;
    let threshold = thresholds.silence_after.num_minutes() as f64 / 60.0;
    Ok(Some(Finding {
        metric: format!("agent_silent_{agent}"),
        value: hours,
        threshold,
        severity: AlertSeverity::Critical,
        message: format!(
            "{agent} has recorded nothing since {} ({hours:.0} h, working days only; the limit \
             is {threshold:.0} h)",
            start.format("%Y-%m-%d %H:%M UTC")
        ),
    }))
}

async fn error_rates<S, L>(
    manager: &SalesManager<S, L>,
    now: DateTime<Utc>,
) -> Result<Vec<Finding>, ManagerError>
where
    S: ReadModels + ?Sized + 'static,
    L: LlmPort,
{
    let thresholds = &manager.settings.alerts;
    let from = now - TimeDelta::hours(24);
    let errors = query_all(
        manager,
        EventQuery {
            occurred_from: Some(from),
            occurred_to: Some(now),
            event_type: Some("agent_error".into()),
            stream_prefix: Some(salesdept_events::domain::DEPARTMENT_STREAM.into()),
            ..EventQuery::default()
        },
    )
    .await?;
    let mut per_agent: std::collections::BTreeMap<String, u32> = Default::default();
    for event in &errors {
        if let Some(agent) = event.data.get("agent").and_then(|agent| agent.as_str()) {
            *per_agent.entry(agent.to_owned()).or_default() += 1;
        }
    }
    let mut findings = Vec::new();
    for (agent, count) in per_agent {
        if count < thresholds.min_errors_for_alert {
            continue;
        }
        let activity = query_all(
            manager,
            EventQuery {
                occurred_from: Some(from),
                occurred_to: Some(now),
                actor: Some(Actor::agent(agent.clone())),
                ..EventQuery::default()
            },
        )
        .await?
        .iter()
        .filter(|event| event.event_type != "agent_error")
        .count() as f64;
        let rate = f64::from(count) / (activity + f64::from(count));
        if rate <= thresholds.error_rate_ceiling {
            continue;
        }
        findings.push(Finding {
            metric: format!("agent_error_rate_{agent}"),
            value: rate,
            threshold: thresholds.error_rate_ceiling,
            severity: if rate >= 0.5 {
                AlertSeverity::Critical
            } else {
                AlertSeverity::Warning
            },
            message: format!(
                "{agent}: {count} errors against {activity:.0} other events in the last 24 h \
                 ({:.0} % failed)",
                rate * 100.0
            ),
        });
    }
    Ok(findings)
}

async fn reply_rate<S, L>(
    manager: &SalesManager<S, L>,
    now: DateTime<Utc>,
) -> Result<Option<Finding>, ManagerError>
where
    S: ReadModels + ?Sized + 'static,
    L: LlmPort,
{
    let thresholds = &manager.settings.alerts;
    let week_ending = now.date_naive() - TimeDelta::days(i64::from(thresholds.reply_rate_lag_days));
    let summary = weekly_summary(manager.read_models(), week_ending).await?;
    if summary.first_messages_sent < thresholds.reply_rate_min_sent
        || summary.reply_rate >= thresholds.reply_rate_floor
    {
        return Ok(None);
    }
    Ok(Some(Finding {
        metric: "reply_rate".into(),
        value: summary.reply_rate,
        threshold: thresholds.reply_rate_floor,
        severity: AlertSeverity::Warning,
        message: format!(
            "{} replies to {} first messages sent {}–{} ({:.1} %), below the floor of {:.1} %",
            summary.replied,
            summary.first_messages_sent,
            summary.from,
            summary.to,
            summary.reply_rate * 100.0,
            thresholds.reply_rate_floor * 100.0
        ),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_silence_window_skips_the_weekend() {
        let thresholds = MonitorThresholds::default();
        // Monday 09:00: 26 h back is Sunday 07:00; Saturday and Sunday stretch it to Friday.
        let monday: DateTime<Utc> = "2026-12-07T09:00:00Z".parse().unwrap();
        let start = thresholds.silence_window_start(monday);
        assert_eq!(
            start,
            "2026-12-04T07:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        let wednesday: DateTime<Utc> = "2026-12-09T09:00:00Z".parse().unwrap();
        assert_eq!(
            thresholds.silence_window_start(wednesday),
            wednesday - TimeDelta::hours(26)
        );
    }
}
