//! The Sales Manager against the real stores (SQLite and PostgreSQL): allocation order, mix,
//! caps, capacity and idempotency; alerts; Thompson sampling; the daily report and its one mail.
//! The lead table and reports projections are caught up before each manager call, as their
//! subscriptions would keep them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use salesdept_agents::clock::{Clock, SimulatedClock};
use salesdept_agents::llm::RulesOnly;
use salesdept_agents::mail::{FileOutbox, MailError, MailPort, OutgoingMail, SentMail};
use salesdept_agents::manager::{
    MailOutcome, ManagerSettings, SalesManager, coordination_id, search_id,
};
use salesdept_events::domain::department::{AgentError, DepartmentEvent};
use salesdept_events::domain::lead::{
    LeadAllocation, LeadClassified, LeadDiscovered, LeadQualified, LeadSource, MessageApproved,
    MessageDrafted, MessageKind, MessageSent, Priority, QualityScoreCalculated, ResponseAnalysed,
    ResponseReceived,
};
use salesdept_events::domain::search::SearchEvent;
use salesdept_events::domain::{
    AccountId, AccountLimits, Classification, Confidence, DEPARTMENT_STREAM, DomainEvent, Intent,
    LeadEvent, LinkedInUrl, Pii, QualityScore, Sentiment, lead_stream, search_stream,
};
use salesdept_events::store::PostgresEventStore;
use salesdept_events::{
    Actor, Checkpoint, EventStore, ExpectedVersion, LlmUsage, Metadata, Store, Subscription,
    SubscriptionOptions, domain,
};
use salesdept_projections::leads::LeadTableHandler;
use salesdept_projections::reports::ReportsProjection;
use tempfile::TempDir;
use uuid::Uuid;

// --- the world ------------------------------------------------------------------------------

async fn sqlite_store(directory: &TempDir) -> Store {
    let url = format!(
        "sqlite://{}",
        directory.path().join("manager.sqlite").display()
    );
    let store = Store::connect(&url, domain::upcasters()).await.unwrap();
    store.migrate().await.unwrap();
    store
}

