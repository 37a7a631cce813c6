//! The domain against real stores: the command handler on SQLite and PostgreSQL, version
//! conflicts and retries, command metadata on every event, the upcaster, and the two races
//! the domain must win on PostgreSQL (one lead per LinkedIn profile; an account's caps and
//! minimum gap with several Outreach processes reserving at once).
//!
//! PostgreSQL tests need `DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1/postgres`);
//! `#[sqlx::test]` creates a fresh database per test.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use salesdept_events::domain::account::{
    AccountCommand, ReserveSendSlot, SendAction, SendSlotReserved,
};
use salesdept_events::domain::lead::{DiscoverLead, LeadSource, Review};
use salesdept_events::domain::url::{ReserveUrl, UrlReserved};
use salesdept_events::domain::{
    AccountEvent, AccountId, AccountLimits, AccountState, Aggregate, Classification, CommandError,
    CommandHandler, CommandMetadata, Confidence, DomainError, DomainEvent, Executed, LeadCommand,
    LeadEvent, LeadState, LeadStatus, LinkedInUrl, Loaded, Pii, QualityScore, UrlReservation,
    UrlReservationEvent, account_stream, lead_stream, upcasters, url_stream,
};
use salesdept_events::store::{PostgresEventStore, SqliteEventStore};
use salesdept_events::{
    Actor, AppendResult, Checkpoint, EventStore, ExpectedVersion, LlmUsage, Metadata, NewEvent,
    RecordedEvent, StoreError, Upcasters, step_event_id,
};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::{Barrier, watch};
use uuid::Uuid;

// --- helpers ---------------------------------------------------------------------------------

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// Wednesday 2026-11-25 10:00 UTC.
fn now() -> DateTime<Utc> {
    at("2026-11-25T10:00:00Z")
}

fn profile_url() -> LinkedInUrl {
    LinkedInUrl::parse("https://www.linkedin.com/in/maya-lindqvist-d1/").unwrap()
}

fn discover(lead_id: Uuid) -> LeadCommand {
    LeadCommand::Discover(DiscoverLead {
        lead_id,
        url: profile_url(),
        name: "Maya Lindqvist".into(),
        position: "CTO".into(),
        company: "Fjordbyte".into(),
        company_size: None,
        industry: None,
        is_connection: true,
        source: LeadSource::Search,
        search_id: None,
        import_format: None,
        profile: Pii::default(),
    })
}

fn agent(name: &str, time: DateTime<Utc>) -> CommandMetadata {
    CommandMetadata::new(Actor::agent(name), time)
}

async fn sqlite_store(dir: &tempfile::TempDir, upcasters: Upcasters) -> SqliteEventStore {
    let store = SqliteEventStore::open(&dir.path().join("events.sqlite"), upcasters)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store
}

fn postgres_store(pool: PgPool) -> PostgresEventStore {
    PostgresEventStore::from_pool(pool, upcasters())
}

// --- a lead journey through the handler, on both backends ----------------------------------------

