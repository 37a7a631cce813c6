//! The whole department: the real agents and adapters wired together, a schedule of their jobs
//! and a scheduler that runs them.
//!
//! - [`schedule`]: the timetable ([`Schedule`], [`JobKind`], [`Recurrence`]).
//! - [`driver`]: the [`Scheduler`] port, the [`JobRunner`] the department is, and the
//!   discrete-event [`SimulatedDriver`] behind `salesdept simulate`.
//! - [`Department`]: the Lead Finder, Outreach and the Sales Manager on one store, with the
//!   subscriptions that feed them and the projections (lead table, reports, the Sheet's CSV).
//! - [`wall_clock`]: the [`WallClockScheduler`] behind `salesdept serve`, fed by
//!   [`cron`]'s tokio-cron-scheduler jobs.
//! - [`summary`]: what a run did, computed from the event log alone.
//! - [`checks`]: the invariants a run must keep, checked from the event log alone.

pub mod checks;
pub mod cron;
pub mod driver;
pub mod schedule;
pub mod summary;
pub mod wall_clock;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use salesdept_events::domain::search::SearchCriteria;
use salesdept_events::domain::{AccountId, AccountLimits, DEPARTMENT_STREAM};
use salesdept_events::{
    EventStore, Handler, Lease, Store, StoreError, Subscription, SubscriptionError,
    SubscriptionOptions,
};
use salesdept_projections::leads::LeadTableHandler;
use salesdept_projections::reports::ReportsProjection;
use salesdept_projections::sheet::{CsvFileSink, SheetSink, SheetSync};
use tracing::Instrument as _;

pub use cron::{CronError, CronTriggers};
pub use driver::{
    Activity, DayDone, DriverError, DriverReport, JobError, JobOutcome, JobRunner, Scheduler,
    SimulatedDriver,
};
pub use schedule::{JobKind, Recurrence, Schedule, ScheduleSettings, ScheduledJob};
pub use wall_clock::{Heartbeat, HeartbeatState, JobRetry, WallClockScheduler};

use crate::clock::Clock;
use crate::lead_finder::handler::{LEAD_FINDER_SUBSCRIPTION, LeadFinderHandler, ScheduledSearch};
use crate::lead_finder::{FinderSettings, LeadFinder};
use crate::linkedin::LinkedInPort;
use crate::llm::{
    AgentName, LlmAnswer, LlmError, LlmPort, LlmRouter, LlmTask, RulesOnly, StructuredAnswer,
};
use crate::mail::{FileOutbox, MailPort, Mailbox};
use crate::manager::{ManagerSettings, SalesManager};
use crate::outreach::{
    HandOver, HandOverConfig, HandOverHandler, OUTREACH_SUBSCRIPTION, OutreachAgent,
    OutreachSettings, SendingAccount,
};
use crate::sandbox::{SandboxLinkedIn, SandboxNetwork};

/// The subscription the hand-over mails run under.
pub const HAND_OVER_SUBSCRIPTION: &str = "hand_over";

/// One sending account: its id and limits (in priority order in [`DepartmentSettings`]).
#[derive(Clone, Debug, PartialEq)]
pub struct AccountSettings {
    pub id: AccountId,
    pub limits: AccountLimits,
}

/// Everything the department is built from (the server maps its configuration onto this).
#[derive(Clone, Debug)]
pub struct DepartmentSettings {
    /// Sending accounts in priority order: the first is the primary, the others reserves.
    pub accounts: Vec<AccountSettings>,
    pub schedule: ScheduleSettings,
    pub finder: FinderSettings,
    /// What the Lead Finder searches for on its own schedule.
    pub search: SearchCriteria,
    pub outreach: OutreachSettings,
    pub manager: ManagerSettings,
    /// Who hand-over mails come from and go to.
    pub hand_over: HandOverConfig,
    /// Where mails are written (the file outbox, the embedded default).
    pub outbox_dir: PathBuf,
    /// The Sheet's CSV file, synced on the schedule; None leaves the Sheet out.
    pub sheet_csv: Option<PathBuf>,
    /// Tuning of every subscription. The lease is short so a department restarted after a crash
    /// takes the subscriptions over within seconds.
    pub subscription: SubscriptionOptions,
    /// When set, the department works (runs jobs, catches its subscriptions up) only while it
    /// holds the [`DEPARTMENT_LEASE`] lasting this long, and stands by otherwise: what `serve`
    /// sets, so that of several processes on one database exactly one runs the schedule. None
    /// (the embedded default, `simulate`, the tests): always at work.
    pub active_lease: Option<Duration>,
}