fn postgres(pool: sqlx::PgPool) -> Store {
    Store::Postgres(PostgresEventStore::from_pool(pool, domain::upcasters()))
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

/// Tuesday 1 December 2026, 09:00 UTC: coordination time.
fn tuesday() -> NaiveDate {
    date("2026-12-01")
}

fn options() -> SubscriptionOptions {
    SubscriptionOptions {
        batch_size: 500,
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        poll_interval: Duration::from_millis(20),
        lease_ttl: Duration::from_secs(30),
        dead_letter_check_interval: Duration::from_secs(60),
    }
}

/// Catches the lead table and the reports up with everything committed.
async fn catch_up(store: &Store, subscriptions: &[Subscription]) {
    wait_until_readable(store).await;
    for subscription in subscriptions {
        subscription.catch_up().await.unwrap();
        subscription.release_lease().await.unwrap();
    }
}

/// Waits, boundedly, until a read of the whole log reaches its newest event (PostgreSQL's
/// visibility horizon is cluster-wide: another test's open transaction holds it back).
async fn wait_until_readable(store: &Store) {
    let head: Option<i64> = match store {
        Store::Postgres(pg) => sqlx::query_scalar("SELECT max(global_position) FROM events")
            .fetch_one(pg.pool())
            .await
            .unwrap(),
        Store::Sqlite(lite) => sqlx::query_scalar("SELECT max(global_position) FROM events")
            .fetch_one(lite.read_pool())
            .await
            .unwrap(),
    };
    if let Some(head) = head {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let mut after = Checkpoint::START;
            let mut last = 0;
            loop {
                let batch = store.read_all(after, 10_000).await.unwrap();
                let Some(event) = batch.last() else { break };
                after = event.checkpoint();
                last = last.max(batch.iter().map(|e| e.global_position).max().unwrap_or(0));
            }
            if last >= head || tokio::time::Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

struct World {
    store: Arc<Store>,
    clock: SimulatedClock,
    outbox_dir: TempDir,
    /// The lead table and the reports (one runner each: a runner keeps its lease).
    subscriptions: Vec<Subscription>,
}

impl World {
    fn new(store: Store) -> Self {
        let subscriptions = vec![
            Subscription::new("leads", store.clone(), Arc::new(LeadTableHandler::new()))
                .with_options(options()),
            Subscription::new("reports", store.clone(), Arc::new(ReportsProjection))
                .with_options(options()),
        ];
        Self {
            subscriptions,
            store: Arc::new(store),
            clock: SimulatedClock::starting_at(at("2026-12-01T09:00:00Z")),
            outbox_dir: TempDir::new().unwrap(),
        }
    }

    async fn catch_up(&self) {
        catch_up(&self.store, &self.subscriptions).await;
    }

    async fn outbox(&self) -> Arc<FileOutbox> {
        Arc::new(
            FileOutbox::open(self.outbox_dir.path(), Duration::from_secs(10))
                .await
                .unwrap(),
        )
    }

    fn manager_with(
        &self,
        mail: Arc<dyn MailPort>,
        accounts: Vec<(AccountId, AccountLimits)>,
        settings: ManagerSettings,
    ) -> SalesManager<Store> {
        SalesManager::new(
            Arc::clone(&self.store),
            Arc::new(self.clock.clone()) as Arc<dyn Clock>,
            Arc::new(RulesOnly),
            mail,
            accounts,
            settings,
        )
    }

    async fn manager(&self, settings: ManagerSettings) -> SalesManager<Store> {
        self.manager_with(self.outbox().await, primary(), settings)
    }

    async fn append(&self, stream: &str, event: impl DomainEvent, metadata: Metadata) {
        self.store
            .append(
                stream,
                ExpectedVersion::Any,
                vec![event.to_new_event(metadata)],
            )
            .await
            .unwrap();
    }

    async fn lead_event(
        &self,
        lead_id: Uuid,
        event: impl Into<LeadEvent>,
        actor: &str,
        time: DateTime<Utc>,
    ) {
        let event: LeadEvent = event.into();
        self.append(
            &lead_stream(lead_id),
            event,
            Metadata::new(Actor::agent(actor), time),
        )
        .await;
    }

    /// A new lead, classified and scored by the Lead Finder at `time`.
    async fn lead(
        &self,
        name: &str,
        classification: Classification,
        score: f64,
        is_connection: bool,
        time: DateTime<Utc>,
    ) -> Uuid {
        self.lead_with_confidence(name, classification, score, is_connection, 0.9, time)
            .await
    }

    async fn lead_with_confidence(
        &self,
        name: &str,
        classification: Classification,
        score: f64,
        is_connection: bool,
        confidence: f64,
        time: DateTime<Utc>,
    ) -> Uuid {
        let lead_id = Uuid::now_v7();
        let url = LinkedInUrl::parse(&format!(
            "https://www.linkedin.com/in/{}-{}",
            name.to_lowercase().replace(' ', "-"),
            lead_id.simple()
        ))
        .unwrap();
        self.lead_event(
            lead_id,
            LeadDiscovered {
                lead_id,
                position: "CTO".into(),
                company: "Fjordbyte".into(),
                company_size: None,
                industry: None,
                is_connection,
                source: LeadSource::Search,
                search_id: None,
                import_format: None,
                url_hash: url.hash(),
                pii: Pii {
                    name: Some(name.into()),
                    linkedin_url: Some(url),
                    ..Pii::default()
                },
            },
            "lead_finder",
            time,
        )
        .await;
        self.lead_event(
            lead_id,
            LeadClassified {
                classification,
                confidence: Confidence::parse(confidence).unwrap(),
                manual: false,
                pii: Pii::default(),
            },
            "lead_finder",
            time,
        )
        .await;
        self.lead_event(
            lead_id,
            QualityScoreCalculated {
                score: QualityScore::parse(score).unwrap(),
                factors: BTreeMap::new(),
                manual: false,
                pii: Pii::default(),
            },
            "lead_finder",
            time,
        )
        .await;
        lead_id
    }

    /// Allocated, then a first message from `variant` on `time`, and a reply (positive or not)
    /// when `reply` says so.
    async fn contacted(
        &self,
        lead_id: Uuid,
        variant: &str,
        time: DateTime<Utc>,
        reply: Option<Intent>,
    ) {
        self.lead_event(
            lead_id,
            LeadAllocation {
                assigned_to: "outreach".into(),
                priority: Priority::High,
                reason: "seeded".into(),
            },
            "sales_manager",
            time,
        )
        .await;
        let draft_id = Uuid::now_v7();
        self.lead_event(
            lead_id,
            MessageDrafted {
                draft_id,
                kind: MessageKind::Initial,
                follow_up_number: None,
                variant: Some(variant.into()),
                pii: Pii::message("Hello"),
            },
            "outreach",
            time,
        )
        .await;
        self.lead_event(
            lead_id,
            MessageApproved {
                draft_id,
                edited: false,
                pii: Pii::default(),
            },
            "outreach",
            time,
        )
        .await;
        self.lead_event(
            lead_id,
            MessageSent {
                account_id: AccountId::parse("primary").unwrap(),
                kind: MessageKind::Initial,
                provider_message_id: format!("msg-{draft_id}"),
                draft_id,
                slot_id: Uuid::now_v7(),
                follow_up_number: None,
                variant: Some(variant.into()),
                sent_at: time,
                pii: Pii::message("Hello"),
            },
            "outreach",
            time,
        )
        .await;
        if let Some(intent) = reply {
            let later = time + TimeDelta::hours(3);
            self.lead_event(
                lead_id,
                ResponseReceived {
                    response_number: 1,
                    provider_message_id: None,
                    received_at: later,
                    pii: Pii::reply("Sounds good"),
                },
                "outreach",
                later,
            )
            .await;
            self.lead_event(
                lead_id,
                ResponseAnalysed {
                    response_number: 1,
                    sentiment: if intent.is_positive() {
                        Sentiment::Positive
                    } else {
                        Sentiment::Neutral
                    },
                    intent,
                    confidence: Confidence::parse(0.8).unwrap(),
                    pii: Pii::default(),
                },
                "outreach",
                later,
            )
            .await;
            if intent.is_positive() {
                self.lead_event(
                    lead_id,
                    LeadQualified {
                        response_number: 1,
                        intent,
                        assigned_to: "team".into(),
                    },
                    "outreach",
                    later,
                )
                .await;
            }
        }
    }

    async fn department_events(&self) -> Vec<DepartmentEvent> {
        self.store
            .read_stream(DEPARTMENT_STREAM, 1, None)
            .await
            .unwrap()
            .iter()
            .map(|event| DepartmentEvent::from_recorded(event).unwrap())
            .collect()
    }

    async fn allocations(&self, lead_id: Uuid) -> Vec<LeadAllocation> {
        self.store
            .read_stream(&lead_stream(lead_id), 1, None)
            .await
            .unwrap()
            .iter()
            .filter_map(|event| match LeadEvent::from_recorded(event).unwrap() {
                LeadEvent::LeadAllocation(allocation) => Some(allocation),
                _ => None,
            })
            .collect()
    }
}

fn primary() -> Vec<(AccountId, AccountLimits)> {
    vec![(
        AccountId::parse("primary").unwrap(),
        AccountLimits::default(),
    )]
}

fn small_days() -> ManagerSettings {
    ManagerSettings {
        daily_allocation_min: 4,
        daily_allocation_max: 10,
        ..ManagerSettings::default()
    }
}

fn eml_files(directory: &Path) -> usize {
    std::fs::read_dir(directory)
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|ext| ext == "eml")
        })
        .count()
}