/// Reserves the URL, discovers, classifies (an LLM decision), scores, allocates, drafts and
/// sends a first message; then checks the stored rows an auditor would query.
async fn lead_journey<S: EventStore + ?Sized + 'static>(store: Arc<S>) {
    let handler = CommandHandler::new(Arc::clone(&store));
    let lead_id = Uuid::now_v7();
    let journey = Uuid::now_v7();
    let search_event = Uuid::now_v7();

    let reserved = handler
        .execute::<UrlReservation>(
            &url_stream(&profile_url()),
            &ReserveUrl {
                lead_id,
                url: profile_url(),
            },
            &agent("lead_finder", now())
                .with_correlation(journey)
                .with_step(search_event, "reserve-url"),
        )
        .await
        .unwrap();
    assert_eq!(reserved.state.lead_id, Some(lead_id));
    assert_eq!(
        reserved.appended[0].event_id,
        step_event_id(search_event, "reserve-url")
    );

    let lead = lead_stream(lead_id);
    let base = agent("lead_finder", now()).with_correlation(journey);
    handler
        .execute::<LeadState>(
            &lead,
            &discover(lead_id),
            &base.clone().with_causation(reserved.appended[0].event_id),
        )
        .await
        .unwrap();
    let usage = LlmUsage {
        model: "gpt-4o-mini".into(),
        prompt_tokens: 412,
        completion_tokens: 38,
        cached: false,
        fallback: true,
        fallback_reason: None,
    };
    let classify = LeadCommand::Classify {
        classification: Classification::Speaker,
        confidence: Confidence::parse(0.92).unwrap(),
        rationale: Some("talks at QCon".into()),
    };
    handler
        .execute::<LeadState>(
            &lead,
            &classify,
            &base.clone().with_llm(Some(usage.clone())),
        )
        .await
        .unwrap();
    let score = LeadCommand::Score {
        score: QualityScore::parse(8.5).unwrap(),
        factors: BTreeMap::new(),
        rationale: None,
    };
    handler
        .execute::<LeadState>(&lead, &score, &base)
        .await
        .unwrap();
    let allocate = LeadCommand::Allocate {
        assigned_to: "outreach".into(),
        priority: salesdept_events::domain::lead::Priority::High,
        reason: "high quality speaker".into(),
    };
    let manager = agent("sales_manager", now()).with_correlation(journey);
    handler
        .execute::<LeadState>(&lead, &allocate, &manager)
        .await
        .unwrap();
    let draft_id = Uuid::now_v7();
    let draft = LeadCommand::DraftMessage {
        draft_id,
        kind: salesdept_events::domain::lead::MessageKind::Initial,
        variant: Some("speaker-a".into()),
        text: "Hi Maya, would you speak at our Postgres day?".into(),
        review: Review::NotNeeded,
        policy: Default::default(),
    };
    let outreach = agent("outreach", now()).with_correlation(journey);
    let drafted = handler
        .execute::<LeadState>(&lead, &draft, &outreach)
        .await
        .unwrap();
    assert_eq!(
        drafted.events.len(),
        2,
        "drafted and approved in one append"
    );
    let send = LeadCommand::RecordMessageSent {
        draft_id,
        account_id: AccountId::parse("primary").unwrap(),
        slot_id: Uuid::now_v7(),
        provider_message_id: "unipile-msg-1".into(),
        policy: Default::default(),
    };
    let sent = handler
        .execute::<LeadState>(&lead, &send, &outreach)
        .await
        .unwrap();
    assert_eq!(sent.state.status, LeadStatus::Sent);
    assert_eq!(sent.stream_version, Some(7));

    // Sending the same message again is refused by the rules, not by luck.
    let again = handler
        .execute::<LeadState>(&lead, &send, &outreach)
        .await
        .unwrap();
    assert!(
        again.events.is_empty(),
        "the same provider message is recorded once"
    );

    // The stored rows: snake_case event types, data bodies, metadata on every event.
    let rows = store.read_stream(&lead, 1, None).await.unwrap();
    let types: Vec<&str> = rows.iter().map(|row| row.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "lead_discovered",
            "lead_classified",
            "quality_score_calculated",
            "lead_allocation",
            "message_drafted",
            "message_approved",
            "message_sent"
        ]
    );
    for row in &rows {
        assert_eq!(row.metadata.occurred_at, now());
        assert_eq!(
            row.metadata.correlation_id,
            Some(journey),
            "{}",
            row.event_type
        );
        assert!(matches!(row.metadata.actor, Actor::Agent(_)));
        LeadEvent::from_recorded(row).unwrap();
    }
    assert_eq!(rows[0].schema_version, 2);
    assert_eq!(
        rows[0].metadata.causation_id,
        Some(reserved.appended[0].event_id)
    );
    assert_eq!(rows[0].data["position"], "CTO");
    assert_eq!(rows[0].data["pii"]["name"], "Maya Lindqvist");
    assert_eq!(rows[1].metadata.llm, Some(usage));
    assert_eq!(rows[3].metadata.actor, Actor::agent("sales_manager"));
    let message = &rows[6].data;
    assert_eq!(message["account_id"], "primary");
    assert_eq!(message["kind"], "initial");
    assert_eq!(message["provider_message_id"], "unipile-msg-1");
    assert_eq!(
        message["pii"]["message_text"],
        "Hi Maya, would you speak at our Postgres day?"
    );
    // The metadata's time is RFC 3339 text, from the domain clock.
    let metadata = serde_json::to_value(&rows[6].metadata).unwrap();
    assert_eq!(metadata["occurred_at"], "2026-11-25T10:00:00.000000Z");

    // A second finder on the same profile is told who holds it.
    let other = handler
        .execute::<UrlReservation>(
            &url_stream(&profile_url()),
            &ReserveUrl {
                lead_id: Uuid::now_v7(),
                url: profile_url(),
            },
            &agent("lead_finder", now()),
        )
        .await
        .unwrap_err();
    assert_eq!(
        other.rejection(),
        Some(&DomainError::UrlAlreadyClaimed { lead_id })
    );
}