impl DepartmentSettings {
    /// The embedded defaults with `accounts` sending accounts named `primary`, `reserve-1`, …
    pub fn embedded(accounts: u32, outbox_dir: PathBuf, sheet_csv: Option<PathBuf>) -> Self {
        let accounts = (0..accounts.max(1))
            .map(|index| AccountSettings {
                id: AccountId::parse(&if index == 0 {
                    "primary".to_owned()
                } else {
                    format!("reserve-{index}")
                })
                .expect("a valid account id"),
                limits: AccountLimits::default(),
            })
            .collect();
        Self {
            accounts,
            schedule: ScheduleSettings::default(),
            finder: FinderSettings::default(),
            search: default_search(),
            outreach: OutreachSettings::default(),
            manager: ManagerSettings {
                search: default_search(),
                ..ManagerSettings::default()
            },
            hand_over: HandOverConfig {
                from: "salesdept <salesdept@localhost>"
                    .parse()
                    .expect("a valid mailbox"),
                team: vec!["sales-team@localhost".parse().expect("a valid mailbox")],
                message_id_domain: "salesdept.localhost".into(),
            },
            outbox_dir,
            sheet_csv,
            subscription: SubscriptionOptions {
                lease_ttl: Duration::from_secs(3),
                initial_backoff: Duration::from_millis(20),
                max_backoff: Duration::from_millis(500),
                ..SubscriptionOptions::default()
            },
            active_lease: None,
        }
    }
}

/// The lease a department holds while it runs the schedule (see
/// [`DepartmentSettings::active_lease`]).
pub const DEPARTMENT_LEASE: &str = "department";

/// The seed's search strategy: founders, CTOs, engineering and developer-marketing leaders.
pub fn default_search() -> SearchCriteria {
    SearchCriteria {
        positions: [
            "CTO",
            "Founder",
            "VP Engineering",
            "Head of Developer Marketing",
            "Developer Relations",
            "Partnerships",
        ]
        .map(String::from)
        .to_vec(),
        limit: 100,
        ..SearchCriteria::default()
    }
}

/// A hook that wraps each account's LinkedIn adapter (tests use it to crash mid-send).
pub type LinkedInWrapper =
    Arc<dyn Fn(&AccountId, Arc<dyn LinkedInPort>) -> Arc<dyn LinkedInPort> + Send + Sync>;

/// The outside world the department talks to, where it is not the embedded default. Each part
/// left empty keeps its default: the sandbox network, the rules, the file outbox, the CSV Sheet.
#[derive(Clone, Default)]
pub struct Adapters {
    /// Each sending account's LinkedIn adapter; an account not listed uses the sandbox.
    pub linkedin: Vec<(AccountId, Arc<dyn LinkedInPort>)>,
    /// The configured LLM chains (agents without a chain use the rules).
    pub llm: Option<Arc<LlmRouter>>,
    pub mail: Option<Arc<dyn MailPort>>,
    /// The Sheet, instead of the CSV file of [`DepartmentSettings::sheet_csv`].
    pub sheet: Option<Arc<dyn SheetSink>>,
}

impl std::fmt::Debug for Adapters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adapters")
            .field(
                "linkedin",
                &self.linkedin.iter().map(|(id, _)| id).collect::<Vec<_>>(),
            )
            .field("llm", &self.llm.is_some())
            .field("mail", &self.mail.is_some())
            .field("sheet", &self.sheet.as_ref().map(|sheet| sheet.target()))
            .finish()
    }
}

