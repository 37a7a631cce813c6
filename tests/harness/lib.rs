//! The harness of the end-to-end tests: a whole department on a real store, the sandbox network
//! and a simulated clock; LinkedIn adapters that "crash" the department at a step of the send
//! path ([`send_crash`]); and the provider-side checks (what the sandbox itself received).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use salesdept_agents::clock::{Clock, SimulatedClock};
use salesdept_agents::department::checks::{CheckReport, CheckSettings, check_all};
use salesdept_agents::department::summary::SimulationSummary;
use salesdept_agents::department::{
    Department, DepartmentSettings, DriverReport, LinkedInWrapper, Scheduler, SimulatedDriver,
};
use salesdept_agents::sandbox::{SandboxNetwork, SendKind};
use salesdept_events::Store;
use salesdept_projections::sheet::{CsvFileSink, SheetSync};
use tempfile::TempDir;

/// A Monday.
pub fn start() -> DateTime<Utc> {
    "2026-01-05T00:00:00Z".parse().unwrap()
}

/// One department's world: the store, the sandbox network (the outside world survives a crash
/// of the department, as LinkedIn would), the clock and the files.
pub struct World {
    pub dir: TempDir,
    pub store: Store,
    pub network: Arc<SandboxNetwork>,
    pub clock: SimulatedClock,
    pub settings: DepartmentSettings,
}

impl World {
    /// A world with `accounts` accounts and a network of `people`, sized for tests: searches
    /// of `leads_per_day` new leads.
    pub fn new(store: Store, seed: u64, people: u32, accounts: u32, leads_per_day: u32) -> Self {
        let dir = TempDir::new().unwrap();
        let mut settings = DepartmentSettings::embedded(
            accounts,
            dir.path().join("outbox"),
            Some(dir.path().join("leads.csv")),
        );
        settings.finder.max_leads_per_day = leads_per_day;
        settings.search.limit = leads_per_day;
        Self {
            dir,
            store,
            network: Arc::new(SandboxNetwork::generate(seed, people)),
            clock: SimulatedClock::starting_at(start()),
            settings,
        }
    }

    pub fn clock_now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub async fn department(&self, wrap: Option<LinkedInWrapper>) -> Department {
        Department::with_linkedin(
            self.store.clone(),
            Arc::new(self.clock.clone()) as Arc<dyn Clock>,
            Arc::clone(&self.network),
            self.settings.clone(),
            wrap,
        )
        .await
        .unwrap()
    }

    /// Runs `department` from the clock's time until `until`.
    pub async fn run(&self, department: &Department, until: DateTime<Utc>) -> DriverReport {
        let driver = SimulatedDriver::new(self.clock.clone(), until);
        let report = driver
            .run(&department.schedule(), department)
            .await
            .unwrap();
        department.catch_up_all().await.unwrap();
        report
    }

    pub fn check_settings(&self) -> CheckSettings {
        CheckSettings {
            accounts: self
                .settings
                .accounts
                .iter()
                .map(|account| (account.id.clone(), account.limits.clone()))
                .collect(),
            outbox_dir: Some(self.settings.outbox_dir.clone()),
            message_id_domain: self.settings.hand_over.message_id_domain.clone(),
        }
    }

    /// Every check of the log, the outbox and the projections.
    pub async fn check(&self) -> CheckReport {
        let path = self.settings.sheet_csv.clone().unwrap();
        let sheet = SheetSync::new(self.store.clone(), Arc::new(CsvFileSink::new(path.clone())));
        check_all(&self.store, &self.check_settings(), Some((&sheet, &path)))
            .await
            .unwrap()
    }

    pub async fn summary(&self) -> SimulationSummary {
        SimulationSummary::from_store(&self.store).await.unwrap()
    }

    /// What the provider itself received, against the log: every send the sandbox took is
    /// recorded once in the log, and nobody got the same text twice.
    pub fn provider_problems(&self, summary: &SimulationSummary) -> Vec<String> {
        let sends = self.network.sends();
        let mut problems = Vec::new();
        let invitations = sends
            .iter()
            .filter(|send| send.kind == SendKind::Invitation)
            .count() as u64;
        let messages = sends.len() as u64 - invitations;
        if invitations != summary.invitations_sent {
            problems.push(format!(
                "the provider took {invitations} invitations, the log records {}",
                summary.invitations_sent
            ));
        }
        if messages != summary.messages_sent {
            problems.push(format!(
                "the provider took {messages} messages, the log records {}",
                summary.messages_sent
            ));
        }
        let mut seen: HashMap<(String, String, String), u32> = HashMap::new();
        for send in &sends {
            let count = seen
                .entry((
                    send.profile_url.clone(),
                    format!("{:?}", send.kind),
                    send.text.clone(),
                ))
                .or_default();
            *count += 1;
            if *count == 2 {
                problems.push(format!(
                    "{} got the same {:?} twice",
                    send.profile_url, send.kind
                ));
            }
        }
        problems
    }
}

pub mod send_crash;

impl World {
    /// Runs a department with `crash` wrapped around its LinkedIn adapters until the crash
    /// fires, then drops it there (its leases left to expire as after a real crash). Panics
    /// when the run ends first.
    pub async fn run_until_crash(&self, crash: &send_crash::SendCrash, until: DateTime<Utc>) {
        let department = self.department(Some(crash.wrapper())).await;
        let run = self.run(&department, until);
        tokio::select! {
            _ = run => panic!("the run ended before the planned crash at {:?}", crash.step),
            () = crash.crashed.notified() => {}
        }
    }

    /// Intents without an outcome: slots still held on an account whose lead records no send
    /// and no failure under that slot — a send lost between its steps.
    pub async fn intents_without_outcome(&self) -> Vec<String> {
        let events = salesdept_agents::department::summary::read_log(&self.store)
            .await
            .unwrap();
        let view = salesdept_agents::department::summary::LogView::new(&events).unwrap();
        let outcomes: std::collections::HashSet<String> = events
            .iter()
            .filter(|event| event.stream_id.starts_with("lead-"))
            .filter_map(|event| event.data["slot_id"].as_str().map(str::to_owned))
            .collect();
        view.slots
            .iter()
            .filter(|slot| !slot.released && !outcomes.contains(&slot.slot_id.to_string()))
            .map(|slot| {
                format!(
                    "slot {} on {} for lead {} has no outcome",
                    slot.slot_id, slot.account_id, slot.lead_id
                )
            })
            .collect()
    }
}

pub mod proxy;
