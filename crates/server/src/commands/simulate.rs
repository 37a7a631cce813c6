//! `salesdept simulate --days N [--seed S] [--accounts K] [--json]`: the whole department — the
//! real agents, scheduler and adapters — in simulated time against the seeded sandbox network.
//!
//! The run needs an empty event log: by default a fresh SQLite file under the run's output
//! directory (with the mail outbox and the Sheet's CSV next to it); `--database` names another
//! (empty) store. A progress line per simulated day goes to stderr; the summary is computed
//! from the event log afterwards, then the invariants are checked (`--no-check` skips them) and
//! the command fails if one is broken. With `--json` the summary is one JSON object on the last
//! line of stdout.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveTime, TimeDelta, Utc, Weekday};
use chrono_tz::Tz;
use salesdept_agents::clock::{Clock, SimulatedClock};
use salesdept_agents::department::checks::{CheckReport, CheckSettings, check_all};
use salesdept_agents::department::summary::SimulationSummary;
use salesdept_agents::department::{
    AccountSettings, DayDone, Department, DepartmentSettings, Scheduler, SimulatedDriver,
};
use salesdept_agents::lead_finder::FinderSettings;
use salesdept_agents::manager::ManagerSettings;
use salesdept_agents::manager::monitor::MonitorThresholds;
use salesdept_agents::outreach::OutreachSettings;
use salesdept_agents::sandbox::SandboxNetwork;
use salesdept_events::EventStore;
use salesdept_events::domain::search::SearchCriteria;
use salesdept_events::domain::{AccountId, AccountLimits, WorkingHours};
use salesdept_projections::sheet::{CsvFileSink, SheetSync};
use serde_json::json;

use crate::cli::{GlobalArgs, SimulateArgs};
use crate::config::{AgentsConfig, load_agents};
use crate::database::open_store;

/// The default simulated start: a Monday.
pub const DEFAULT_START: &str = "2026-01-05T00:00:00Z";

pub async fn run(global: &GlobalArgs, args: &SimulateArgs) -> anyhow::Result<()> {
    if args.days == 0 {
        bail!("--days must be at least 1");
    }
    let agents = load_agents(&global.config)?;
    let start = match &args.start {
        Some(text) => salesdept_projections::audit::parse_time(text, false)
            .map_err(|why| anyhow::anyhow!("--start: {why}"))?,
        None => DEFAULT_START.parse().expect("a valid start"),
    };
    let until = start + TimeDelta::days(i64::from(args.days));
    let output = args.output.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "data/simulate/seed-{}-{}",
            args.seed,
            Utc::now().format("%Y%m%dT%H%M%S%.3f")
        ))
    });
    std::fs::create_dir_all(&output)
        .with_context(|| format!("cannot create the output directory {}", output.display()))?;
    let mut global = GlobalArgs {
        database: global.database.clone(),
        config: global.config.clone(),
    };
    if global
        .database
        .as_deref()
        .is_none_or(|url| url.trim().is_empty())
    {
        global.database = Some(format!(
            "sqlite://{}",
            output.join("salesdept.sqlite").display()
        ));
    }
    let store = open_store(&global).await?;
    let result = simulate(&store, &agents, args, start, until, &output).await;
    store.close().await;
    result
}

