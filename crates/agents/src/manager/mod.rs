//! The Sales Manager agent: the department's head. It runs four jobs, each a short process
//! over the log whose every step is idempotent, so a retry or a crash midway repeats nothing:
//!
//! - [`SalesManager::coordinate`] (09:00): requests the day's search and allocates leads —
//!   quality first, the Speaker/Sponsor mix of the strategy, 30–50 a day and never more than the
//!   accounts can still contact today — explaining each `lead_allocation` in its `reason` and
//!   recording the leads it left out (`coordination_completed`, for the self-review).
//! - [`SalesManager::monitor`]: heartbeats (each agent's last event), error rates
//!   (`agent_error`) and the weekly reply rate → `performance_alert` (once per metric and day).
//! - [`SalesManager::optimise_strategy`] (weekly): Thompson sampling over the reply rates per
//!   template variant and per classification → `strategy_update` with the evidence.
//! - [`SalesManager::daily_report`] (09:15): the day's funnel, rates against the targets,
//!   replies, errors, LLM tokens, strategy changes and the self-review → `daily_report_generated`,
//!   mailed once to the team (Message-ID from the event id), then `daily_report_mailed`.
//!
//! The manager reads the lead table and the reports read models (`crates/projections`), which
//! are fed by their subscriptions: they may lag the log by a moment, so every decision is
//! checked again by the domain's rules when it is appended.

pub mod allocation;
pub mod monitor;
pub mod report;
pub mod strategy;

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use salesdept_events::domain::department::{DepartmentCommand, DepartmentState};
use salesdept_events::domain::search::SearchCriteria;
use salesdept_events::domain::{
    AccountId, AccountLimits, CommandError, CommandHandler, CommandMetadata, DEPARTMENT_STREAM,
};
use salesdept_events::{Actor, EventStore, Store, StoreError};
use salesdept_projections::leads::ProjectionError;
use salesdept_projections::reports::ReportError;
use uuid::Uuid;

use crate::clock::Clock;
use crate::llm::{LlmError, LlmPort, RulesOnly};
use crate::mail::{MailError, MailPort};

pub use allocation::{
    AllocatedLead, Candidate, Capacity, Coordination, NotSelected, Plan, plan_allocation,
};
pub use monitor::MonitorThresholds;
pub use report::{DailyReportOutcome, MailOutcome, render_html, render_markdown};
pub use strategy::{StrategyAnalysis, VariantEvidence, thompson_weights};

/// The actor name of the Sales Manager's events.
pub const SALES_MANAGER: &str = "sales_manager";

/// The namespace of the manager's deterministic ids (coordination, search and report ids).
pub const MANAGER_NAMESPACE: Uuid = Uuid::from_u128(0x5a1e_5d3e_0000_4000_8000_0000_0000_0006);

/// The seed's `sales_manager` keys (and the few `lead_finder` keys the manager reads), with
/// the defaults of `config/agents.yaml`.
#[derive(Clone, Debug, PartialEq)]
pub struct ManagerSettings {
    /// Daily coordination, in `time_zone` (default 09:00).
    pub coordination_time: NaiveTime,
    /// Daily report, in `time_zone` (default 09:15).
    pub report_time: NaiveTime,
    /// The department's time zone for the daily schedule (default UTC).
    pub time_zone: Tz,
    /// Leads allocated per day: the strategy's number, kept within these bounds (30–50).
    pub daily_allocation_min: u32,
    pub daily_allocation_max: u32,
    /// The share of speakers until a strategy says otherwise (0.6).
    pub speaker_share: f64,
    /// Leads at or above this score are allocated first (7.0).
    pub priority_quality_score: f64,
    /// Below this score a lead is never allocated (the Lead Finder's `quality_threshold`, 6.0),
    /// unless a strategy sets a higher minimum.
    pub quality_threshold: f64,
    /// Classifications below this confidence are listed in the self-review (0.55).
    pub review_confidence_threshold: f64,
    /// Who the allocated leads are assigned to.
    pub assignee: String,
    /// The day's search (from `lead_finder`'s keys).
    pub search: SearchCriteria,
    pub alerts: MonitorThresholds,
    /// A variant or classification is compared only with at least this many first messages.
    pub min_samples: u32,
    /// The weekly optimisation looks at the first messages of this many days.
    pub strategy_window_days: u32,
    /// The speaker share a strategy may move within.
    pub speaker_share_bounds: (f64, f64),
    /// No variant's weight falls below this (exploration never stops entirely).
    pub min_variant_weight: f64,
    /// At most this many left-out leads are recorded per coordination.
    pub max_not_selected: usize,
    /// Who gets the daily report.
    pub team_emails: Vec<String>,
    /// The sender of the report.
    pub report_from: String,
    /// The right-hand side of the report mails' Message-IDs.
    pub message_id_domain: String,
}