// --- allocation -----------------------------------------------------------------------------

async fn allocation_follows_quality_mix_and_target_once_a_day(store: Store) {
    let world = World::new(store);
    let seeded = at("2026-11-30T15:00:00Z");
    let mut speakers = Vec::new();
    for (n, score) in [9.5, 9.0, 8.5, 8.0, 7.5, 6.8, 6.5, 6.2]
        .into_iter()
        .enumerate()
    {
        let id = world
            .lead(
                &format!("Speaker {n}"),
                Classification::Speaker,
                score,
                n % 2 == 0,
                seeded,
            )
            .await;
        speakers.push((id, score));
    }
    let mut sponsors = Vec::new();
    for (n, score) in [8.8, 7.2, 6.1].into_iter().enumerate() {
        let id = world
            .lead(
                &format!("Sponsor {n}"),
                Classification::Sponsor,
                score,
                false,
                seeded,
            )
            .await;
        sponsors.push((id, score));
    }
    let other = world
        .lead("Other One", Classification::Other, 9.9, false, seeded)
        .await;
    let weak = world
        .lead("Weak Speaker", Classification::Speaker, 4.0, false, seeded)
        .await;
    world.catch_up().await;

    let manager = world.manager(small_days()).await;
    let run = manager.coordinate(tuesday()).await.unwrap();

    // The day's target is 10: 6 speaker and 4 sponsor places; sponsors have only 3, so their
    // last place goes to the next speaker. Quality ≥ 7 first, best first.
    assert_eq!(run.target, 10);
    assert!(run.search_requested);
    let chosen: Vec<Uuid> = run.allocated.iter().map(|lead| lead.lead_id).collect();
    // In rank order: tier 1 (≥ 7) best first within the places, then tier 2, then the filler.
    let expected: Vec<Uuid> = vec![
        speakers[0].0,
        speakers[1].0,
        sponsors[0].0,
        speakers[2].0,
        speakers[3].0,
        speakers[4].0,
        sponsors[1].0,
        speakers[5].0, // the speakers' 6th place, tier 2
        sponsors[2].0, // the sponsors' 3rd place, tier 2
        speakers[6].0, // fills the sponsors' missing 4th place
    ];
    assert_eq!(chosen, expected);
    assert_eq!(run.bound_by, "daily_allocation");

    // Each allocation explains itself; high priority for the first tier.
    let first = world.allocations(speakers[0].0).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].priority, Priority::High);
    assert!(
        first[0].reason.contains("quality 9.5"),
        "{}",
        first[0].reason
    );
    assert!(
        first[0].reason.contains("speaker place 1 of 6"),
        "{}",
        first[0].reason
    );
    let filler = world.allocations(speakers[6].0).await;
    assert_eq!(filler[0].priority, Priority::Medium);
    assert!(
        filler[0].reason.contains("other class could not fill"),
        "{}",
        filler[0].reason
    );

    // The leads left out, and why.
    let reason_of = |lead_id: Uuid| {
        run.not_selected
            .iter()
            .find(|left| left.lead_id == lead_id)
            .map(|left| left.reason.clone())
            .unwrap_or_default()
    };
    assert!(reason_of(speakers[7].0).contains("ranked below the 10 leads"));
    assert!(reason_of(weak).contains("below the minimum score 6.0"));
    assert!(reason_of(other).contains("classified Other"));

    // The search was requested once, on the day's search stream.
    let search = world
        .store
        .read_stream(&search_stream(search_id(tuesday())), 1, None)
        .await
        .unwrap();
    assert_eq!(search.len(), 1);
    let SearchEvent::SearchRequest(request) = SearchEvent::from_recorded(&search[0]).unwrap()
    else {
        panic!("not a search request");
    };
    assert!(request.criteria.positions.iter().any(|p| p == "CTO"));
    assert_eq!(
        search[0].metadata.correlation_id,
        Some(coordination_id(tuesday()))
    );

    // Run again, before and after the lead table caught up: nothing new.
    let again = manager.coordinate(tuesday()).await.unwrap();
    assert!(again.allocated.is_empty(), "{:?}", again.allocated);
    assert_eq!(again.already_allocated, 10);
    assert!(!again.search_requested);
    world.catch_up().await;
    let third = manager.coordinate(tuesday()).await.unwrap();
    assert!(third.allocated.is_empty());
    for (lead_id, _) in speakers.iter().chain(&sponsors) {
        assert!(world.allocations(*lead_id).await.len() <= 1);
    }

    // The coordination is recorded once, with the self-review's not-selected leads.
    let records: Vec<_> = world
        .department_events()
        .await
        .into_iter()
        .filter_map(|event| match event {
            DepartmentEvent::CoordinationCompleted(record) => Some(record),
            _ => None,
        })
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].allocated, 10);
    assert_eq!((records[0].speakers, records[0].sponsors), (7, 3));
    assert!(
        records[0]
            .not_selected
            .iter()
            .any(|d| d.lead_id == weak && d.kind == "not_selected")
    );
}

