//! The daily report (09:15, about the day before): the funnel, the week's numbers against the
//! targets (200+ messages, an 8–10 % reply rate), notable replies, errors and alerts, LLM token
//! costs, strategy changes, and the self-review (leads the coordination left out and why,
//! classifications below the confidence threshold).
//!
//! The figures are stored once as `daily_report_generated` — lead ids, intents and classes
//! only, no personal data, so the event outlives a forgotten person. The mail to the team is
//! rendered from that event and may name the leads (it goes to the people who work them; a
//! forgotten lead shows as such). Its Message-ID is derived from the event's id, so a retry
//! after a crash sends a mail the outbox (and any receiving system) recognises as the same;
//! `daily_report_mailed` then closes the day and later runs send nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{NaiveDate, TimeDelta};
use salesdept_events::RecordedEvent;
use salesdept_events::domain::account::AccountState;
use salesdept_events::domain::department::{
    DailyReport, DailyReportGenerated, DepartmentCommand, DepartmentEvent, NotableReply,
    StrategyUpdate, UncertainDecision,
};
use salesdept_events::domain::{
    DEPARTMENT_STREAM, DomainError, DomainEvent, SendAction, account_stream,
};
use salesdept_events::store::EventQuery;
use salesdept_projections::leads::get_lead;
use salesdept_projections::reports::{TargetStatus, funnel, weekly_summary};
use uuid::Uuid;

use super::allocation::query_all;
use super::{MANAGER_NAMESPACE, ManagerError, ReadModels, SalesManager, local_instant, utc_day};
use crate::llm::LlmPort;
use crate::mail::{MailHeaders, Mailbox, MessageId, SentMail, daily_report_mail, escape_html};

/// What became of the report mail.
#[derive(Clone, Debug, PartialEq)]
pub enum MailOutcome {
    /// Sent now (or found already in the outbox after a crash before it was recorded).
    Sent(SentMail),
    /// An earlier run mailed it: nothing was sent.
    AlreadyMailed,
    /// No team address is configured: the report is stored only.
    NoRecipients,
}

/// What a report run did.
#[derive(Clone, Debug, PartialEq)]
pub struct DailyReportOutcome {
    pub date: NaiveDate,
    /// The `daily_report_generated` event (the mail's Message-ID derives from it).
    pub event_id: Uuid,
    /// This run stored the report (false: an earlier run did, and its figures are reused).
    pub generated: bool,
    pub report: DailyReport,
    pub markdown: String,
    pub html: String,
    pub mail: MailOutcome,
}

/// What the mail adds to the stored figures: names for the team, the strategy in force.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReportContext {
    /// Lead id → a label for humans (the name, or "(forgotten)").
    pub names: BTreeMap<Uuid, String>,
    /// The strategy in force (its version is listed when it changed on the day).
    pub strategy: Option<StrategyUpdate>,
}

fn report_cause(day: NaiveDate) -> Uuid {
    Uuid::new_v5(&MANAGER_NAMESPACE, format!("daily_report:{day}").as_bytes())
}

pub(super) async fn daily_report<S, L>(
    manager: &SalesManager<S, L>,
    day: NaiveDate,
) -> Result<DailyReportOutcome, ManagerError>
where
    S: ReadModels + ?Sized + 'static,
    L: LlmPort,
{
    let department = manager.department().await?;
    let (event_id, report, generated) = if department.reported_days.contains(&day) {
        let (event_id, report) = stored_report(manager, day).await?;
        (event_id, report, false)
    } else {
        let report = build_report(manager, day, &department).await?;
        let metadata = manager
            .metadata()
            .with_step(report_cause(day), "daily_report_generated");
        let command = DepartmentCommand::GenerateDailyReport {
            date: day,
            report: report.clone(),
        };
        match manager.department_command(&command, &metadata).await {
            Ok(executed) => {
                let event_id = executed
                    .appended
                    .first()
                    .map_or_else(|| metadata.event_id(0), |event| event.event_id);
                (event_id, report, true)
            }
            // Another run stored it between our read and our append.
            Err(ManagerError::Command(error))
                if matches!(
                    error.rejection(),
                    Some(DomainError::ReportAlreadyGenerated { .. })
                ) =>
            {
                let (event_id, report) = stored_report(manager, day).await?;
                (event_id, report, false)
            }
            Err(error) => return Err(error),
        }
    };

    let context = report_context(manager, &report, department.strategy.clone()).await?;
    let markdown = render_markdown(day, &report, &context);
    let html = render_html(day, &report, &context);

    let department = manager.department().await?;
    let mail = if department.mailed_days.contains(&day) {
        MailOutcome::AlreadyMailed
    } else if manager.settings.team_emails.is_empty() {
        MailOutcome::NoRecipients
    } else {
        let sent = send_mail(manager, day, event_id, &markdown, &html).await?;
        let metadata = manager
            .metadata()
            .with_step(event_id, "daily_report_mailed");
        manager
            .department_command(
                &DepartmentCommand::RecordReportMailed {
                    date: day,
                    message_id: sent.message_id.as_str().to_owned(),
                    recipients: manager.settings.team_emails.len() as u32,
                },
                &metadata,
            )
            .await?;
        MailOutcome::Sent(sent)
    };
    Ok(DailyReportOutcome {
        date: day,
        event_id,
        generated,
        report,
        markdown,
        html,
        mail,
    })
}