impl Default for ManagerSettings {
    fn default() -> Self {
        Self {
            coordination_time: NaiveTime::from_hms_opt(9, 0, 0).unwrap_or(NaiveTime::MIN),
            report_time: NaiveTime::from_hms_opt(9, 15, 0).unwrap_or(NaiveTime::MIN),
            time_zone: Tz::UTC,
            daily_allocation_min: 30,
            daily_allocation_max: 50,
            speaker_share: 0.6,
            priority_quality_score: 7.0,
            quality_threshold: 6.0,
            review_confidence_threshold: 0.55,
            assignee: "outreach".into(),
            search: SearchCriteria {
                keywords: Vec::new(),
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
                industries: [
                    "Software Development",
                    "Artificial Intelligence",
                    "Semiconductors",
                    "Research",
                ]
                .map(String::from)
                .to_vec(),
                locations: ["Europe", "United States"].map(String::from).to_vec(),
                company_sizes: ["11-50", "51-200", "201-500", "501-1000"]
                    .map(String::from)
                    .to_vec(),
                limit: 100,
            },
            alerts: MonitorThresholds::default(),
            min_samples: 20,
            strategy_window_days: 28,
            speaker_share_bounds: (0.3, 0.8),
            min_variant_weight: 0.05,
            max_not_selected: 50,
            team_emails: vec!["sales-team@localhost".into()],
            report_from: "Sales Manager <sales-manager@localhost>".into(),
            message_id_domain: "salesdept.localhost".into(),
        }
    }
}

impl ManagerSettings {
    /// When `day`'s coordination is due (in `time_zone`, as UTC).
    pub fn coordination_at(&self, day: NaiveDate) -> DateTime<Utc> {
        local_instant(self.time_zone, day, self.coordination_time)
    }

    /// When the report is due on `day` (it covers the day before).
    pub fn report_at(&self, day: NaiveDate) -> DateTime<Utc> {
        local_instant(self.time_zone, day, self.report_time)
    }

    fn check(&self) -> Result<(), ManagerError> {
        let invalid = |why: String| Err(ManagerError::InvalidSettings(why));
        if self.daily_allocation_min == 0 || self.daily_allocation_min > self.daily_allocation_max {
            return invalid(format!(
                "daily allocation {}–{} is empty",
                self.daily_allocation_min, self.daily_allocation_max
            ));
        }
        if !(0.0..=1.0).contains(&self.speaker_share) {
            return invalid(format!("speaker share {} is not 0–1", self.speaker_share));
        }
        let (low, high) = self.speaker_share_bounds;
        if !(0.0..=1.0).contains(&low) || !(low..=1.0).contains(&high) {
            return invalid(format!(
                "speaker share bounds {low}–{high} are not within 0–1"
            ));
        }
        if self.assignee.trim().is_empty() {
            return invalid("the assignee of allocated leads is blank".into());
        }
        Ok(())
    }
}

/// `time` of `day` in `zone` (the earlier instant on a DST fold, the first after a gap).
pub(crate) fn local_instant(zone: Tz, day: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let naive = day.and_time(time);
    match zone.from_local_datetime(&naive) {
        chrono::LocalResult::Single(at) | chrono::LocalResult::Ambiguous(at, _) => {
            at.with_timezone(&Utc)
        }
        chrono::LocalResult::None => zone
            .from_local_datetime(&(naive + TimeDelta::hours(1)))
            .earliest()
            .map_or_else(|| naive.and_utc(), |at| at.with_timezone(&Utc)),
    }
}

/// The inclusive UTC bounds of `day` (the reports' days are UTC days of `occurred_at`).
pub(crate) fn utc_day(day: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = day.and_time(NaiveTime::MIN).and_utc();
    (
        start,
        start + TimeDelta::days(1) - TimeDelta::microseconds(1),
    )
}