async fn allocation_never_exceeds_todays_capacity_and_resumes_after_a_crash(store: Store) {
    let world = World::new(store);
    let seeded = at("2026-11-30T15:00:00Z");
    let mut leads = Vec::new();
    for n in 0..8 {
        leads.push(
            world
                .lead(
                    &format!("Lead {n}"),
                    Classification::Speaker,
                    9.0 - f64::from(n) * 0.1,
                    false,
                    seeded,
                )
                .await,
        );
    }
    // A lead allocated yesterday and not contacted yet holds one invitation of today.
    let waiting = world
        .lead("Waiting", Classification::Sponsor, 8.0, false, seeded)
        .await;
    world
        .lead_event(
            waiting,
            LeadAllocation {
                assigned_to: "outreach".into(),
                priority: Priority::High,
                reason: "yesterday".into(),
            },
            "sales_manager",
            seeded,
        )
        .await;
    // A crashed run of today already allocated the best lead.
    let mut crashed = Metadata::new(Actor::agent("sales_manager"), at("2026-12-01T09:00:00Z"));
    crashed.correlation_id = Some(coordination_id(tuesday()));
    world
        .append(
            &lead_stream(leads[0]),
            LeadEvent::LeadAllocation(LeadAllocation {
                assigned_to: "outreach".into(),
                priority: Priority::High,
                reason: "crashed run".into(),
            }),
            crashed,
        )
        .await;
    world.catch_up().await;

    let limits = AccountLimits {
        invitations_per_day: 4,
        ..AccountLimits::default()
    };
    let manager = world.manager_with(
        world.outbox().await,
        vec![(AccountId::parse("primary").unwrap(), limits)],
        small_days(),
    );
    let run = manager.coordinate(tuesday()).await.unwrap();
    // 4 invitations today, 2 held by the waiting leads (yesterday's and the crashed run's):
    // 2 more, though the target (10, 1 done) would take 9.
    assert_eq!(run.already_allocated, 1);
    assert_eq!(run.capacity.invitations, 2);
    assert_eq!(run.allocated.len(), 2);
    assert_eq!(run.allocated[0].lead_id, leads[1]);
    assert_eq!(run.allocated[1].lead_id, leads[2]);
    assert_eq!(run.bound_by, "capacity");
    assert!(
        run.not_selected
            .iter()
            .filter(|left| leads.contains(&left.lead_id))
            .all(|left| left.reason.contains("no invitation capacity")),
        "{:?}",
        run.not_selected
    );
    assert_eq!(world.allocations(leads[0]).await.len(), 1);

    // Saturday: the account does not work, nothing is allocated.
    world.catch_up().await;
    world.clock.advance_to(at("2026-12-05T09:00:00Z"));
    let saturday = manager.coordinate(date("2026-12-05")).await.unwrap();
    assert_eq!(saturday.capacity.total(), 0);
    assert!(saturday.allocated.is_empty());
}

