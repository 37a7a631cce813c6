//! `salesdept serve [--listen ADDR] [--demo]`: the long-running service — the store (migrations
//! applied), the department on the embedded adapters from `config/agents.yaml`, the wall-clock
//! scheduler (the schedule's jobs as tokio-cron-scheduler cron jobs in its time zone) and the HTTP server (the JSON API under `/api`, the dashboard at `/`, `/healthz`,
//! `/readyz`). One line on stdout names the bound address. SIGTERM or Ctrl-C stops it
//! cleanly: no new jobs, the running one finishes, in-flight requests finish, the subscriptions
//! catch up (their checkpoints stored) and give their leases back, the store is closed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{NaiveTime, TimeDelta, Weekday};
use salesdept_agents::clock::{Clock, SystemClock};
use salesdept_agents::department::{
    CronTriggers, Department, DepartmentSettings, Heartbeat, JobKind, Scheduler, WallClockScheduler,
};
use salesdept_agents::sandbox::SandboxNetwork;
use salesdept_events::Store;
use salesdept_events::domain::WorkingHours;
use serde_json::json;
use tokio::sync::watch;

use crate::adapters::{configured_adapters, describe};
use crate::cli::{GlobalArgs, ServeArgs};
use crate::commands::simulate::department_settings;
use crate::config::load_agents;
use crate::database::open_store;
use crate::http::dashboard::DashboardState;
use crate::http::webhooks;
use crate::http::{self, ApiState, ApiTokens, Role, TokenHash};

/// Where the embedded defaults keep their files (the SQLite file, the outbox, the Sheet's CSV).
pub const DATA_DIR: &str = "data";

/// The sandbox network `serve` runs against (the same seed on every start: the same people).
const SANDBOX_SEED: u64 = 1;
const SANDBOX_SIZE: u32 = 20_000;

/// How long the department lease lasts unrenewed: a standby `serve` takes over this long after
/// the active one died (a clean stop hands it over at once).
const DEPARTMENT_LEASE_TTL: Duration = Duration::from_secs(10);

/// The scheduler is stale (not ready) when it has not beaten for this long.
const HEARTBEAT_MAX_AGE: Duration = Duration::from_secs(120);