/// The department's LLM port: the rules, or the configured router.
#[derive(Debug)]
pub enum DepartmentLlm {
    Rules(RulesOnly),
    Router(Arc<LlmRouter>),
}

impl LlmPort for DepartmentLlm {
    async fn complete<T, F>(
        &self,
        agent: AgentName,
        task: &LlmTask,
        fallback: F,
    ) -> Result<LlmAnswer<T>, LlmError>
    where
        T: StructuredAnswer,
        F: FnOnce() -> T + Send,
    {
        match self {
            Self::Rules(rules) => rules.complete(agent, task, fallback).await,
            Self::Router(router) => router.complete(agent, task, fallback).await,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DepartmentError {
    #[error("the department needs at least one sending account")]
    NoAccounts,
    #[error("cannot open the mail outbox: {0}")]
    Outbox(#[from] crate::mail::MailError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Subscription(#[from] SubscriptionError),
    #[error("the subscriptions did not reach the head of the log within {0:?}")]
    CatchUpTimeout(Duration),
    #[error("the department lease was lost while working: another process may have taken over")]
    LeaseLost,
}

/// The department: agents, adapters and subscriptions on one store.
pub struct Department {
    store: Arc<Store>,
    clock: Arc<dyn Clock>,
    network: Arc<SandboxNetwork>,
    settings: DepartmentSettings,
    outreach: Arc<OutreachAgent<Store, DepartmentLlm>>,
    manager: SalesManager<Store, DepartmentLlm>,
    scheduled_search: ScheduledSearch,
    sheet: Option<SheetSync>,
    subscriptions: Vec<Subscription>,
    /// The department lease, when the department works only while holding it.
    active: Option<Lease>,
    /// Whether it held the lease at the last look (to log the changes).
    was_active: std::sync::atomic::AtomicBool,
    leads_found: Arc<AtomicU64>,
    /// What the log looked like when every subscription last reached its head (embedded store
    /// only): while it looks the same, a catch-up has nothing to do.
    caught_up_at: std::sync::Mutex<Option<LogMark>>,
    /// The paused agents as last read, and the department stream's version read up to.
    last_paused: std::sync::Mutex<(std::collections::BTreeSet<String>, i64)>,
    /// When each agent last finished work: a job, or a catch-up of its subscriptions.
    heartbeats: std::sync::Mutex<std::collections::BTreeMap<&'static str, DateTime<Utc>>>,
}

/// One agent's liveness, for readiness checks and the dashboard.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentHeartbeat {
    /// `lead_finder`, `outreach`, `sales_manager` or `projections`.
    pub agent: &'static str,
    /// When it last finished work (the department's start before its first).
    pub beat_at: DateTime<Utc>,
    /// How often it works on its own: zero for agents fed by a subscription (they follow the
    /// log on every tick), the monitoring interval for the Sales Manager.
    pub works_every: Duration,
}

/// The agent a subscription feeds.
fn subscription_agent(name: &str) -> &'static str {
    match name {
        LEAD_FINDER_SUBSCRIPTION => "lead_finder",
        OUTREACH_SUBSCRIPTION | HAND_OVER_SUBSCRIPTION => "outreach",
        _ => "projections",
    }
}

impl Department {
    /// Wires the department on the embedded adapters: the sandbox network (one
    /// [`SandboxLinkedIn`] per account), the rules instead of an LLM, the file outbox, the CSV
    /// Sheet.
    pub async fn new(
        store: Store,
        clock: Arc<dyn Clock>,
        network: Arc<SandboxNetwork>,
        settings: DepartmentSettings,
    ) -> Result<Self, DepartmentError> {
        Self::with_linkedin(store, clock, network, settings, None).await
    }

    /// As [`Department::new`], with each account's adapter passed through `wrap`.
    pub async fn with_linkedin(
        store: Store,
        clock: Arc<dyn Clock>,
        network: Arc<SandboxNetwork>,
        settings: DepartmentSettings,
        wrap: Option<LinkedInWrapper>,
    ) -> Result<Self, DepartmentError> {
        Self::assemble(store, clock, network, settings, Adapters::default(), wrap).await
    }

    /// As [`Department::new`], on `adapters` where they are given (what `serve` runs with a
    /// production configuration).
    pub async fn with_adapters(
        store: Store,
        clock: Arc<dyn Clock>,
        network: Arc<SandboxNetwork>,
        settings: DepartmentSettings,
        adapters: Adapters,
    ) -> Result<Self, DepartmentError> {
        Self::assemble(store, clock, network, settings, adapters, None).await
    }

    async fn assemble(
        store: Store,
        clock: Arc<dyn Clock>,
        network: Arc<SandboxNetwork>,
        settings: DepartmentSettings,
        adapters: Adapters,
        wrap: Option<LinkedInWrapper>,
    ) -> Result<Self, DepartmentError> {
        if settings.accounts.is_empty() {
            return Err(DepartmentError::NoAccounts);
        }
        let store = Arc::new(store);
        let accounts: Vec<SendingAccount> = settings
            .accounts
            .iter()
            .map(|account| {
                let configured = adapters
                    .linkedin
                    .iter()
                    .find(|(id, _)| *id == account.id)
                    .map(|(_, port)| Arc::clone(port));
                let port: Arc<dyn LinkedInPort> = configured.unwrap_or_else(|| {
                    Arc::new(SandboxLinkedIn::new(
                        Arc::clone(&network),
                        Arc::clone(&clock),
                        account.id.to_string(),
                    ))
                });
                let linkedin = match &wrap {
                    Some(wrap) => wrap(&account.id, port),
                    None => port,
                };
                SendingAccount {
                    id: account.id.clone(),
                    limits: account.limits.clone(),
                    linkedin,
                }
            })
            .collect();
        let llm = Arc::new(match &adapters.llm {
            Some(router) => DepartmentLlm::Router(Arc::clone(router)),
            None => DepartmentLlm::Rules(RulesOnly),
        });
        // The Lead Finder searches through the primary account's adapter.
        let finder = Arc::new(LeadFinder::new(
            Arc::clone(&store),
            Arc::clone(&accounts[0].linkedin),
            Arc::clone(&llm),
            Arc::clone(&clock),
            settings.finder.clone(),
        ));
        let leads_found = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&leads_found);
        let finder_handler = LeadFinderHandler::new(finder).on_outcome(move |outcome| {
            counter.fetch_add(outcome.leads.len() as u64, Ordering::Relaxed);
        });
        let outreach = Arc::new(OutreachAgent::new(
            Arc::clone(&store),
            Arc::clone(&clock),
            Arc::clone(&llm),
            accounts.clone(),
            settings.outreach.clone(),
        ));
        let mail: Arc<dyn MailPort> = match &adapters.mail {
            Some(mail) => Arc::clone(mail),
            None => {
                Arc::new(FileOutbox::open(&settings.outbox_dir, Duration::from_secs(10)).await?)
            }
        };
        let manager = SalesManager::new(
            Arc::clone(&store),
            Arc::clone(&clock),
            Arc::clone(&llm),
            Arc::clone(&mail),
            settings
                .accounts
                .iter()
                .map(|account| (account.id.clone(), account.limits.clone()))
                .collect(),
            settings.manager.clone(),
        );
        let hand_over = HandOverHandler::new(HandOver::new(
            Arc::clone(&store),
            Arc::clone(&mail),
            settings.hand_over.clone(),
        ));
        let scheduled_search = ScheduledSearch::new(
            Arc::clone(&store),
            Arc::clone(&clock),
            settings.search.clone(),
            settings.schedule.search_every,
        );
        let sheet_sink = adapters.sheet.clone().or_else(|| {
            settings
                .sheet_csv
                .as_ref()
                .map(|path| Arc::new(CsvFileSink::new(path.clone())) as Arc<dyn SheetSink>)
        });
        let sheet = sheet_sink.map(|sink| SheetSync::new(store.as_ref().clone(), sink));
        let subscription = |name: &str, handler: Arc<dyn Handler>| {
            Subscription::new(name, store.as_ref().clone(), handler)
                .with_options(settings.subscription.clone())
        };
        // Agents first (their appends feed the projections in the same round), projections
        // last.
        let subscriptions = vec![
            subscription(LEAD_FINDER_SUBSCRIPTION, Arc::new(finder_handler)),
            subscription(OUTREACH_SUBSCRIPTION, outreach.handler()),
            subscription(HAND_OVER_SUBSCRIPTION, Arc::new(hand_over)),
            subscription(
                salesdept_projections::leads::SUBSCRIPTION_NAME,
                Arc::new(LeadTableHandler::new()),
            ),
            subscription(
                salesdept_projections::reports::SUBSCRIPTION,
                Arc::new(ReportsProjection),
            ),
        ];
        let active = settings
            .active_lease
            .map(|ttl| Lease::new(store.as_ref().clone(), DEPARTMENT_LEASE, ttl));
        let started = clock.now();
        Ok(Self {
            last_paused: std::sync::Mutex::default(),
            store,
            clock,
            network,
            settings,
            outreach,
            manager,
            scheduled_search,
            sheet,
            subscriptions,
            active,
            was_active: std::sync::atomic::AtomicBool::new(false),
            leads_found,
            caught_up_at: std::sync::Mutex::default(),
            heartbeats: std::sync::Mutex::new(
                ["lead_finder", "outreach", "sales_manager", "projections"]
                    .into_iter()
                    .map(|agent| (agent, started))
                    .collect(),
            ),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Today in the department's time zone.
    fn today(&self) -> chrono::NaiveDate {
        self.clock
            .now()
            .with_timezone(&self.settings.schedule.time_zone)
            .date_naive()
    }

    /// The department's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn settings(&self) -> &DepartmentSettings {
        &self.settings
    }

    pub fn schedule(&self) -> Schedule {
        Schedule::new(&self.settings.schedule)
    }

    /// The limits of every account, for the checks.
    pub fn account_limits(&self) -> Vec<(AccountId, AccountLimits)> {
        self.settings
            .accounts
            .iter()
            .map(|account| (account.id.clone(), account.limits.clone()))
            .collect()
    }

    /// The team's mailboxes.
    pub fn team(&self) -> &[Mailbox] {
        &self.settings.hand_over.team
    }

    /// Runs every subscription until none has anything left and (on PostgreSQL, whose
    /// whole-log horizon is cluster-wide) every one has reached the head of the log.
    ///
    /// On SQLite a catch-up is skipped while the log's head (and the dead letters waiting for a
    /// retry) are where the last complete catch-up left them: SQLite serialises writers, so no
    /// event can appear below the head later. PostgreSQL always catches up (a transaction that
    /// took a lower position may still commit).
    pub async fn catch_up_all(&self) -> Result<(), DepartmentError> {
        let mark = log_mark(&self.store).await?;
        if mark.is_some() && *self.caught_up_mark() == mark {
            // Nothing new: every running agent is as caught up as a pass would leave it (and
            // the paused ones are those the last pass read, the log being unchanged).
            let paused = self
                .last_paused
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .0
                .clone();
            for subscription in &self.subscriptions {
                let agent = subscription_agent(subscription.name());
                if !paused.contains(agent) {
                    self.beat(agent);
                }
            }
            return Ok(());
        }
        // The head every subscription was seen to reach, not a fresh read: an event appended
        // after that check must not be taken as handled.
        let reached = self.catch_up_subscriptions().await?;
        *self.caught_up_mark() = mark.map(|mark| LogMark {
            head: reached,
            ..mark
        });
        Ok(())
    }

    fn caught_up_mark(&self) -> std::sync::MutexGuard<'_, Option<LogMark>> {
        self.caught_up_at
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Returns the head of the log that every subscription reached.
    async fn catch_up_subscriptions(&self) -> Result<Option<i64>, DepartmentError> {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let paused = self.paused_agents().await?;
        loop {
            let mut handled = 0;
            let mut lowest: Option<i64> = None;
            for subscription in &self.subscriptions {
                // A paused agent's events wait in the log until it is resumed.
                if paused.contains(subscription_agent(subscription.name())) {
                    continue;
                }
                let pass = self.catch_up_one(subscription, deadline).await?;
                handled += pass.handled + pass.parked;
                let position = pass.checkpoint.global_position;
                lowest = Some(lowest.map_or(position, |low| low.min(position)));
            }
            if handled > 0 {
                continue;
            }
            let head = head_position(&self.store).await?;
            if head.is_none_or(|head| lowest.unwrap_or(0) >= head) {
                return Ok(head);
            }
            if std::time::Instant::now() > deadline {
                return Err(DepartmentError::CatchUpTimeout(Duration::from_secs(60)));
            }
            // Another transaction on the server holds the horizon back for a moment.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// One subscription's catch-up, waiting (boundedly) for a crashed predecessor's lease.
    async fn catch_up_one(
        &self,
        subscription: &Subscription,
        deadline: std::time::Instant,
    ) -> Result<salesdept_events::subscription::CatchUp, DepartmentError> {
        loop {
            match subscription.catch_up().await {
                Ok(pass) => {
                    self.beat(subscription_agent(subscription.name()));
                    return Ok(pass);
                }
                Err(SubscriptionError::LeaseHeld { .. } | SubscriptionError::LeaseLost { .. })
                    if std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// The agents a person paused (`agent_paused` without a later `agent_resumed`).
    pub async fn paused_agents(&self) -> Result<std::collections::BTreeSet<String>, StoreError> {
        // Only the department stream's new events are read, and only the pause events of
        // them folded (the stream's whole state, with a month of coordination records, is far
        // larger than this set and this runs before every job).
        let (mut paused, read_to) = self
            .last_paused
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        let events = self
            .store
            .read_stream(DEPARTMENT_STREAM, read_to + 1, None)
            .await?;
        let Some(last) = events.last() else {
            return Ok(paused);
        };
        let last_version = last.stream_version;
        for event in &events {
            let agent = event.data.get("agent").and_then(serde_json::Value::as_str);
            match (event.event_type.as_str(), agent) {
                ("agent_paused", Some(agent)) => {
                    paused.insert(agent.to_owned());
                }
                ("agent_resumed", Some(agent)) => {
                    paused.remove(agent);
                }
                _ => {}
            }
        }
        *self
            .last_paused
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = (paused.clone(), last_version);
        Ok(paused)
    }

    fn beat(&self, agent: &'static str) {
        let now = self.clock.now();
        self.heartbeats
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(agent, now);
    }

    /// Every agent's heartbeat.
    pub fn agent_heartbeats(&self) -> Vec<AgentHeartbeat> {
        let beats = self
            .heartbeats
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone();
        beats
            .into_iter()
            .map(|(agent, beat_at)| AgentHeartbeat {
                agent,
                beat_at,
                works_every: match agent {
                    "sales_manager" => self
                        .settings
                        .schedule
                        .monitor_every
                        .to_std()
                        .unwrap_or_default(),
                    _ => Duration::ZERO,
                },
            })
            .collect()
    }

    /// Gives every subscription's lease back, then the department lease (a clean stop; a crash
    /// lets them expire).
    pub async fn release(&self) -> Result<(), DepartmentError> {
        for subscription in &self.subscriptions {
            subscription.release_lease().await?;
        }
        if let Some(lease) = &self.active {
            lease.release().await?;
        }
        Ok(())
    }

    /// Whether this department may work now: always without a department lease; with one,
    /// while it holds it (taking it when it is free or expired).
    pub async fn is_active(&self) -> Result<bool, StoreError> {
        let Some(lease) = &self.active else {
            return Ok(true);
        };
        let held = lease.hold().await?;
        if self.was_active.swap(held, Ordering::Relaxed) != held {
            if held {
                tracing::info!(
                    owner = lease.owner(),
                    "took the department lease: running the schedule"
                );
            } else {
                tracing::info!(
                    owner = lease.owner(),
                    "another process holds the department lease: standing by"
                );
            }
        }
        Ok(held)
    }

    /// Runs `work` while the department lease stays held, renewing it meanwhile (a job may last
    /// longer than the lease). Once the lease may have passed to another process — taken by it,
    /// or not renewed within its lifetime because the store cannot be reached — the work is
    /// dropped where it is, as a crash would stop it: every step of it is safe to stop between
    /// (the send path reconciles with the provider before sending again).
    async fn while_active<T, E>(
        &self,
        work: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, JobError>
    where
        E: Into<JobError>,
    {
        let Some(lease) = &self.active else {
            return work.await.map_err(Into::into);
        };
        // The renewal is polled alongside the work, never instead of it: on SQLite the renewal
        // waits for the one write connection, which the work may hold mid-transaction.
        let renewal = async {
            let mut check = tokio::time::interval(lease.ttl() / 6);
            check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                check.tick().await;
                match lease.hold().await {
                    Ok(true) => {}
                    Ok(false) => return DepartmentError::LeaseLost,
                    Err(error) if lease.surely_held() => {
                        tracing::warn!(%error, "cannot renew the department lease; still held");
                    }
                    Err(error) => {
                        tracing::error!(%error, "cannot renew the department lease: stopping the work");
                        return DepartmentError::LeaseLost;
                    }
                }
            }
        };
        tokio::select! {
            result = work => result.map_err(Into::into),
            lost = renewal => Err(lost.into()),
        }
    }

    /// Whether this department held the department lease at its last look: None when it works
    /// without one (always active), else its role as `/readyz` reports it, with no round trip.
    pub fn holds_department_lease(&self) -> Option<bool> {
        self.active
            .as_ref()
            .map(|_| self.was_active.load(Ordering::Relaxed))
    }

    /// A standby department's agents are idle on purpose, like paused ones: they count as alive.
    fn beat_standby(&self) {
        for agent in ["lead_finder", "outreach", "sales_manager", "projections"] {
            self.beat(agent);
        }
    }
}

/// The embedded log's head and the number of dead letters marked for a retry (see
/// [`Department::catch_up_all`]); None on PostgreSQL.
#[derive(Clone, Copy, Debug, PartialEq)]
struct LogMark {
    head: Option<i64>,
    retries_requested: i64,
}

async fn log_mark(store: &Store) -> Result<Option<LogMark>, StoreError> {
    let Store::Sqlite(store) = store else {
        return Ok(None);
    };
    let (head, retries_requested) = sqlx::query_as(
        "SELECT (SELECT max(global_position) FROM events), \
         (SELECT count(*) FROM dead_letters WHERE retry_requested_at IS NOT NULL \
          AND resolved_at IS NULL)",
    )
    .fetch_one(store.read_pool())
    .await?;
    Ok(Some(LogMark {
        head,
        retries_requested,
    }))
}

/// The highest global position in the log (None when it is empty).
async fn head_position(store: &Store) -> Result<Option<i64>, StoreError> {
    Ok(match store {
        Store::Postgres(store) => {
            sqlx::query_scalar("SELECT max(global_position) FROM events")
                .fetch_one(store.pool())
                .await?
        }
        Store::Sqlite(store) => {
            sqlx::query_scalar("SELECT max(global_position) FROM events")
                .fetch_one(store.read_pool())
                .await?
        }
    })
}

#[async_trait]
impl JobRunner for Department {
    async fn run_job(&self, job: JobKind) -> Result<JobOutcome, JobError> {
        let agent = job_agent(job);
        if !self.is_active().await? {
            tracing::debug!(%job, "skipped: another process runs the schedule");
            self.beat_standby();
            return Ok(JobOutcome::default());
        }
        if self.paused_agents().await?.contains(agent) {
            tracing::info!(%job, agent, "skipped: the agent is paused");
            return Ok(JobOutcome::default());
        }
        let started = std::time::Instant::now();
        // Each job is a trace of its own; the commands it runs on a lead continue the lead's
        // trace and link back to this span.
        let span = tracing::info_span!("job", job = job.as_str(), agent);
        let result = self
            .while_active(self.run_job_unmeasured(job).instrument(span))
            .await;
        if result.is_ok() {
            // The Sheet is a projection.
            self.beat(match job_agent(job) {
                "sheet" => "projections",
                agent => agent,
            });
        }
        let labels = [("agent", agent), ("job", job.as_str())];
        metrics::counter!("salesdept_agent_operations_total", &labels).increment(1);
        metrics::histogram!("salesdept_agent_operation_seconds", &labels)
            .record(started.elapsed().as_secs_f64());
        match &result {
            Ok(outcome) => {
                metrics::counter!("salesdept_agent_failures_total", &labels)
                    .increment(outcome.activity.failures);
            }
            Err(_) => metrics::counter!("salesdept_agent_failures_total", &labels).increment(1),
        }
        result
    }

    async fn catch_up(&self) -> Result<(), JobError> {
        if !self.is_active().await? {
            self.beat_standby();
            return Ok(());
        }
        self.while_active(self.catch_up_all()).await?;
        // Leads found by searches that ran during the catch-up count for the next progress line.
        Ok(())
    }

    fn next_external_event(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.network.next_event_after(after)
    }
}

/// The agent a job belongs to, as `/metrics` labels it.
fn job_agent(job: JobKind) -> &'static str {
    match job {
        JobKind::ScheduledSearch => "lead_finder",
        JobKind::SheetSync => "sheet",
        JobKind::OutreachTick | JobKind::InboxCheck => "outreach",
        JobKind::Coordination
        | JobKind::DailyReport
        | JobKind::WeeklyStrategy
        | JobKind::Monitoring => "sales_manager",
    }
}

impl Department {
    async fn run_job_unmeasured(&self, job: JobKind) -> Result<JobOutcome, JobError> {
        let mut outcome = JobOutcome::default();
        // Leads found by searches the last catch-up ran count for this job's progress.
        outcome.activity.leads_found = self.leads_found.swap(0, Ordering::Relaxed);
        match job {
            JobKind::ScheduledSearch => {
                self.scheduled_search.run().await?;
            }
            JobKind::SheetSync => {
                if let Some(sheet) = &self.sheet {
                    sheet.sync().await?;
                }
            }
            JobKind::OutreachTick => {
                let tick = self.outreach.tick().await?;
                outcome.wake_at = tick.next_due;
                outcome.activity.invitations += u64::from(tick.invitations_sent);
                outcome.activity.messages +=
                    u64::from(tick.messages_sent) + u64::from(tick.follow_ups_sent);
                outcome.activity.failures += u64::from(tick.failed);
            }
            JobKind::InboxCheck => {
                let pass = self.outreach.check_replies().await?;
                outcome.activity.replies += pass.replies.len() as u64;
            }
            JobKind::Coordination => {
                let day = self.today();
                let first = self.manager.coordinate(day).await?;
                // The day's search runs in the Lead Finder's subscription; once its leads are
                // in, the same day's coordination allocates what the day still lacks.
                self.catch_up_all().await?;
                let second = self.manager.coordinate(day).await?;
                outcome.activity.allocated +=
                    (first.allocated.len() + second.allocated.len()) as u64;
            }
            JobKind::DailyReport => {
                let yesterday = self.today().pred_opt().unwrap_or_else(|| self.today());
                self.manager.daily_report(yesterday).await?;
            }
            JobKind::WeeklyStrategy => {
                self.manager.optimise_strategy().await?;
            }
            JobKind::Monitoring => {
                self.manager.monitor().await?;
            }
        }
        Ok(outcome)
    }
}