#[tokio::test]
async fn sqlite_allocation_follows_quality_mix_and_target_once_a_day() {
    let directory = TempDir::new().unwrap();
    allocation_follows_quality_mix_and_target_once_a_day(sqlite_store(&directory).await).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_allocation_follows_quality_mix_and_target_once_a_day(pool: sqlx::PgPool) {
    allocation_follows_quality_mix_and_target_once_a_day(postgres(pool)).await;
}

#[tokio::test]
async fn sqlite_allocation_never_exceeds_todays_capacity_and_resumes_after_a_crash() {
    let directory = TempDir::new().unwrap();
    allocation_never_exceeds_todays_capacity_and_resumes_after_a_crash(
        sqlite_store(&directory).await,
    )
    .await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_allocation_never_exceeds_todays_capacity_and_resumes_after_a_crash(
    pool: sqlx::PgPool,
) {
    allocation_never_exceeds_todays_capacity_and_resumes_after_a_crash(postgres(pool)).await;
}

// --- monitoring -----------------------------------------------------------------------------

async fn a_low_reply_rate_and_a_silent_agent_raise_alerts_once(store: Store) {
    let world = World::new(store);
    // The Lead Finder last worked on Friday; Outreach sent 25 first messages last week, with
    // one reply (4 %).
    world
        .lead(
            "Friday Lead",
            Classification::Speaker,
            8.0,
            true,
            at("2026-11-27T10:00:00Z"),
        )
        .await;
    for n in 0..25 {
        let lead_id = world
            .lead(
                &format!("Sent {n}"),
                Classification::Speaker,
                8.0,
                true,
                at("2026-11-20T10:00:00Z"),
            )
            .await;
        let day = at("2026-11-23T10:00:00Z") + TimeDelta::days(n % 5);
        let reply = (n == 0).then_some(Intent::Interested);
        world.contacted(lead_id, "speaker_a", day, reply).await;
    }
    // Outreach is alive this morning.
    let recent = world
        .lead(
            "Recent",
            Classification::Sponsor,
            8.0,
            true,
            at("2026-11-20T10:00:00Z"),
        )
        .await;
    world
        .contacted(recent, "sponsor_a", at("2026-12-01T08:30:00Z"), None)
        .await;
    world.catch_up().await;

    let manager = world.manager(ManagerSettings::default()).await;
    let alerts = manager.monitor().await.unwrap();
    let metrics: Vec<&str> = alerts.iter().map(|alert| alert.metric.as_str()).collect();
    assert!(metrics.contains(&"agent_silent_lead_finder"), "{metrics:?}");
    assert!(!metrics.contains(&"agent_silent_outreach"), "{metrics:?}");
    let reply = alerts
        .iter()
        .find(|alert| alert.metric == "reply_rate")
        .unwrap();
    assert!((reply.value - 1.0 / 25.0).abs() < 1e-9, "{reply:?}");
    assert_eq!(reply.threshold, 0.08);
    assert_eq!(reply.date, tuesday());

    // The same day: no new alert.
    assert!(manager.monitor().await.unwrap().is_empty());

    // Errors: 4 Outreach failures against its few events of the last 24 hours.
    for _ in 0..4 {
        world
            .append(
                DEPARTMENT_STREAM,
                DepartmentEvent::AgentError(AgentError {
                    agent: "outreach".into(),
                    operation: "send_message".into(),
                    error: "provider timed out".into(),
                    lead_id: None,
                    retryable: true,
                }),
                Metadata::new(Actor::agent("outreach"), at("2026-12-01T08:45:00Z")),
            )
            .await;
    }
    let alerts = manager.monitor().await.unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].metric, "agent_error_rate_outreach");
    assert!(alerts[0].value > 0.2);
}