async fn simulate(
    store: &salesdept_events::Store,
    agents: &AgentsConfig,
    args: &SimulateArgs,
    start: DateTime<Utc>,
    until: DateTime<Utc>,
    output: &Path,
) -> anyhow::Result<()> {
    let first = store
        .read_all(salesdept_events::Checkpoint::START, 1)
        .await
        .context("cannot read the event log")?;
    if !first.is_empty() {
        bail!(
            "simulate needs an empty event log, and this one holds events: leave out --database \
             for a fresh SQLite file, or name an empty database"
        );
    }
    let settings = department_settings(agents, args.accounts, output)?;
    let sheet_csv = settings.sheet_csv.clone();
    let clock = SimulatedClock::starting_at(start);
    let network = Arc::new(SandboxNetwork::generate(args.seed, args.network_size));
    let department = Department::new(
        store.clone(),
        Arc::new(clock.clone()) as Arc<dyn Clock>,
        network,
        settings,
    )
    .await
    .context("cannot set up the department")?;

    let wall = Instant::now();
    let driver = SimulatedDriver::new(clock.clone(), until).on_day(progress_line);
    let report = driver
        .run(&department.schedule(), &department)
        .await
        .context("the simulation stopped")?;
    department.catch_up_all().await?;
    let simulated_seconds = wall.elapsed().as_secs_f64();

    let summary = SimulationSummary::from_store(store)
        .await
        .context("cannot summarise the event log")?;
    let checks = if args.no_check {
        None
    } else {
        let check_settings = CheckSettings {
            accounts: department.account_limits(),
            outbox_dir: Some(department.settings().outbox_dir.clone()),
            message_id_domain: department.settings().hand_over.message_id_domain.clone(),
        };
        let sheet = sheet_csv.as_ref().map(|path| {
            (
                SheetSync::new(store.clone(), Arc::new(CsvFileSink::new(path.clone()))),
                path.clone(),
            )
        });
        Some(
            check_all(
                store,
                &check_settings,
                sheet.as_ref().map(|(sync, path)| (sync, path.as_path())),
            )
            .await
            .context("cannot check the run's invariants")?,
        )
    };
    department.release().await?;
    let total_seconds = wall.elapsed().as_secs_f64();

    let mut stdout = std::io::stdout().lock();
    if args.json {
        let mut object = summary.to_json();
        if let Some(map) = object.as_object_mut() {
            map.insert("days".into(), json!(args.days));
            map.insert("seed".into(), json!(args.seed));
            map.insert("accounts".into(), json!(args.accounts));
            map.insert("backend".into(), json!(store.backend()));
            map.insert("simulated_from".into(), json!(start));
            map.insert("simulated_to".into(), json!(until));
            map.insert("driver_steps".into(), json!(report.steps));
            map.insert(
                "job_seconds".into(),
                json!(
                    report
                        .job_time
                        .iter()
                        .map(|(job, time)| (job.as_str(), round(time.as_secs_f64())))
                        .collect::<std::collections::BTreeMap<_, _>>()
                ),
            );
            map.insert(
                "catch_up_seconds".into(),
                json!(round(report.catch_up_time.as_secs_f64())),
            );
            map.insert("wall_seconds".into(), json!(round(simulated_seconds)));
            map.insert(
                "wall_seconds_with_checks".into(),
                json!(round(total_seconds)),
            );
            map.insert("output".into(), json!(output.display().to_string()));
            if let Some(checks) = &checks {
                map.insert("checks".into(), checks_json(checks));
            }
        }
        writeln!(stdout, "{object}")?;
    } else {
        print_summary(&mut stdout, &summary, args, simulated_seconds, output)?;
        if let Some(checks) = &checks {
            writeln!(stdout, "checks: {checks}")?;
        }
    }
    drop(stdout);
    if let Some(checks) = checks
        && !checks.passed()
    {
        bail!("the run broke {} invariant(s)", checks.violations.len());
    }
    Ok(())
}