#[tokio::test]
async fn a_lead_journey_through_the_handler_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    lead_journey(Arc::new(sqlite_store(&dir, upcasters()).await)).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn a_lead_journey_through_the_handler_on_postgres(pool: PgPool) {
    lead_journey(Arc::new(postgres_store(pool))).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn the_handler_works_over_a_dyn_event_store(pool: PgPool) {
    let store: Arc<dyn EventStore> = Arc::new(postgres_store(pool));
    lead_journey(store).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn a_retried_process_step_is_stored_once(pool: PgPool) {
    let store = Arc::new(postgres_store(pool));
    let handler = CommandHandler::new(Arc::clone(&store));
    let cause = Uuid::now_v7();
    let account = AccountId::parse("primary").unwrap();
    let reserve: AccountCommand = ReserveSendSlot {
        slot_id: step_event_id(cause, "slot"),
        lead_id: Uuid::now_v7(),
        action: SendAction::Message,
        gap: TimeDelta::minutes(7),
        limits: AccountLimits::default(),
    }
    .into();
    let metadata = agent("outreach", now()).with_step(cause, "reserve-slot");
    let first = handler
        .execute::<AccountState>(&account_stream(&account), &reserve, &metadata)
        .await
        .unwrap();
    assert_eq!(
        first.appended[0].event_id,
        step_event_id(cause, "reserve-slot")
    );
    // After a crash the step runs again, a minute later: the slot is already there.
    let retried = handler
        .execute::<AccountState>(
            &account_stream(&account),
            &reserve,
            &agent("outreach", now() + TimeDelta::minutes(1)).with_step(cause, "reserve-slot"),
        )
        .await
        .unwrap();
    assert!(retried.events.is_empty());
    assert_eq!(retried.stream_version, Some(1));
    // And an append of the very same rows (a retry that lost its answer) stores nothing.
    let replayed = store
        .append(
            &account_stream(&account),
            ExpectedVersion::Any,
            first.appended.clone(),
        )
        .await
        .unwrap();
    assert!(replayed.already_stored);
}

// --- version conflicts --------------------------------------------------------------------------

/// The real store, with one competing append slipped in just before the handler's first
/// append: a deterministic race.
/// It also counts the version conflicts the store reported, to prove a race really happened.
struct Interleaved<S> {
    inner: S,
    competitor: Mutex<Option<(String, NewEvent)>>,
    conflicts: AtomicU64,
    /// Events returned by `read_stream`.
    stream_rows: AtomicU64,
}

impl<S> Interleaved<S> {
    fn new(inner: S, stream_id: &str, event: NewEvent) -> Self {
        Self {
            inner,
            competitor: Mutex::new(Some((stream_id.to_owned(), event))),
            conflicts: AtomicU64::new(0),
            stream_rows: AtomicU64::new(0),
        }
    }

    /// The real store with nothing slipped in: only counting conflicts.
    fn counting(inner: S) -> Self {
        Self {
            inner,
            competitor: Mutex::new(None),
            conflicts: AtomicU64::new(0),
            stream_rows: AtomicU64::new(0),
        }
    }

    fn conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }

    /// Events read by `read_stream` since the last call.
    fn take_stream_rows(&self) -> u64 {
        self.stream_rows.swap(0, Ordering::Relaxed)
    }
}

#[async_trait]
impl<S: EventStore> EventStore for Interleaved<S> {
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let competitor = self.competitor.lock().unwrap().take();
        if let Some((competing_stream, event)) = competitor {
            self.inner
                .append(&competing_stream, ExpectedVersion::Any, vec![event])
                .await?;
        }
        let result = self.inner.append(stream_id, expected, events).await;
        if matches!(result, Err(StoreError::Conflict { .. })) {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: i64,
        limit: Option<i64>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = self
            .inner
            .read_stream(stream_id, from_version, limit)
            .await?;
        self.stream_rows
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        Ok(events)
    }

    async fn read_all(
        &self,
        after: Checkpoint,
        limit: i64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(after, limit).await
    }

    async fn stream_version(&self, stream_id: &str) -> Result<Option<i64>, StoreError> {
        self.inner.stream_version(stream_id).await
    }

    fn wake_ups(&self) -> watch::Receiver<u64> {
        self.inner.wake_ups()
    }
}

fn competing<E: DomainEvent>(event: E, actor: &str) -> NewEvent {
    event.to_new_event(Metadata::new(Actor::agent(actor), now()))
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn a_conflict_is_decided_again_on_the_new_state(pool: PgPool) {
    // The competitor claims the URL between our read and our append: after reloading, our
    // claim is refused with the competitor's lead.
    let winner = Uuid::now_v7();
    let stream = url_stream(&profile_url());
    let claimed = competing(
        UrlReservationEvent::from(UrlReserved::new(winner, &profile_url())),
        "lead_finder_2",
    );
    let store = Arc::new(Interleaved::new(
        postgres_store(pool.clone()),
        &stream,
        claimed,
    ));
    let handler = CommandHandler::new(Arc::clone(&store));
    let error = handler
        .execute::<UrlReservation>(
            &stream,
            &ReserveUrl {
                lead_id: Uuid::now_v7(),
                url: profile_url(),
            },
            &agent("lead_finder_1", now()),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.rejection(),
        Some(&DomainError::UrlAlreadyClaimed { lead_id: winner })
    );
    assert_eq!(store.stream_version(&stream).await.unwrap(), Some(1));

    // The competitor adds a note to a lead while we add ours: both are kept, ours after a
    // second decision.
    let lead_id = Uuid::now_v7();
    let lead = lead_stream(lead_id);
    let plain = CommandHandler::new(Arc::new(postgres_store(pool.clone())));
    plain
        .execute::<LeadState>(&lead, &discover(lead_id), &agent("lead_finder", now()))
        .await
        .unwrap();
    let their_note = competing(
        LeadEvent::from(salesdept_events::domain::lead::NoteAdded {
            pii: Pii::note("theirs"),
        }),
        "sales_manager",
    );
    let store = Arc::new(Interleaved::new(postgres_store(pool), &lead, their_note));
    let handler = CommandHandler::new(Arc::clone(&store));
    let ours = handler
        .execute::<LeadState>(
            &lead,
            &LeadCommand::AddNote {
                text: "ours".into(),
            },
            &CommandMetadata::new(Actor::human("alice"), now()),
        )
        .await
        .unwrap();
    assert_eq!(ours.attempts, 2);
    assert_eq!(ours.stream_version, Some(3));
    assert_eq!(ours.state.notes, 2);
    let rows = store.read_stream(&lead, 1, None).await.unwrap();
    assert_eq!(rows[2].metadata.actor, Actor::human("alice"));
    assert_eq!(rows[2].data["pii"]["note"], "ours");
}

/// A handler with the state cache folds on from its last command: its decisions and states
/// equal a cold load's, it sees what another writer appended meanwhile, and a conflict slipped
/// in between its read and its append is still detected and decided again.
async fn cached_folds_match_cold_loads<S: EventStore + 'static>(inner: S) {
    let store = Arc::new(Interleaved::counting(inner));
    let cached = CommandHandler::new(Arc::clone(&store)).with_state_cache(|_| true);
    let cold = CommandHandler::new(Arc::clone(&store));
    let lead_id = Uuid::now_v7();
    let lead = lead_stream(lead_id);
    let note = |text: &str| LeadCommand::AddNote { text: text.into() };
    let human = CommandMetadata::new(Actor::human("alice"), now());
    let same_as_cold = |executed: &Executed<LeadState>, loaded: &Loaded<LeadState>| {
        assert_eq!(executed.stream_version, loaded.version);
        assert_eq!(
            format!("{:?}", executed.state),
            format!("{:?}", loaded.state)
        );
    };

    cached
        .execute::<LeadState>(&lead, &discover(lead_id), &agent("lead_finder", now()))
        .await
        .unwrap();
    let first = cached
        .execute::<LeadState>(&lead, &note("one"), &human)
        .await
        .unwrap();
    assert_eq!((first.stream_version, first.state.notes), (Some(2), 1));
    same_as_cold(&first, &cold.load::<LeadState>(&lead).await.unwrap());

    // Another writer appends: the cached entry is stale, and the next command catches up.
    cold.execute::<LeadState>(&lead, &note("other"), &human)
        .await
        .unwrap();
    let second = cached
        .execute::<LeadState>(&lead, &note("two"), &human)
        .await
        .unwrap();
    assert_eq!(
        (second.attempts, second.stream_version, second.state.notes),
        (1, Some(4), 3)
    );
    same_as_cold(&second, &cold.load::<LeadState>(&lead).await.unwrap());

    // Discovering the lead again is refused on the cached state, as on a cold load.
    let again = cached
        .execute::<LeadState>(&lead, &discover(lead_id), &agent("lead_finder", now()))
        .await
        .unwrap_err();
    let cold_again = cold
        .execute::<LeadState>(&lead, &discover(lead_id), &agent("lead_finder", now()))
        .await
        .unwrap_err();
    assert_eq!(
        again.rejection(),
        Some(&DomainError::LeadAlreadyDiscovered { lead_id })
    );
    assert_eq!(again.rejection(), cold_again.rejection());

    // A competitor slips a note in between the cached read and the append: a real conflict.
    *store.competitor.lock().unwrap() = Some((
        lead.clone(),
        competing(
            LeadEvent::from(salesdept_events::domain::lead::NoteAdded {
                pii: Pii::note("theirs"),
            }),
            "sales_manager",
        ),
    ));
    let third = cached
        .execute::<LeadState>(&lead, &note("three"), &human)
        .await
        .unwrap();
    assert_eq!(store.conflicts(), 1);
    assert_eq!(third.attempts, 2);
    assert_eq!(third.state.notes, 5);
    same_as_cold(&third, &cold.load::<LeadState>(&lead).await.unwrap());
}

/// Loads use the cache too, and only for the streams its filter keeps: a kept stream is read
/// from the cached version on, any other stream whole every time.
async fn the_cache_keeps_only_filtered_streams<S: EventStore + 'static>(inner: S) {
    let store = Arc::new(Interleaved::counting(inner));
    let kept = |stream_id: &str| stream_id.ends_with('1');
    let handler = CommandHandler::new(Arc::clone(&store)).with_state_cache(kept);
    let human = CommandMetadata::new(Actor::human("alice"), now());
    let mut streams = Vec::new();
    while streams.len() < 2 {
        let lead_id = Uuid::now_v7();
        let stream = lead_stream(lead_id);
        if kept(&stream) == streams.is_empty() {
            CommandHandler::new(Arc::clone(&store))
                .execute::<LeadState>(&stream, &discover(lead_id), &agent("lead_finder", now()))
                .await
                .unwrap();
            streams.push(stream);
        }
    }
    let (cached, uncached) = (&streams[0], &streams[1]);
    store.take_stream_rows();

    let first = handler.load::<LeadState>(cached).await.unwrap();
    assert_eq!((first.version, store.take_stream_rows()), (Some(1), 1));
    let again = handler.load::<LeadState>(cached).await.unwrap();
    assert_eq!((again.version, store.take_stream_rows()), (Some(1), 0));
    // Another writer's note is read, and only it.
    CommandHandler::new(Arc::clone(&store))
        .execute::<LeadState>(
            cached,
            &LeadCommand::AddNote {
                text: "theirs".into(),
            },
            &human,
        )
        .await
        .unwrap();
    store.take_stream_rows();
    let caught_up = handler.load::<LeadState>(cached).await.unwrap();
    assert_eq!(
        (
            caught_up.version,
            caught_up.state.notes,
            store.take_stream_rows()
        ),
        (Some(2), 1, 1)
    );
    // A refused command keeps what it read: the next load reads nothing more.
    handler
        .execute::<LeadState>(
            cached,
            &discover(Uuid::now_v7()),
            &agent("lead_finder", now()),
        )
        .await
        .unwrap_err();
    store.take_stream_rows();
    handler.load::<LeadState>(cached).await.unwrap();
    assert_eq!(store.take_stream_rows(), 0);

    for _ in 0..2 {
        let loaded = handler.load::<LeadState>(uncached).await.unwrap();
        assert_eq!((loaded.version, store.take_stream_rows()), (Some(1), 1));
    }
}