async fn send_mail<S, L>(
    manager: &SalesManager<S, L>,
    day: NaiveDate,
    event_id: Uuid,
    markdown: &str,
    html: &str,
) -> Result<SentMail, ManagerError>
where
    S: ReadModels + ?Sized + 'static,
    L: LlmPort,
{
    let settings = &manager.settings;
    let parse = |text: &str| {
        text.parse::<Mailbox>().map_err(|error| {
            ManagerError::InvalidSettings(format!("mail address {text:?}: {error}"))
        })
    };
    let headers = MailHeaders {
        message_id: MessageId::for_event(event_id, &settings.message_id_domain)?,
        from: parse(&settings.report_from)?,
        to: settings
            .team_emails
            .iter()
            .map(|address| parse(address))
            .collect::<Result<_, _>>()?,
    };
    let mail = daily_report_mail(headers, day, markdown, html);
    Ok(manager.mail.send(&mail).await?)
}

/// The stored report of `day` and its event id.
async fn stored_report<S, L>(
    manager: &SalesManager<S, L>,
    day: NaiveDate,
) -> Result<(Uuid, DailyReport), ManagerError>
where
    S: ReadModels + ?Sized + 'static,
    L: LlmPort,
{
    let events = manager
        .store
        .read_stream(DEPARTMENT_STREAM, 1, None)
        .await?;
    for event in events.iter().rev() {
        if event.event_type != "daily_report_generated" {
            continue;
        }
        if let DepartmentEvent::DailyReportGenerated(DailyReportGenerated { date, report }) =
            DepartmentEvent::from_recorded(event)?
            && date == day
        {
            return Ok((event.event_id, report));
        }
    }
    Err(ManagerError::Store(
        salesdept_events::StoreError::InvalidAppend(format!(
            "the department stream says {day} was reported, but holds no such report"
        )),
    ))
}

async fn day_events<S, L>(
    manager: &SalesManager<S, L>,
    day: NaiveDate,
    event_type: Option<&str>,
    stream_prefix: Option<&str>,
) -> Result<Vec<RecordedEvent>, ManagerError>
where
    S: ReadModels + ?Sized + 'static,
    L: LlmPort,
{
    let (start, end) = utc_day(day);
    query_all(
        manager,
        EventQuery {
            occurred_from: Some(start),
            occurred_to: Some(end),
            event_type: event_type.map(str::to_owned),
            stream_prefix: stream_prefix.map(str::to_owned),
            ..EventQuery::default()
        },
    )
    .await
}

