//! The harness of the end-to-end tests: a whole department on a real store, the sandbox network
//! and a simulated clock; a LinkedIn adapter that "crashes" the department right after the
//! provider accepted a send; and the provider-side checks (what the sandbox itself received).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use salesdept_agents::clock::{Clock, SimulatedClock};
use salesdept_agents::department::checks::{CheckReport, CheckSettings, check_all};
use salesdept_agents::department::summary::SimulationSummary;
use salesdept_agents::department::{
    Department, DepartmentSettings, DriverReport, LinkedInWrapper, Scheduler, SimulatedDriver,
};
use salesdept_agents::linkedin::{
    ConnectionAccepted, IdempotencyKey, InvitationNote, LinkedInError, LinkedInPort, MessageText,
    Provider, ProviderProfile, Recipient, Reply, SearchCriteria, SentMessage,
};
use salesdept_agents::sandbox::{SandboxNetwork, SendKind};
use salesdept_events::Store;
use salesdept_events::domain::LinkedInUrl;
use salesdept_projections::sheet::{CsvFileSink, SheetSync};
use tempfile::TempDir;
use tokio::sync::Notify;

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

/// Wraps an adapter: after `sends` successful sends the next one reaches the provider and then
/// never returns — the department is to be dropped right there, between the provider's answer
/// and the event that would record it.
pub struct CrashAfterSends {
    inner: Arc<dyn LinkedInPort>,
    left: Arc<AtomicU32>,
    crashed: Arc<Notify>,
    /// The provider id of the send that was cut off.
    cut_off: Arc<std::sync::Mutex<Option<String>>>,
}

/// The shared state of one planned crash, and the wrapper factory for the department.
#[derive(Clone)]
pub struct PlannedCrash {
    pub left: Arc<AtomicU32>,
    pub crashed: Arc<Notify>,
    pub cut_off: Arc<std::sync::Mutex<Option<String>>>,
}

impl PlannedCrash {
    /// Crashes at the `sends + 1`-th message (invitations pass through).
    pub fn after_messages(sends: u32) -> Self {
        Self {
            left: Arc::new(AtomicU32::new(sends)),
            crashed: Arc::new(Notify::new()),
            cut_off: Arc::new(std::sync::Mutex::new(None)),
        }
    }

    pub fn wrapper(&self) -> LinkedInWrapper {
        let plan = self.clone();
        Arc::new(move |_account, inner| {
            Arc::new(CrashAfterSends {
                inner,
                left: Arc::clone(&plan.left),
                crashed: Arc::clone(&plan.crashed),
                cut_off: Arc::clone(&plan.cut_off),
            }) as Arc<dyn LinkedInPort>
        })
    }

    pub fn cut_off(&self) -> Option<String> {
        self.cut_off.lock().unwrap().clone()
    }
}

#[async_trait]
impl LinkedInPort for CrashAfterSends {
    fn provider(&self) -> Provider {
        self.inner.provider()
    }

    async fn search_profiles(
        &self,
        criteria: &SearchCriteria,
    ) -> Result<Vec<ProviderProfile>, LinkedInError> {
        self.inner.search_profiles(criteria).await
    }

    async fn fetch_profile(
        &self,
        profile_url: &LinkedInUrl,
    ) -> Result<ProviderProfile, LinkedInError> {
        self.inner.fetch_profile(profile_url).await
    }

    async fn send_connection_request(
        &self,
        to: &Recipient,
        note: Option<&InvitationNote>,
        key: IdempotencyKey,
    ) -> Result<SentMessage, LinkedInError> {
        self.inner.send_connection_request(to, note, key).await
    }

    async fn send_message(
        &self,
        to: &Recipient,
        text: &MessageText,
        key: IdempotencyKey,
    ) -> Result<SentMessage, LinkedInError> {
        let sent = self.inner.send_message(to, text, key).await?;
        let left = self.left.load(Ordering::SeqCst);
        if left == 0 {
            *self.cut_off.lock().unwrap() = Some(sent.provider_message_id.clone());
            self.crashed.notify_one();
            // The process "dies" here: the provider has the message, the log does not.
            std::future::pending::<()>().await;
        }
        self.left.store(left - 1, Ordering::SeqCst);
        Ok(sent)
    }

    async fn replies_since(&self, since: DateTime<Utc>) -> Result<Vec<Reply>, LinkedInError> {
        self.inner.replies_since(since).await
    }

    async fn connections_accepted_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<ConnectionAccepted>, LinkedInError> {
        self.inner.connections_accepted_since(since).await
    }

    async fn find_sent(&self, key: IdempotencyKey) -> Result<Option<SentMessage>, LinkedInError> {
        self.inner.find_sent(key).await
    }
}