pub async fn run(global: &GlobalArgs, args: &ServeArgs) -> anyhow::Result<()> {
    // Installed first, so the metrics of the first jobs are recorded.
    let metrics = http::metrics::recorder();
    let agents = load_agents(&global.config)?;
    // Every configuration file is checked before the data directory or the database is
    // touched: a bad llm.yaml must not leave a fresh, migrated database behind.
    crate::commands::classify::check_llm_chains(global)?;
    let data = PathBuf::from(DATA_DIR);
    std::fs::create_dir_all(&data)
        .with_context(|| format!("cannot create the data directory {}", data.display()))?;
    let accounts = u32::try_from(agents.outreach.accounts.len().max(1)).unwrap_or(u32::MAX);
    let mut settings = department_settings(&agents, accounts, &data)?;
    // On the wall clock the Sheet is synced as configured (simulate stretches it).
    settings.schedule.sheet_sync_every =
        TimeDelta::seconds(i64::try_from(agents.sheet.sync_interval_seconds.max(1)).unwrap_or(60));
    if args.demo {
        demo_schedule(&mut settings);
    }
    // Several `serve` processes may share one database (a rolling deploy, a standby): the one
    // holding the department lease runs the schedule and the subscriptions, the others serve
    // HTTP and stand by to take over.
    settings.active_lease = Some(DEPARTMENT_LEASE_TTL);
    let mut tokens = ApiTokens::from_config(&agents.api);
    if tokens.is_empty() && args.demo {
        let path = data.join("demo-api-token");
        let token = demo_token(&path)?;
        tokens = tokens.with("demo", Role::Operator, TokenHash::of(&token));
        println!(
            "demo API token (operator) in {}: curl -H \"Authorization: Bearer $(cat {})\" …",
            path.display(),
            path.display()
        );
    }

    let accounts: Vec<_> = settings
        .accounts
        .iter()
        .map(|account| (account.id.clone(), account.limits.clone()))
        .collect();
    let store = open_store(global).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let network = Arc::new(SandboxNetwork::generate(SANDBOX_SEED, SANDBOX_SIZE));
    let adapters =
        configured_adapters(global, &agents, &settings, &store, Arc::clone(&clock)).await?;
    let outside = describe(&agents, &adapters);
    let department = Arc::new(
        Department::with_adapters(
            store.clone(),
            Arc::clone(&clock),
            network,
            settings,
            adapters,
        )
        .await
        .context("cannot set up the department")?,
    );
    let schedule = department.schedule();
    let cron = CronTriggers::start(&schedule)
        .await
        .context("cannot start the cron scheduler")?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut scheduler = WallClockScheduler::new(Arc::clone(&clock), stop_rx)
        .cron(cron)
        .wake_on(salesdept_events::EventStore::wake_ups(&store));
    if args.demo {
        scheduler = scheduler.run_at_start([JobKind::ScheduledSearch, JobKind::Coordination]);
    }
    let heartbeat = scheduler.heartbeat();

    let api = ApiState::new(store.clone(), Arc::clone(&clock), tokens)
        .with_review_confidence_threshold(agents.lead_finder.review_confidence_threshold);
    let dashboard = DashboardState::new(api.clone())
        .with_accounts(accounts)
        .with_heartbeat(heartbeat.clone())
        .with_agent_heartbeats({
            let department = Arc::clone(&department);
            Arc::new(move || department.agent_heartbeats())
        });
    let app = http::router(api)
        .merge(http::dashboard::router(dashboard))
        .merge(operations_router(OpsState {
            store: store.clone(),
            heartbeat,
            department: Arc::clone(&department),
            clock: Arc::clone(&clock),
        }))
        .merge(webhooks::router(
            agents.linkedin.webhook_secret.clone(),
            scheduler.inbox_trigger(),
            Arc::clone(&clock),
        ))
        .merge(http::metrics::router(store.clone(), metrics));
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "salesdept serving on http://{address}")?;
        stdout.flush()?;
    }
    tracing::info!(%address, backend = store.backend(), demo = args.demo, %outside, "serving");

    let runner = Arc::clone(&department);
    let jobs = tokio::spawn(async move { scheduler.run(&schedule, runner.as_ref()).await });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("stopping: no new jobs, finishing the running one");
            let _ = stop_tx.send(true);
        })
        .await
        .context("the HTTP server failed");
    let report = jobs.await.context("the scheduler panicked")?;
    let finished = async {
        // A standby leaves the subscriptions to the process running the schedule.
        if department
            .is_active()
            .await
            .context("cannot read the department lease")?
        {
            department
                .catch_up_all()
                .await
                .context("cannot catch the subscriptions up")?;
        }
        department
            .release()
            .await
            .context("cannot release the leases")
    }
    .await;
    store.close().await;
    served?;
    let report = report?;
    tracing::info!(jobs = ?report.jobs, "stopped");
    finished
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// The demo: Outreach and the inbox every minute around the clock, every day (the first search
/// and coordination run at the start, so leads are there within seconds).
fn demo_schedule(settings: &mut DepartmentSettings) {
    let all_day = |time_zone| WorkingHours {
        time_zone,
        start: NaiveTime::MIN,
        end: NaiveTime::from_hms_opt(23, 59, 59).expect("a valid time"),
        days: vec![
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ],
    };
    let schedule = &mut settings.schedule;
    schedule.outreach_hours = all_day(schedule.time_zone);
    schedule.outreach_every = TimeDelta::minutes(1);
    schedule.inbox_every = TimeDelta::minutes(1);
    schedule.monitor_every = TimeDelta::minutes(5);
    schedule.sheet_sync_every = TimeDelta::minutes(1);
    settings.outreach.inbox_interval = TimeDelta::minutes(1);
    for account in &mut settings.accounts {
        account.limits.working_hours = all_day(account.limits.working_hours.time_zone);
    }
}