async fn build_report<S, L>(
    manager: &SalesManager<S, L>,
    day: NaiveDate,
    department: &salesdept_events::domain::DepartmentState,
) -> Result<DailyReport, ManagerError>
where
    S: ReadModels + ?Sized + 'static,
    L: LlmPort,
{
    let settings = &manager.settings;
    let store = manager.read_models();
    let totals = funnel(store, day, day).await?.totals;
    let week = weekly_summary(store, day).await?;
    let narrow = |value: u64| u32::try_from(value).unwrap_or(u32::MAX);

    let mut report = DailyReport {
        leads_discovered: narrow(totals.discovered),
        leads_allocated: narrow(totals.allocated),
        invitations_sent: narrow(totals.invited),
        messages_sent: narrow(totals.sent),
        follow_ups_sent: narrow(totals.follow_ups_sent),
        responses: narrow(totals.replied),
        positive_responses: narrow(totals.positive),
        handed_over: narrow(totals.qualified),
        week_messages_sent: narrow(week.messages_sent),
        week_reply_rate: week.reply_rate,
        week_positive_rate: week.positive_rate,
        ..DailyReport::default()
    };

    // Which caps bound the day, per account.
    for (account_id, limits) in &manager.accounts {
        let state = manager
            .handler
            .load::<AccountState>(&account_stream(account_id))
            .await?
            .state;
        let hours = &limits.working_hours;
        let at = local_instant(hours.time_zone, day, hours.end) - TimeDelta::seconds(1);
        if state.used_on_day(SendAction::Message, limits, at) >= limits.messages_per_day {
            report
                .binding_caps
                .push(format!("{account_id}: messages_per_day"));
        }
        if state.used_on_day(SendAction::Invitation, limits, at) >= limits.invitations_per_day {
            report
                .binding_caps
                .push(format!("{account_id}: invitations_per_day"));
        } else if state.remaining_today(SendAction::Invitation, limits, at) == 0 {
            report
                .binding_caps
                .push(format!("{account_id}: invitations_per_week"));
        }
    }

    // The self-review: the day's coordination left these out...
    if let Some(record) = department.coordinations.get(&day) {
        report
            .uncertain_decisions
            .extend(record.not_selected.iter().cloned());
    }
    // ...and these classifications were unsure.
    for event in day_events(manager, day, Some("lead_classified"), Some("lead-")).await? {
        let confidence = event.data.get("confidence").and_then(|c| c.as_f64());
        let manual = event.data.get("manual").and_then(|m| m.as_bool()) == Some(true);
        let class = event
            .data
            .get("classification")
            .and_then(|c| c.as_str())
            .unwrap_or("?");
        let Some(lead_id) = salesdept_events::domain::streams::lead_id_of(&event.stream_id) else {
            continue;
        };
        if let Some(confidence) =
            confidence.filter(|c| !manual && *c < settings.review_confidence_threshold)
        {
            report.uncertain_decisions.push(UncertainDecision {
                lead_id,
                kind: "unclear_classification".into(),
                reason: format!(
                    "classified {class} at confidence {confidence:.2} (below {:.2}): waits for a \
                     human check",
                    settings.review_confidence_threshold
                ),
            });
        }
    }

    for event in day_events(manager, day, Some("agent_error"), Some(DEPARTMENT_STREAM)).await? {
        let agent = event
            .data
            .get("agent")
            .and_then(|a| a.as_str())
            .unwrap_or("unknown");
        *report.agent_errors.entry(agent.to_owned()).or_default() += 1;
    }
    for event in day_events(
        manager,
        day,
        Some("performance_alert"),
        Some(DEPARTMENT_STREAM),
    )
    .await?
    {
        if let Some(metric) = event.data.get("metric").and_then(|m| m.as_str())
            && !report.alerts.iter().any(|known| known == metric)
        {
            report.alerts.push(metric.to_owned());
        }
    }
    for event in day_events(
        manager,
        day,
        Some("strategy_update"),
        Some(DEPARTMENT_STREAM),
    )
    .await?
    {
        if let Some(version) = event.data.get("version").and_then(|v| v.as_u64()) {
            report
                .strategy_versions
                .push(u32::try_from(version).unwrap_or(u32::MAX));
        }
    }
    for event in day_events(manager, day, Some("lead_qualified"), Some("lead-")).await? {
        let Some(lead_id) = salesdept_events::domain::streams::lead_id_of(&event.stream_id) else {
            continue;
        };
        let intent = event
            .data
            .get("intent")
            .and_then(|i| i.as_str())
            .unwrap_or("?")
            .to_owned();
        let classification = get_lead(store, lead_id)
            .await?
            .map(|row| row.classification)
            .unwrap_or_default();
        report.notable_replies.push(NotableReply {
            lead_id,
            intent,
            classification,
        });
    }
    // LLM costs: the usage recorded in the metadata of every event of the day.
    for event in day_events(manager, day, None, None).await? {
        if let Some(usage) = &event.metadata.llm {
            report.llm_decisions += 1;
            report.llm_prompt_tokens += u64::from(usage.prompt_tokens);
            report.llm_completion_tokens += u64::from(usage.completion_tokens);
        }
    }
    Ok(report)
}

/// Names for the leads the report mentions (the mail goes to the team, which works them).
async fn report_context<S, L>(
    manager: &SalesManager<S, L>,
    report: &DailyReport,
    strategy: Option<StrategyUpdate>,
) -> Result<ReportContext, ManagerError>
where
    S: ReadModels + ?Sized + 'static,
    L: LlmPort,
{
    let mut names = BTreeMap::new();
    let ids = report
        .notable_replies
        .iter()
        .map(|reply| reply.lead_id)
        .chain(report.uncertain_decisions.iter().map(|d| d.lead_id));
    for lead_id in ids {
        if names.contains_key(&lead_id) {
            continue;
        }
        let label = match get_lead(manager.read_models(), lead_id).await? {
            Some(row) if row.forgotten => "(forgotten)".to_owned(),
            Some(row) if !row.company.is_empty() => format!("{} ({})", row.name, row.company),
            Some(row) => row.name,
            None => "(not in the lead table yet)".to_owned(),
        };
        names.insert(lead_id, label);
    }
    Ok(ReportContext { names, strategy })
}