fn round(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

fn checks_json(checks: &CheckReport) -> serde_json::Value {
    json!({
        "passed": checks.passed(),
        "examined": checks.examined,
        "violations": checks.violations.iter().map(ToString::to_string).collect::<Vec<_>>(),
    })
}

/// One line per simulated day, on stderr.
fn progress_line(day: &DayDone) {
    let width = 30usize;
    let filled = (day.number as usize * width / day.of.max(1) as usize).min(width);
    eprintln!(
        "day {:>3}/{:<3} [{}{}] {} {}  leads {:>4}  invitations {:>3}  messages {:>3}  replies {:>3}",
        day.number,
        day.of,
        "#".repeat(filled),
        ".".repeat(width - filled),
        day.day,
        day.day.format("%a"),
        day.activity.leads_found,
        day.activity.invitations,
        day.activity.messages,
        day.activity.replies,
    );
}

fn print_summary(
    out: &mut impl Write,
    summary: &SimulationSummary,
    args: &SimulateArgs,
    seconds: f64,
    output: &Path,
) -> anyhow::Result<()> {
    let map = |map: &std::collections::BTreeMap<String, u64>| {
        if map.is_empty() {
            return "none".to_owned();
        }
        map.iter()
            .map(|(key, count)| format!("{key} {count}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    writeln!(
        out,
        "simulated {} days (seed {}, {} accounts) in {seconds:.2} s; files in {}",
        args.days,
        args.seed,
        args.accounts,
        output.display()
    )?;
    writeln!(
        out,
        "leads discovered:       {} ({} searches, {} profiles found)",
        summary.leads_discovered, summary.searches, summary.profiles_found
    )?;
    writeln!(
        out,
        "duplicates skipped:     {}",
        summary.duplicates_skipped
    )?;
    writeln!(out, "classified:             {}", map(&summary.classified))?;
    writeln!(out, "allocated:              {}", summary.allocated)?;
    writeln!(
        out,
        "invitations sent:       {} ({} accepted)",
        summary.invitations_sent, summary.invitations_accepted
    )?;
    writeln!(
        out,
        "messages sent:          {} ({} first, {} follow-ups)",
        summary.messages_sent, summary.first_messages_sent, summary.follow_ups_sent
    )?;
    writeln!(
        out,
        "max per account-day:    {} messages, {} invitations",
        summary.max_messages_per_account_day, summary.max_invitations_per_account_day
    )?;
    writeln!(
        out,
        "minimum gap:            {}",
        summary
            .min_gap_seconds
            .map_or("n/a".to_owned(), |seconds| format!("{seconds} s"))
    )?;
    writeln!(
        out,
        "replies:                {} ({})",
        summary.replies,
        map(&summary.replies_per_intent)
    )?;
    writeln!(out, "qualified:              {}", summary.qualified)?;
    writeln!(out, "follow-ups:             {}", summary.follow_ups_sent)?;
    writeln!(out, "human emails:           {}", summary.human_emails)?;
    writeln!(
        out,
        "LLM:                    {} calls, {} tokens",
        summary.llm_calls, summary.llm_tokens
    )?;
    Ok(())
}

/// The department's settings from `agents.yaml`, with `accounts` sending accounts: the
/// configured ones in their order, then reserves with the configured defaults.
pub fn department_settings(
    agents: &AgentsConfig,
    accounts: u32,
    output: &Path,
) -> anyhow::Result<DepartmentSettings> {
    let zone: Tz = agents
        .timezone
        .parse()
        .map_err(|_| anyhow::anyhow!("timezone {:?} is not an IANA zone", agents.timezone))?;
    let outreach = &agents.outreach;
    let time = |text: &str, key: &str| {
        NaiveTime::parse_from_str(text, "%H:%M")
            .with_context(|| format!("{key} {text:?} is not a time HH:MM"))
    };
    let days: Vec<Weekday> = outreach
        .working_days
        .iter()
        .map(|day| {
            day.parse::<Weekday>()
                .map_err(|_| anyhow::anyhow!("outreach.working_days: {day:?} is not a day"))
        })
        .collect::<anyhow::Result<_>>()?;
    let hours = |time_zone: Tz| -> anyhow::Result<WorkingHours> {
        Ok(WorkingHours {
            time_zone,
            start: time(
                &outreach.working_hours_start,
                "outreach.working_hours_start",
            )?,
            end: time(&outreach.working_hours_end, "outreach.working_hours_end")?,
            days: days.clone(),
        })
    };
    let limits = |time_zone: Tz,
                  daily: Option<u32>,
                  invitations_daily: Option<u32>,
                  invitations_weekly: Option<u32>|
     -> anyhow::Result<AccountLimits> {
        Ok(AccountLimits {
            messages_per_day: daily.unwrap_or(outreach.rate_limit_daily),
            invitations_per_day: invitations_daily.unwrap_or(outreach.invitations_per_day),
            invitations_per_window: invitations_weekly.unwrap_or(outreach.invitations_per_week),
            invitation_window: TimeDelta::days(7),
            min_gap: TimeDelta::minutes(i64::from(outreach.rate_limit_min_interval_minutes)),
            max_gap: TimeDelta::minutes(i64::from(outreach.rate_limit_max_interval_minutes)),
            working_hours: hours(time_zone)?,
        })
    };
    let mut sending = Vec::new();
    for account in outreach.accounts.iter().take(accounts.max(1) as usize) {
        let time_zone = match &account.timezone {
            Some(name) => name
                .parse()
                .map_err(|_| anyhow::anyhow!("account {}: bad timezone {name:?}", account.id))?,
            None => zone,
        };
        sending.push(AccountSettings {
            id: AccountId::parse(&account.id)
                .map_err(|error| anyhow::anyhow!("account id {:?}: {error}", account.id))?,
            limits: limits(
                time_zone,
                account.rate_limit_daily,
                account.invitations_per_day,
                account.invitations_per_week,
            )?,
        });
    }
    let mut reserve = 1;
    while sending.len() < accounts.max(1) as usize {
        let id = format!("reserve-{reserve}");
        reserve += 1;
        if sending.iter().any(|account| account.id.as_str() == id) {
            continue;
        }
        sending.push(AccountSettings {
            id: AccountId::parse(&id).expect("a valid account id"),
            limits: limits(zone, None, None, None)?,
        });
    }

    let mut settings = DepartmentSettings::embedded(
        accounts,
        output.join("outbox"),
        Some(output.join("leads.csv")),
    );
    settings.accounts = sending;
    let schedule = &mut settings.schedule;
    schedule.time_zone = zone;
    schedule.coordination_at = time(
        &agents.sales_manager.coordination_time,
        "sales_manager.coordination_time",
    )?;
    schedule.report_at = time(
        &agents.sales_manager.report_time,
        "sales_manager.report_time",
    )?;
    schedule.outreach_hours = hours(zone)?;
    let schedule_inbox = TimeDelta::hours(i64::from(outreach.response_check_interval_hours.max(1)));
    schedule.inbox_every = schedule_inbox;
    schedule.search_every =
        TimeDelta::hours(i64::from(agents.lead_finder.search_interval_hours.max(1)));
    schedule.monitor_every = TimeDelta::minutes(i64::from(
        agents.sales_manager.coordination_interval_minutes.max(1),
    ));
    // A sheet synced every minute of a simulated month is 43,200 syncs of a file nobody reads
    // meanwhile: in simulated time the Sheet is synced every three hours at most (and once more
    // at the end, by the checks).
    schedule.sheet_sync_every = TimeDelta::seconds(
        i64::try_from(agents.sheet.sync_interval_seconds)
            .unwrap_or(i64::MAX)
            .max(3 * 3600),
    );
    let finder = &agents.lead_finder;
    settings.finder = FinderSettings {
        max_leads_per_day: finder.max_leads_per_day,
        quality_threshold: finder.quality_threshold,
        review_confidence_threshold: finder.review_confidence_threshold,
    };
    settings.search = SearchCriteria {
        positions: finder.position_keywords.clone(),
        industries: finder.industries.clone(),
        company_sizes: finder.company_sizes.clone(),
        // The sandbox matches a location by the words of a profile's own location ("Berlin,
        // Germany"), so a region such as "Europe" would match nobody there: its searches run
        // without the configured locations.
        locations: Vec::new(),
        limit: finder.max_leads_per_day.clamp(1, 1000),
        ..SearchCriteria::default()
    };
    let manager = &agents.sales_manager;
    let mut alerts = MonitorThresholds {
        reply_rate_floor: manager.reply_rate_floor,
        ..MonitorThresholds::default()
    };
    alerts.working_days = days.clone();
    settings.manager = ManagerSettings {
        coordination_time: settings.schedule.coordination_at,
        report_time: settings.schedule.report_at,
        time_zone: zone,
        daily_allocation_min: manager.daily_allocation_min,
        daily_allocation_max: manager.daily_allocation_max,
        speaker_share: manager.speaker_share,
        priority_quality_score: manager.priority_quality_score,
        quality_threshold: finder.quality_threshold,
        review_confidence_threshold: finder.review_confidence_threshold,
        search: settings.search.clone(),
        alerts,
        team_emails: manager.team_emails.clone(),
        message_id_domain: settings.hand_over.message_id_domain.clone(),
        ..ManagerSettings::default()
    };
    settings.outreach = OutreachSettings {
        message_generation_mode: outreach
            .message_generation_mode
            .parse()
            .map_err(|why: String| anyhow::anyhow!("outreach.message_generation_mode: {why}"))?,
        review_confidence_threshold: outreach.draft_confidence_threshold,
        follow_up_days: outreach
            .follow_up_days
            .iter()
            .copied()
            .take(outreach.max_follow_ups as usize)
            .collect(),
        invitation_withdraw_after_days: outreach.invitation_withdraw_days,
        inbox_interval: schedule_inbox,
        hand_over_to: agents.sales_manager.team_emails.join(", "),
        ..OutreachSettings::default()
    };
    settings.hand_over.team = agents
        .sales_manager
        .team_emails
        .iter()
        .map(|email| {
            email
                .parse()
                .with_context(|| format!("sales_manager.team_emails: {email:?}"))
        })
        .collect::<anyhow::Result<_>>()?;
    if settings.hand_over.team.is_empty() {
        bail!("sales_manager.team_emails is empty: hand-overs would have nobody to go to");
    }
    settings.hand_over.from = agents
        .mail
        .from
        .parse()
        .with_context(|| format!("mail.from: {:?} is not a mailbox", agents.mail.from))?;
    Ok(settings)
}