/// The demo's API token: kept in `path` (mode 0600), generated on first use.
fn demo_token(path: &Path) -> anyhow::Result<String> {
    if let Ok(text) = std::fs::read_to_string(path)
        && text.trim().len() >= http::auth::MIN_TOKEN_CHARS
    {
        return Ok(text.trim().to_owned());
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write the demo token to {}", path.display()))?;
    file.write_all(token.as_bytes())?;
    Ok(token)
}

#[derive(Clone)]
struct OpsState {
    store: Store,
    heartbeat: Heartbeat,
    department: Arc<Department>,
    clock: Arc<dyn Clock>,
}

/// `/healthz` and `/readyz`.
fn operations_router(state: OpsState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// 200 when the store answers, every migration is applied, the scheduler's heartbeat is fresh
/// and so is every agent's that is not paused (an agent fed by a subscription beats on every
/// catch-up, the Sales Manager on every job; it may be silent for twice its monitoring
/// interval); 503 with the reason otherwise.
async fn readyz(State(state): State<OpsState>) -> Response {
    let migrations = match migrations_current(&state.store).await {
        Ok(missing) => missing,
        Err(error) => {
            tracing::warn!(%error, "readiness: the store does not answer");
            return not_ready("the event store does not answer");
        }
    };
    if !migrations.is_empty() {
        return not_ready(&format!("migrations not applied: {migrations:?}"));
    }
    let beat = state.heartbeat.state();
    let now = state.clock.now();
    let Some(beat_at) = beat.beat_at else {
        return not_ready("the scheduler has not started yet");
    };
    let age = (now - beat_at).to_std().unwrap_or(Duration::ZERO);
    if age > HEARTBEAT_MAX_AGE {
        return not_ready(&format!(
            "the scheduler's heartbeat is {} s old",
            age.as_secs()
        ));
    }
    if let Some(error) = &beat.catch_up_error {
        tracing::warn!(%error, "readiness: the subscriptions cannot catch up");
        return not_ready("the subscriptions cannot catch up with the log");
    }
    let paused = match state.department.paused_agents().await {
        Ok(paused) => paused,
        Err(error) => {
            tracing::warn!(%error, "readiness: the department stream cannot be read");
            return not_ready("the event store does not answer");
        }
    };
    let mut agents = serde_json::Map::new();
    for agent in state.department.agent_heartbeats() {
        let age = (now - agent.beat_at).to_std().unwrap_or(Duration::ZERO);
        let allowed = HEARTBEAT_MAX_AGE.max(agent.works_every * 2);
        let is_paused = paused.contains(agent.agent);
        // A paused agent is silent on purpose.
        if age > allowed && !is_paused {
            return not_ready(&format!(
                "the {} agent's heartbeat is {} s old (allowed {} s)",
                agent.agent,
                age.as_secs(),
                allowed.as_secs()
            ));
        }
        agents.insert(
            agent.agent.to_owned(),
            json!({"heartbeat_at": agent.beat_at, "age_seconds": age.as_secs(), "paused": is_paused}),
        );
    }
    let last_job = beat
        .last_job
        .map(|(job, at, failed)| json!({"job": job.as_str(), "at": at, "failed": failed}));
    (
        StatusCode::OK,
        axum::Json(json!({
            "status": "ready",
            "backend": state.store.backend(),
            // Of several processes on one database, the one running the schedule is "active";
            // the others serve HTTP and stand by.
            "role": match state.department.holds_department_lease() {
                Some(false) => "standby",
                Some(true) | None => "active",
            },
            "heartbeat_at": beat_at,
            "agents": agents,
            "last_job": last_job,
            "jobs": beat.jobs.iter().map(|(job, count)| (job.as_str(), *count)).collect::<std::collections::BTreeMap<_, _>>(),
            "job_failures": beat.failures.iter().map(|(job, count)| (job.as_str(), *count)).collect::<std::collections::BTreeMap<_, _>>(),
        })),
    )
        .into_response()
}

fn not_ready(reason: &str) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({"status": "not ready", "reason": reason})),
    )
        .into_response()
}

/// The versions of the backend's migrations that the store has not applied.
async fn migrations_current(store: &Store) -> Result<Vec<i64>, sqlx::Error> {
    let query = "SELECT version FROM _sqlx_migrations WHERE success";
    let (applied, migrator): (Vec<i64>, sqlx::migrate::Migrator) = match store {
        Store::Postgres(store) => (
            sqlx::query_scalar(query).fetch_all(store.pool()).await?,
            sqlx::migrate!("../../migrations/postgres"),
        ),
        Store::Sqlite(store) => (
            sqlx::query_scalar(query)
                .fetch_all(store.read_pool())
                .await?,
            sqlx::migrate!("../../migrations/sqlite"),
        ),
    };
    Ok(migrator
        .iter()
        .map(|migration| migration.version)
        .filter(|version| !applied.contains(version))
        .collect())
}