/// One block of the report, rendered as Markdown and as HTML alike.
enum Block {
    Heading(String),
    Table(Vec<(String, String)>),
    List(Vec<String>),
    Paragraph(String),
}

fn percent(rate: f64) -> String {
    format!("{:.1} %", rate * 100.0)
}

fn blocks(day: NaiveDate, report: &DailyReport, context: &ReportContext) -> Vec<Block> {
    let mut blocks = Vec::new();
    let name = |lead_id: &Uuid| {
        context
            .names
            .get(lead_id)
            .cloned()
            .unwrap_or_else(|| "(unknown lead)".to_owned())
    };

    blocks.push(Block::Heading(format!("Funnel of {day}")));
    blocks.push(Block::Table(
        [
            ("Leads discovered", report.leads_discovered),
            ("Leads allocated", report.leads_allocated),
            ("Invitations sent", report.invitations_sent),
            ("First messages sent", report.messages_sent),
            ("Follow-ups sent", report.follow_ups_sent),
            ("Replies", report.responses),
            ("Positive replies", report.positive_responses),
            ("Handed over", report.handed_over),
        ]
        .into_iter()
        .map(|(label, value)| (label.to_owned(), value.to_string()))
        .collect(),
    ));

    let (low, high) = salesdept_projections::reports::REPLY_RATE_TARGET_PERCENT;
    let target = salesdept_projections::reports::WEEKLY_MESSAGE_TARGET;
    let reply_status = match status_of(report.week_reply_rate, low, high) {
        TargetStatus::Below => "below target",
        TargetStatus::Within => "on target",
        TargetStatus::Above => "above target",
    };
    blocks.push(Block::Heading("Against the targets (7 days)".into()));
    let mut targets = vec![
        format!(
            "Messages sent: {} (target {target}+: {})",
            report.week_messages_sent,
            if u64::from(report.week_messages_sent) >= target {
                "on target"
            } else {
                "below target"
            }
        ),
        format!(
            "Reply rate: {} (target {low}–{high} %: {reply_status})",
            percent(report.week_reply_rate)
        ),
        format!(
            "Positive reply rate: {}",
            percent(report.week_positive_rate)
        ),
    ];
    if report.binding_caps.is_empty() {
        targets.push("No account reached a cap.".into());
    } else {
        targets.push(format!("Caps reached: {}", report.binding_caps.join(", ")));
    }
    blocks.push(Block::List(targets));

    blocks.push(Block::Heading("Notable replies".into()));
    if report.notable_replies.is_empty() {
        blocks.push(Block::Paragraph("No positive reply.".into()));
    } else {
        blocks.push(Block::List(
            report
                .notable_replies
                .iter()
                .map(|reply| {
                    format!(
                        "{} — {} ({}), lead {}",
                        name(&reply.lead_id),
                        reply.intent,
                        if reply.classification.is_empty() {
                            "unclassified"
                        } else {
                            &reply.classification
                        },
                        reply.lead_id
                    )
                })
                .collect(),
        ));
    }

    blocks.push(Block::Heading("Errors and alerts".into()));
    let mut problems: Vec<String> = report
        .agent_errors
        .iter()
        .map(|(agent, count)| format!("{agent}: {count} error(s)"))
        .collect();
    if !report.alerts.is_empty() {
        problems.push(format!("Alerts raised: {}", report.alerts.join(", ")));
    }
    if problems.is_empty() {
        blocks.push(Block::Paragraph("No error, no alert.".into()));
    } else {
        blocks.push(Block::List(problems));
    }

    blocks.push(Block::Heading("Costs".into()));
    blocks.push(Block::List(vec![
        format!("LLM decisions: {}", report.llm_decisions),
        format!(
            "LLM tokens: {} prompt + {} completion = {} in all",
            report.llm_prompt_tokens,
            report.llm_completion_tokens,
            report.llm_prompt_tokens + report.llm_completion_tokens
        ),
    ]));

    blocks.push(Block::Heading("Strategy".into()));
    let current = context.strategy.as_ref().map(|strategy| {
        let weights = if strategy.variant_weights.is_empty() {
            "no variant preference".to_owned()
        } else {
            strategy
                .variant_weights
                .iter()
                .map(|(key, weight)| format!("{key} {weight:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "Strategy v{}: {:.0} % speakers, {} leads a day, minimum quality {}, {weights}.",
            strategy.version,
            strategy.speaker_share * 100.0,
            strategy.daily_allocation,
            strategy.min_quality_score
        )
    });
    let mut strategy_lines = Vec::new();
    if report.strategy_versions.is_empty() {
        strategy_lines.push("No change on the day.".to_owned());
    } else {
        strategy_lines.push(format!(
            "Adopted on the day: version {}.",
            report
                .strategy_versions
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    strategy_lines.extend(current);
    blocks.push(Block::List(strategy_lines));

    blocks.push(Block::Heading("Self-review: decisions to check".into()));
    let of_kind = |kind: &str| -> Vec<String> {
        report
            .uncertain_decisions
            .iter()
            .filter(|decision| decision.kind == kind)
            .map(|decision| {
                format!(
                    "{} (lead {}): {}",
                    name(&decision.lead_id),
                    decision.lead_id,
                    decision.reason
                )
            })
            .collect()
    };
    for (kind, title, none) in [
        (
            "not_selected",
            "Leads not selected",
            "Every allocatable lead was allocated.",
        ),
        (
            "unclear_classification",
            "Low-confidence classifications",
            "No classification below the confidence threshold.",
        ),
    ] {
        blocks.push(Block::Paragraph(format!("{title}:")));
        let items = of_kind(kind);
        if items.is_empty() {
            blocks.push(Block::Paragraph(none.into()));
        } else {
            blocks.push(Block::List(items));
        }
    }
    blocks
}

fn status_of(rate: f64, low: u64, high: u64) -> TargetStatus {
    if rate * 100.0 < low as f64 {
        TargetStatus::Below
    } else if rate * 100.0 > high as f64 {
        TargetStatus::Above
    } else {
        TargetStatus::Within
    }
}

/// Markdown control characters in free text (names) are escaped so a name cannot format.
fn escape_markdown(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '|'
        ) {
            escaped.push('\\');
        }
        escaped.push(if c.is_control() { ' ' } else { c });
    }
    escaped
}

/// The report as Markdown (the mail's text part).
pub fn render_markdown(day: NaiveDate, report: &DailyReport, context: &ReportContext) -> String {
    let mut out = format!("# Daily sales report — {day}\n");
    for block in blocks(day, report, context) {
        match block {
            Block::Heading(text) => {
                let _ = write!(out, "\n## {}\n\n", escape_markdown(&text));
            }
            Block::Table(rows) => {
                out.push_str("| Stage | Count |\n|---|---:|\n");
                for (label, value) in rows {
                    let _ = writeln!(out, "| {} | {} |", escape_markdown(&label), value);
                }
            }
            Block::List(items) => {
                for item in items {
                    let _ = writeln!(out, "- {}", escape_markdown(&item));
                }
                out.push('\n');
            }
            Block::Paragraph(text) => {
                let _ = write!(out, "{}\n\n", escape_markdown(&text));
            }
        }
    }
    out.trim_end().to_owned() + "\n"
}

/// The report as an HTML document (the mail's HTML part); every text is escaped.
pub fn render_html(day: NaiveDate, report: &DailyReport, context: &ReportContext) -> String {
    let title = escape_html(&format!("Daily sales report — {day}"));
    let mut out = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body>\n<h1>{title}</h1>\n"
    );
    for block in blocks(day, report, context) {
        match block {
            Block::Heading(text) => {
                let _ = writeln!(out, "<h2>{}</h2>", escape_html(&text));
            }
            Block::Table(rows) => {
                out.push_str("<table>\n<tr><th>Stage</th><th>Count</th></tr>\n");
                for (label, value) in rows {
                    let _ = writeln!(
                        out,
                        "<tr><td>{}</td><td align=\"right\">{}</td></tr>",
                        escape_html(&label),
                        escape_html(&value)
                    );
                }
                out.push_str("</table>\n");
            }
            Block::List(items) => {
                out.push_str("<ul>\n");
                for item in items {
                    let _ = writeln!(out, "<li>{}</li>", escape_html(&item));
                }
                out.push_str("</ul>\n");
            }
            Block::Paragraph(text) => {
                let _ = writeln!(out, "<p>{}</p>", escape_html(&text));
            }
        }
    }
    out.push_str("</body></html>\n");
    out
}