#[tokio::test]
async fn sqlite_a_low_reply_rate_and_a_silent_agent_raise_alerts_once() {
    let directory = TempDir::new().unwrap();
    a_low_reply_rate_and_a_silent_agent_raise_alerts_once(sqlite_store(&directory).await).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_a_low_reply_rate_and_a_silent_agent_raise_alerts_once(pool: sqlx::PgPool) {
    a_low_reply_rate_and_a_silent_agent_raise_alerts_once(postgres(pool)).await;
}

// --- strategy -------------------------------------------------------------------------------

/// 40 speakers on speaker_a with 12 replies, 40 on speaker_b with 1, 20 sponsors with 1.
async fn seed_outcomes(world: &World) {
    let plan: [(&str, Classification, u32, u32); 3] = [
        ("speaker_a", Classification::Speaker, 40, 12),
        ("speaker_b", Classification::Speaker, 40, 1),
        ("sponsor_a", Classification::Sponsor, 20, 1),
    ];
    for (variant, classification, sent, replied) in plan {
        for n in 0..sent {
            let lead_id = world
                .lead(
                    &format!("{variant} {n}"),
                    classification,
                    8.0,
                    true,
                    at("2026-11-10T10:00:00Z"),
                )
                .await;
            let day = at("2026-11-16T10:00:00Z") + TimeDelta::days(i64::from(n % 10));
            let reply = (n < replied).then_some(if n % 2 == 0 {
                Intent::Interested
            } else {
                Intent::NotInterested
            });
            world.contacted(lead_id, variant, day, reply).await;
        }
    }
    world.catch_up().await;
}

async fn thompson_sampling_shifts_weight_to_the_better_variant(
    store: Store,
) -> salesdept_events::domain::department::StrategyUpdate {
    let world = World::new(store);
    seed_outcomes(&world).await;
    let manager = world.manager(ManagerSettings::default()).await;
    let update = manager
        .optimise_strategy()
        .await
        .unwrap()
        .expect("a strategy");
    assert_eq!(update.version, 1);
    let a = update.variant_weights["speaker_a"];
    let b = update.variant_weights["speaker_b"];
    assert!(
        a > 0.9 && (0.049..0.1).contains(&b),
        "{:?}",
        update.variant_weights
    );
    assert!((a + b - 1.0).abs() < 0.01);
    // sponsor_a has no rival with enough samples: no preference recorded.
    assert!(!update.variant_weights.contains_key("sponsor_a"));
    // Speakers reply at 16 %, sponsors at 5 %: the share moves up from 60 %.
    assert!(
        update.speaker_share > 0.6 && update.speaker_share <= 0.8,
        "{}",
        update.speaker_share
    );
    for evidence in [
        "speaker_a: 40 sent, 12 replied (30.0 %)",
        "P(best)",
        "posterior means",
        "Analysis: ",
    ] {
        assert!(
            update.rationale.contains(evidence),
            "{evidence} in {}",
            update.rationale
        );
    }
    // Once a week.
    assert!(manager.optimise_strategy().await.unwrap().is_none());
    let stored: Vec<_> = world
        .department_events()
        .await
        .into_iter()
        .filter(|event| matches!(event, DepartmentEvent::StrategyUpdate(_)))
        .collect();
    assert_eq!(stored.len(), 1);
    update
}

#[tokio::test]
async fn sqlite_thompson_sampling_shifts_weight_and_is_deterministic() {
    let first_dir = TempDir::new().unwrap();
    let second_dir = TempDir::new().unwrap();
    let first =
        thompson_sampling_shifts_weight_to_the_better_variant(sqlite_store(&first_dir).await).await;
    let second =
        thompson_sampling_shifts_weight_to_the_better_variant(sqlite_store(&second_dir).await)
            .await;
    assert_eq!(first, second, "the same log gives the same decision");
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_thompson_sampling_shifts_weight_to_the_better_variant(pool: sqlx::PgPool) {
    thompson_sampling_shifts_weight_to_the_better_variant(postgres(pool)).await;
}

// --- the daily report -----------------------------------------------------------------------

/// Writes the mail, then reports a broken connection once: a crash between the mail and its
/// record.
struct FailsAfterWriting {
    inner: Arc<FileOutbox>,
    failed: AtomicBool,
}

#[async_trait]
impl MailPort for FailsAfterWriting {
    async fn send(&self, mail: &OutgoingMail) -> Result<SentMail, MailError> {
        let sent = self.inner.send(mail).await?;
        if !self.failed.swap(true, Ordering::SeqCst) {
            return Err(MailError::Connection("connection reset after DATA".into()));
        }
        Ok(sent)
    }
}

async fn the_daily_report_is_stored_once_and_mailed_once(store: Store) {
    let mut world = World::new(store);
    let monday = date("2026-11-30");
    world.clock = SimulatedClock::starting_at(at("2026-11-30T09:00:00Z"));
    // Monday: a lead the classifier was unsure of (and whose classification cost tokens).
    let unsure = world
        .lead_with_confidence(
            "Unsure Person",
            Classification::Sponsor,
            6.5,
            false,
            0.4,
            at("2026-11-30T08:00:00Z"),
        )
        .await;
    world
        .store
        .append(
            &lead_stream(unsure),
            ExpectedVersion::Any,
            vec![
                LeadEvent::QualityScoreCalculated(QualityScoreCalculated {
                    score: QualityScore::parse(6.5).unwrap(),
                    factors: BTreeMap::new(),
                    manual: false,
                    pii: Pii::default(),
                })
                .to_new_event(
                    Metadata::new(Actor::agent("lead_finder"), at("2026-11-30T08:01:00Z"))
                        .with_llm(Some(LlmUsage {
                            model: "gpt-test".into(),
                            prompt_tokens: 120,
                            completion_tokens: 30,
                            cached: false,
                            fallback: false,
                            fallback_reason: None,
                        })),
                ),
            ],
        )
        .await
        .unwrap();
    let leads: Vec<Uuid> = {
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(
                world
                    .lead(
                        &format!("Monday {n}"),
                        Classification::Speaker,
                        8.0,
                        true,
                        at("2026-11-30T08:00:00Z"),
                    )
                    .await,
            );
        }
        ids
    };
    world.catch_up().await;
    let settings = ManagerSettings {
        daily_allocation_min: 1,
        daily_allocation_max: 3,
        ..ManagerSettings::default()
    };
    let outbox = world.outbox().await;
    let mail = Arc::new(FailsAfterWriting {
        inner: Arc::clone(&outbox),
        failed: AtomicBool::new(false),
    });
    let manager = world.manager_with(mail, primary(), settings);
    let coordination = manager.coordinate(monday).await.unwrap();
    assert_eq!(coordination.allocated.len(), 3);
    // A reply on Monday afternoon from Ada, and an Outreach error.
    let ada = world
        .lead(
            "Ada Lovelace",
            Classification::Speaker,
            9.0,
            true,
            at("2026-11-20T08:00:00Z"),
        )
        .await;
    world
        .contacted(
            ada,
            "speaker_a",
            at("2026-11-30T11:00:00Z"),
            Some(Intent::Interested),
        )
        .await;
    world
        .append(
            DEPARTMENT_STREAM,
            DepartmentEvent::AgentError(AgentError {
                agent: "outreach".into(),
                operation: "check_replies".into(),
                error: "provider timed out".into(),
                lead_id: None,
                retryable: true,
            }),
            Metadata::new(Actor::agent("outreach"), at("2026-11-30T12:00:00Z")),
        )
        .await;
    world.catch_up().await;

    // Tuesday 09:15: the report of Monday. The mail is written, then the "connection" breaks.
    world.clock.advance_to(at("2026-12-01T09:15:00Z"));
    let error = manager.daily_report(monday).await.unwrap_err();
    assert!(error.to_string().contains("connection reset"), "{error}");
    assert_eq!(eml_files(world.outbox_dir.path()), 1);

    // The retry reuses the stored report and the same Message-ID: still one mail.
    let outcome = manager.daily_report(monday).await.unwrap();
    assert!(!outcome.generated);
    assert!(
        matches!(outcome.mail, MailOutcome::Sent(_)),
        "{:?}",
        outcome.mail
    );
    assert_eq!(eml_files(world.outbox_dir.path()), 1);
    let third = manager.daily_report(monday).await.unwrap();
    assert_eq!(third.mail, MailOutcome::AlreadyMailed);
    assert_eq!(eml_files(world.outbox_dir.path()), 1);

    let report = &outcome.report;
    assert_eq!(
        report.leads_allocated, 4,
        "3 by the coordination, Ada by the seed"
    );
    assert_eq!(report.messages_sent, 1);
    assert_eq!(report.positive_responses, 1);
    assert_eq!(report.agent_errors.get("outreach"), Some(&1));
    assert_eq!(report.llm_prompt_tokens, 120);
    assert_eq!(report.llm_completion_tokens, 30);
    assert_eq!(report.notable_replies.len(), 1);
    assert_eq!(report.notable_replies[0].lead_id, ada);
    assert!(
        report
            .uncertain_decisions
            .iter()
            .any(|d| d.lead_id == unsure && d.kind == "unclear_classification")
    );
    // 3 places: 2 speakers and the sponsor place (the unsure sponsor, 6.5); 3 speakers left.
    let left_out = leads
        .iter()
        .filter(|id| {
            !coordination
                .allocated
                .iter()
                .any(|lead| lead.lead_id == **id)
        })
        .count();
    assert_eq!(left_out, 3);
    assert_eq!(coordination.not_selected.len(), 3);
    assert_eq!(
        report
            .uncertain_decisions
            .iter()
            .filter(|d| d.kind == "not_selected")
            .count(),
        3
    );

    // No personal data in the event; names only in the team's mail.
    let stored = world
        .store
        .read_stream(DEPARTMENT_STREAM, 1, None)
        .await
        .unwrap()
        .into_iter()
        .find(|event| event.event_type == "daily_report_generated")
        .unwrap();
    assert_eq!(stored.event_id, outcome.event_id);
    assert!(!stored.data.to_string().contains("Ada"));
    for text in [&outcome.markdown, &outcome.html] {
        assert!(text.contains("Ada Lovelace"), "{text}");
        assert!(text.contains("Self-review"), "{text}");
        assert!(text.contains("Low-confidence classifications"));
        assert!(text.contains("confidence 0.40"));
        assert!(text.contains("120 prompt + 30 completion = 150 in all"));
        assert!(text.contains("outreach: 1 error(s)"));
    }
    assert!(
        outcome
            .markdown
            .starts_with("# Daily sales report — 2026-11-30")
    );
    assert!(outcome.markdown.contains("| First messages sent | 1 |"));
    assert!(
        outcome
            .html
            .contains("<h2>Self-review: decisions to check</h2>")
    );
    let file = std::fs::read_to_string(
        outbox.path_for(
            &salesdept_agents::mail::MessageId::for_event(outcome.event_id, "salesdept.localhost")
                .unwrap(),
        ),
    )
    .unwrap();
    assert!(file.contains("Daily sales report for 2026-11-30"));
    let mailed = world
        .department_events()
        .await
        .into_iter()
        .filter(|event| matches!(event, DepartmentEvent::DailyReportMailed(_)))
        .count();
    assert_eq!(mailed, 1);
}

#[tokio::test]
async fn sqlite_the_daily_report_is_stored_once_and_mailed_once() {
    let directory = TempDir::new().unwrap();
    the_daily_report_is_stored_once_and_mailed_once(sqlite_store(&directory).await).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_the_daily_report_is_stored_once_and_mailed_once(pool: sqlx::PgPool) {
    the_daily_report_is_stored_once_and_mailed_once(postgres(pool)).await;
}

/// The coordination remembers what it read of a candidate's stream between runs; a stream
/// that moved since is read again, even while the lead table still lags behind it.
async fn a_candidate_stopped_after_a_coordination_is_not_allocated_by_the_next(store: Store) {
    let world = World::new(store);
    let seeded = at("2026-11-30T15:00:00Z");
    let stopped = world
        .lead(
            "Stopped Speaker",
            Classification::Speaker,
            9.0,
            false,
            seeded,
        )
        .await;
    let kept = world
        .lead("Kept Speaker", Classification::Speaker, 8.0, false, seeded)
        .await;
    world.catch_up().await;
    let manager = world.manager(small_days()).await;

    // A Saturday: no account works, so both are read and neither is allocated.
    world.clock.advance_to(at("2026-12-05T09:00:00Z"));
    let saturday = manager.coordinate(date("2026-12-05")).await.unwrap();
    assert!(saturday.allocated.is_empty(), "{:?}", saturday.allocated);

    // The person asks not to be contacted; the lead table has not seen it yet.
    world
        .lead_event(
            stopped,
            domain::lead::DoNotContactMarked {
                source: domain::lead::DoNotContactSource::Manual,
                response_number: None,
                pii: Pii::default(),
            },
            "human",
            at("2026-12-06T10:00:00Z"),
        )
        .await;
    wait_until_readable(&world.store).await;

    world.clock.advance_to(at("2026-12-07T09:00:00Z"));
    let monday = manager.coordinate(date("2026-12-07")).await.unwrap();
    let chosen: Vec<Uuid> = monday.allocated.iter().map(|lead| lead.lead_id).collect();
    assert_eq!(chosen, vec![kept]);
    // Left out as not a candidate, not tried on a stale reading and refused by its stream.
    assert!(
        !monday
            .not_selected
            .iter()
            .any(|left| left.lead_id == stopped),
        "{:?}",
        monday.not_selected
    );
    assert!(world.allocations(stopped).await.is_empty());
}

#[tokio::test]
async fn sqlite_a_candidate_stopped_after_a_coordination_is_not_allocated_by_the_next() {
    let directory = TempDir::new().unwrap();
    a_candidate_stopped_after_a_coordination_is_not_allocated_by_the_next(
        sqlite_store(&directory).await,
    )
    .await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_a_candidate_stopped_after_a_coordination_is_not_allocated_by_the_next(
    pool: sqlx::PgPool,
) {
    a_candidate_stopped_after_a_coordination_is_not_allocated_by_the_next(postgres(pool)).await;
}