#[tokio::test]
async fn the_cache_keeps_only_filtered_streams_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    the_cache_keeps_only_filtered_streams(sqlite_store(&dir, upcasters()).await).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn the_cache_keeps_only_filtered_streams_on_postgres(pool: PgPool) {
    the_cache_keeps_only_filtered_streams(postgres_store(pool)).await;
}

#[tokio::test]
async fn the_state_cache_matches_cold_loads_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    cached_folds_match_cold_loads(sqlite_store(&dir, upcasters()).await).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn the_state_cache_matches_cold_loads_on_postgres(pool: PgPool) {
    cached_folds_match_cold_loads(postgres_store(pool)).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn retries_are_bounded(pool: PgPool) {
    let lead_id = Uuid::now_v7();
    let lead = lead_stream(lead_id);
    let plain = CommandHandler::new(Arc::new(postgres_store(pool.clone())));
    plain
        .execute::<LeadState>(&lead, &discover(lead_id), &agent("lead_finder", now()))
        .await
        .unwrap();
    let their_note = competing(
        LeadEvent::from(salesdept_events::domain::lead::NoteAdded {
            pii: Pii::note("theirs"),
        }),
        "sales_manager",
    );
    let handler = CommandHandler::new(Arc::new(Interleaved::new(
        postgres_store(pool),
        &lead,
        their_note,
    )))
    .with_max_attempts(1);
    let error = handler
        .execute::<LeadState>(
            &lead,
            &LeadCommand::AddNote {
                text: "ours".into(),
            },
            &agent("x", now()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, CommandError::TooManyConflicts { attempts: 1, .. }),
        "{error:?}"
    );
}

// --- schema evolution ----------------------------------------------------------------------------

#[tokio::test]
async fn a_version_one_lead_discovered_reads_back_as_version_two() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir, upcasters()).await;
    let lead_id = Uuid::now_v7();
    let stream = lead_stream(lead_id);
    let v1 = NewEvent::new(
        "lead_discovered",
        json!({
            "lead_id": lead_id,
            "name": "Maya Lindqvist",
            "linkedin_url": "http://LinkedIn.com/in/Maya-Lindqvist-D1/?utm_source=x",
            "position": "CTO",
            "company": "Fjordbyte",
            "classification": "Speaker",
            "quality_score": 8.5
        }),
        Metadata::new(Actor::system("import"), now()),
    )
    .with_schema_version(1);
    store
        .append(&stream, ExpectedVersion::NoStream, vec![v1])
        .await
        .unwrap();

    let rows = store.read_stream(&stream, 1, None).await.unwrap();
    assert_eq!(rows[0].schema_version, 2);
    assert_eq!(rows[0].data["pii"]["name"], "Maya Lindqvist");
    assert_eq!(rows[0].data["pii"]["linkedin_url"], profile_url().as_str());
    assert_eq!(rows[0].data["url_hash"], profile_url().hash());
    assert!(rows[0].data.get("name").is_none());
    let LeadEvent::LeadDiscovered(discovered) = LeadEvent::from_recorded(&rows[0]).unwrap() else {
        panic!("{:?}", rows[0])
    };
    assert_eq!(discovered.pii.name.as_deref(), Some("Maya Lindqvist"));
    assert_eq!(discovered.position, "CTO");

    // The handler folds it like any current event.
    let handler = CommandHandler::new(Arc::new(store.clone()));
    let loaded = handler.load::<LeadState>(&stream).await.unwrap();
    assert_eq!(loaded.state.lead_id, Some(lead_id));
    assert_eq!(loaded.state.profile.linkedin_url, Some(profile_url()));

    // The stored row itself is untouched: still version 1 on disk.
    let (version, data): (i32, String) =
        sqlx::query_as("SELECT schema_version, data FROM events WHERE stream_id = ?")
            .bind(&stream)
            .fetch_one(store.read_pool())
            .await
            .unwrap();
    assert_eq!(version, 1);
    assert!(data.contains("\"name\""));

    // A store opened without the domain's upcasters refuses to misread it.
    store.close().await;
    let bare = sqlite_store(&dir, Upcasters::new()).await;
    let rows = bare.read_stream(&stream, 1, None).await.unwrap();
    assert_eq!(rows[0].schema_version, 1);
    assert!(matches!(
        LeadEvent::from_recorded(&rows[0]),
        Err(StoreError::Decode { .. })
    ));
}