/// Why a manager job failed. Nothing half-done is left behind: every step is idempotent, so
/// the job can simply be run again.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("reading the reports failed: {0}")]
    Report(#[from] ReportError),
    #[error("reading the lead table failed: {0}")]
    Projection(#[from] ProjectionError),
    #[error("mailing the report failed: {0}")]
    Mail(#[from] MailError),
    #[error("asking the LLM failed: {0}")]
    Llm(#[from] LlmError),
    #[error("invalid Sales Manager settings: {0}")]
    InvalidSettings(String),
}

/// A store whose read models (lead table, reports) the manager can query: the concrete
/// [`Store`], which holds both the log and the projections' tables.
pub trait ReadModels: EventStore {
    fn read_models(&self) -> &Store;
}

impl ReadModels for Store {
    fn read_models(&self) -> &Store {
        self
    }
}

/// The Sales Manager. `L` is the LLM port of the weekly analysis ([`RulesOnly`] when off).
pub struct SalesManager<S: EventStore + ?Sized, L: LlmPort = RulesOnly> {
    store: Arc<S>,
    handler: CommandHandler<S>,
    clock: Arc<dyn Clock>,
    llm: Arc<L>,
    mail: Arc<dyn MailPort>,
    accounts: Vec<(AccountId, AccountLimits)>,
    settings: ManagerSettings,
    /// What the coordination last read of each candidate's stream (see
    /// [`allocation::LeadFactsMemo`]).
    lead_facts: tokio::sync::Mutex<allocation::LeadFactsMemo>,
}

impl<S: ReadModels + ?Sized + 'static, L: LlmPort> SalesManager<S, L> {
    /// `accounts`: the sending accounts in priority order, with their limits (the same the
    /// Outreach agent sends under).
    pub fn new(
        store: Arc<S>,
        clock: Arc<dyn Clock>,
        llm: Arc<L>,
        mail: Arc<dyn MailPort>,
        accounts: Vec<(AccountId, AccountLimits)>,
        settings: ManagerSettings,
    ) -> Self {
        Self {
            handler: CommandHandler::new(Arc::clone(&store)).with_max_attempts(8),
            store,
            clock,
            llm,
            mail,
            accounts,
            settings,
            lead_facts: tokio::sync::Mutex::default(),
        }
    }

    pub fn settings(&self) -> &ManagerSettings {
        &self.settings
    }

    /// The day's coordination: the search request, then the allocation (see [`allocation`]).
    /// Run it again the same day (after a crash, or once the search has found new leads):
    /// it requests nothing twice and allocates only what the day still lacks.
    #[tracing::instrument(skip_all, fields(%day), err)]
    pub async fn coordinate(&self, day: NaiveDate) -> Result<Coordination, ManagerError> {
        self.settings.check()?;
        allocation::coordinate(self, day).await
    }

    /// Heartbeats, error rates and the reply rate; returns the alerts raised now (an alert
    /// already raised today for the same metric is not raised again).
    #[tracing::instrument(skip_all, err)]
    pub async fn monitor(
        &self,
    ) -> Result<Vec<salesdept_events::domain::department::PerformanceAlert>, ManagerError> {
        self.settings.check()?;
        monitor::monitor(self).await
    }

    /// The weekly optimisation: a new strategy when enough first messages were sent to compare
    /// variants or classifications, None otherwise (or when this week's strategy exists).
    #[tracing::instrument(skip_all, err)]
    pub async fn optimise_strategy(
        &self,
    ) -> Result<Option<salesdept_events::domain::department::StrategyUpdate>, ManagerError> {
        self.settings.check()?;
        strategy::optimise(self).await
    }

    /// The report of `day` (at 09:15 on D, pass D − 1): stored once as
    /// `daily_report_generated`, mailed once to the team, rendered as Markdown and HTML.
    #[tracing::instrument(skip_all, fields(%day), err)]
    pub async fn daily_report(&self, day: NaiveDate) -> Result<DailyReportOutcome, ManagerError> {
        self.settings.check()?;
        report::daily_report(self, day).await
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    fn read_models(&self) -> &Store {
        self.store.read_models()
    }

    fn metadata(&self) -> CommandMetadata {
        CommandMetadata::new(Actor::agent(SALES_MANAGER), self.now())
    }

    async fn department(&self) -> Result<DepartmentState, ManagerError> {
        Ok(self
            .handler
            .load::<DepartmentState>(DEPARTMENT_STREAM)
            .await?
            .state)
    }

    async fn department_command(
        &self,
        command: &DepartmentCommand,
        metadata: &CommandMetadata,
    ) -> Result<salesdept_events::domain::Executed<DepartmentState>, ManagerError> {
        Ok(self
            .handler
            .execute::<DepartmentState>(DEPARTMENT_STREAM, command, metadata)
            .await?)
    }

    /// How many first contacts the accounts can make on a full day (the strategy's ceiling).
    fn full_day_capacity(&self) -> u32 {
        self.accounts
            .iter()
            .map(|(_, limits)| limits.messages_per_day)
            .sum()
    }
}

/// The id of `day`'s coordination: the cause of its search request and allocations.
pub fn coordination_id(day: NaiveDate) -> Uuid {
    Uuid::new_v5(&MANAGER_NAMESPACE, format!("coordination:{day}").as_bytes())
}

/// The id of `day`'s search request.
pub fn search_id(day: NaiveDate) -> Uuid {
    Uuid::new_v5(&coordination_id(day), b"search")
}