// --- races on PostgreSQL ---------------------------------------------------------------------------

async fn pool_of(options: PgPoolOptions, connect: PgConnectOptions, size: u32) -> PgPool {
    options
        .max_connections(size)
        .connect_with(connect)
        .await
        .unwrap()
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn eight_finders_racing_on_one_profile_make_one_lead(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = pool_of(options, connect, 12).await;
    let store = Arc::new(Interleaved::counting(postgres_store(pool.clone())));
    let handler = CommandHandler::new(Arc::clone(&store)).with_max_attempts(8);
    let start = Arc::new(Barrier::new(8));
    let mut finders = Vec::new();
    for finder in 0..8 {
        let (handler, start) = (handler.clone(), Arc::clone(&start));
        finders.push(tokio::spawn(async move {
            let lead_id = Uuid::now_v7();
            let metadata = agent(&format!("lead_finder_{finder}"), now());
            // Each finder saw the profile spelled differently.
            let spelling = [
                "https://www.linkedin.com/in/maya-lindqvist-d1",
                "linkedin.com/in/Maya-Lindqvist-D1/",
            ][finder % 2];
            let url = LinkedInUrl::parse(spelling).unwrap();
            start.wait().await;
            match handler
                .execute::<UrlReservation>(
                    &url_stream(&url),
                    &ReserveUrl { lead_id, url },
                    &metadata,
                )
                .await
            {
                Ok(_) => {
                    handler
                        .execute::<LeadState>(&lead_stream(lead_id), &discover(lead_id), &metadata)
                        .await
                        .unwrap();
                    Ok(lead_id)
                }
                Err(CommandError::Rejected(DomainError::UrlAlreadyClaimed { lead_id: holder })) => {
                    Err(holder)
                }
                Err(other) => panic!("finder {finder}: {other}"),
            }
        }));
    }
    let mut winners = Vec::new();
    let mut told = Vec::new();
    for finder in finders {
        match finder.await.unwrap() {
            Ok(lead_id) => winners.push(lead_id),
            Err(holder) => told.push(holder),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one finder creates the lead");
    assert_eq!(told.len(), 7);
    assert!(
        told.iter().all(|holder| *holder == winners[0]),
        "losers learn the winner's lead"
    );
    let (reservations, leads): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE event_type = 'url_reserved'), \
                count(*) FILTER (WHERE event_type = 'lead_discovered') FROM events",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((reservations, leads), (1, 1));
    eprintln!("url race: {} version conflicts", store.conflicts());
    drop(store);
    pool.close().await;
}

/// A deterministic stand-in for the seeded RNG: a fraction in [0, 1) per (process, round).
fn draw(process: u64, round: u64) -> f64 {
    let mixed = (process.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ round.wrapping_mul(0xBF58_476D_1CE4_E5B9))
    .wrapping_mul(0x94D0_49BB_1331_11EB);
    (mixed >> 11) as f64 / (1u64 << 53) as f64
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn outreach_processes_sending_at_once_keep_the_accounts_limits(
    options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    const PROCESSES: u64 = 6;
    let pool = pool_of(options, connect, 12).await;
    let store = Arc::new(Interleaved::counting(postgres_store(pool.clone())));
    let handler = CommandHandler::new(Arc::clone(&store)).with_max_attempts(PROCESSES as usize + 2);
    let account = AccountId::parse("primary").unwrap();
    // Short gaps so that the daily caps, not the gap, end each day.
    let limits = AccountLimits {
        min_gap: TimeDelta::minutes(5),
        max_gap: TimeDelta::minutes(6),
        ..AccountLimits::default()
    };
    // Two working days, every process trying every two minutes at the same simulated time.
    let days = [at("2026-11-25T08:58:00Z"), at("2026-11-26T08:58:00Z")];
    let rounds_per_day = 245;
    let barrier = Arc::new(Barrier::new(PROCESSES as usize));
    let mut processes = Vec::new();
    for process in 0..PROCESSES {
        let (handler, barrier, account, limits) = (
            handler.clone(),
            Arc::clone(&barrier),
            account.clone(),
            limits.clone(),
        );
        processes.push(tokio::spawn(async move {
            let mut refusals: BTreeMap<String, u32> = BTreeMap::new();
            for (day, start) in days.iter().enumerate() {
                for round in 0..rounds_per_day {
                    let now = *start + TimeDelta::minutes(2 * round);
                    let action = if (process + round as u64).is_multiple_of(2) {
                        SendAction::Message
                    } else {
                        SendAction::Invitation
                    };
                    let command: AccountCommand = ReserveSendSlot {
                        slot_id: Uuid::now_v7(),
                        lead_id: Uuid::now_v7(),
                        action,
                        gap: limits
                            .gap_from_fraction(draw(process, (day * 1000) as u64 + round as u64)),
                        limits: limits.clone(),
                    }
                    .into();
                    barrier.wait().await;
                    let outcome = handler
                        .execute::<AccountState>(
                            &account_stream(&account),
                            &command,
                            &agent("outreach", now),
                        )
                        .await;
                    let key = match outcome {
                        Ok(_) => "reserved".to_owned(),
                        Err(CommandError::Rejected(DomainError::RateLimited { limit, .. })) => {
                            format!("{limit:?}")
                        }
                        Err(CommandError::Rejected(DomainError::OutsideWorkingHours {
                            ..
                        })) => "closed".to_owned(),
                        Err(other) => panic!("process {process}: {other}"),
                    };
                    *refusals.entry(key).or_default() += 1;
                }
            }
            refusals
        }));
    }
    let mut outcomes: BTreeMap<String, u32> = BTreeMap::new();
    for process in processes {
        for (key, count) in process.await.unwrap() {
            *outcomes.entry(key).or_default() += count;
        }
    }

    // Read the account stream back and check every limit on what was stored.
    let rows = store
        .read_stream(&account_stream(&account), 1, None)
        .await
        .unwrap();
    let mut slots: Vec<SendSlotReserved> = rows
        .iter()
        .map(|row| match AccountEvent::from_recorded(row).unwrap() {
            AccountEvent::SendSlotReserved(slot) => slot,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        slots.len() as u32,
        outcomes["reserved"],
        "every reservation reported is stored"
    );
    slots.sort_by_key(|slot| slot.at);
    for pair in slots.windows(2) {
        let gap = TimeDelta::seconds(pair[0].gap_seconds);
        assert!(
            pair[1].at >= pair[0].at + gap,
            "{} follows {} closer than its drawn gap of {gap}",
            pair[1].at,
            pair[0].at
        );
        assert!(pair[1].at > pair[0].at, "two slots at one instant");
    }
    for day in days {
        let date = day.date_naive();
        let count = |action| {
            slots
                .iter()
                .filter(|slot| slot.action == action && slot.at.date_naive() == date)
                .count()
        };
        assert_eq!(count(SendAction::Message), 45, "messages on {date}");
        assert_eq!(count(SendAction::Invitation), 20, "invitations on {date}");
    }
    assert!(
        slots
            .iter()
            .all(|slot| limits.working_hours.contains(slot.at))
    );
    // The caps really bound, and the processes really raced.
    assert!(
        outcomes.contains_key("MessagesPerDay") && outcomes.contains_key("InvitationsPerDay"),
        "{outcomes:?}"
    );
    assert!(outcomes["MinimumGap"] > 0, "{outcomes:?}");
    assert!(
        store.conflicts() > 0,
        "the processes never raced: no version conflict"
    );
    eprintln!(
        "account race: {outcomes:?}, {} version conflicts",
        store.conflicts()
    );
    drop(store);
    pool.close().await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn the_account_state_folded_from_postgres_matches_the_pure_fold(pool: PgPool) {
    let store = Arc::new(postgres_store(pool));
    let handler = CommandHandler::new(Arc::clone(&store));
    let account = AccountId::parse("reserve-1").unwrap();
    let mut expected = Vec::new();
    for minute in [0, 6, 20] {
        let done = handler
            .execute::<AccountState>(
                &account_stream(&account),
                &ReserveSendSlot {
                    slot_id: Uuid::now_v7(),
                    lead_id: Uuid::now_v7(),
                    action: SendAction::Invitation,
                    gap: TimeDelta::minutes(5),
                    limits: AccountLimits::default(),
                }
                .into(),
                &agent("outreach", now() + TimeDelta::minutes(minute)),
            )
            .await
            .unwrap();
        expected.extend(done.events);
    }
    let loaded = handler
        .load::<AccountState>(&account_stream(&account))
        .await
        .unwrap();
    assert_eq!(loaded.state, AccountState::fold(&expected));
    assert_eq!(loaded.version, Some(3));
}
