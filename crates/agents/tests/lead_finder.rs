//! The Lead Finder against the real stores and the sandbox network: every profile becomes a
//! lead once, classified and scored, through reruns, rival finders and a crash mid-run.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use salesdept_agents::clock::{Clock, SimulatedClock};
use salesdept_agents::lead_finder::{FinderSettings, LeadFinder, SearchOutcome};
use salesdept_agents::linkedin::LinkedInPort;
use salesdept_agents::llm::{
    AgentName, LlmAnswer, LlmError, LlmPort, LlmTask, RulesOnly, StructuredAnswer,
};
use salesdept_agents::sandbox::{SandboxLinkedIn, SandboxNetwork};
use salesdept_events::domain::lead::LeadState;
use salesdept_events::domain::search::{SearchCommand, SearchCriteria, SearchState};
use salesdept_events::domain::{CommandHandler, CommandMetadata, search_stream};
use salesdept_events::store::PostgresEventStore;
use salesdept_events::{Actor, Checkpoint, EventStore, RecordedEvent, Store, domain};
use tempfile::TempDir;
use uuid::Uuid;

fn tuesday_morning() -> DateTime<Utc> {
    "2026-12-01T09:00:00Z".parse().unwrap()
}

async fn sqlite_store() -> (TempDir, Store) {
    let directory = TempDir::new().unwrap();
    let url = format!(
        "sqlite://{}",
        directory.path().join("finder.sqlite").display()
    );
    let store = Store::connect(&url, domain::upcasters()).await.unwrap();
    store.migrate().await.unwrap();
    (directory, store)
}

fn postgres(pool: sqlx::PgPool) -> Store {
    Store::Postgres(PostgresEventStore::from_pool(pool, domain::upcasters()))
}

struct World {
    store: Arc<Store>,
    linkedin: Arc<dyn LinkedInPort>,
    clock: SimulatedClock,
}

impl World {
    fn new(store: Store) -> Self {
        let clock = SimulatedClock::starting_at(tuesday_morning());
        let linkedin: Arc<dyn LinkedInPort> = Arc::new(SandboxLinkedIn::new(
            Arc::new(SandboxNetwork::generate(5, 3_000)),
            Arc::new(clock.clone()),
            "primary",
        ));
        Self {
            store: Arc::new(store),
            linkedin,
            clock,
        }
    }

    fn finder<L: LlmPort>(&self, llm: L, settings: FinderSettings) -> LeadFinder<Store, L> {
        let clock: Arc<dyn Clock> = Arc::new(self.clock.clone());
        LeadFinder::new(
            Arc::clone(&self.store),
            Arc::clone(&self.linkedin),
            Arc::new(llm),
            clock,
            settings,
        )
    }

    /// Appends a search request and returns it as recorded.
    async fn request(&self, limit: u32) -> RecordedEvent {
        let search_id = Uuid::now_v7();
        let command = SearchCommand::Request {
            search_id,
            criteria: SearchCriteria {
                positions: vec![
                    "CTO".into(),
                    "Founder".into(),
                    "VP Engineering".into(),
                    "Head of Developer Marketing".into(),
                    "Partnerships".into(),
                    "Marketing".into(),
                ],
                limit,
                ..SearchCriteria::default()
            },
            reason: "daily search".into(),
        };
        let metadata = CommandMetadata::new(Actor::agent("sales_manager"), self.clock.now())
            .with_correlation(Uuid::now_v7());
        CommandHandler::new(Arc::clone(&self.store))
            .execute::<SearchState>(&search_stream(search_id), &command, &metadata)
            .await
            .unwrap();
        self.store
            .read_stream(&search_stream(search_id), 1, Some(1))
            .await
            .unwrap()
            .remove(0)
    }

    async fn all_events(&self) -> Vec<RecordedEvent> {
        let mut events = Vec::new();
        let mut after = Checkpoint::START;
        loop {
            let batch = self.store.read_all(after, 1000).await.unwrap();
            let Some(last) = batch.last() else { break };
            after = last.checkpoint();
            events.extend(batch);
        }
        events
    }

    /// Per event type, how many events the log holds (asked of the table directly: a
    /// whole-log reader on the shared PostgreSQL server may lag behind other tests' open
    /// transactions, by design).
    async fn counts(&self) -> BTreeMap<String, usize> {
        const SQL: &str = "SELECT event_type, COUNT(*) FROM events GROUP BY event_type";
        let rows: Vec<(String, i64)> = match self.store.as_ref() {
            Store::Postgres(store) => sqlx::query_as(SQL).fetch_all(store.pool()).await,
            Store::Sqlite(store) => sqlx::query_as(SQL).fetch_all(store.read_pool()).await,
        }
        .unwrap();
        rows.into_iter()
            .map(|(event_type, count)| (event_type, count as usize))
            .collect()
    }
}

fn lead_ids(outcome: &SearchOutcome) -> BTreeSet<Uuid> {
    outcome.leads.iter().map(|lead| lead.lead_id).collect()
}

async fn a_search_makes_each_profile_a_lead_once(store: Store) {
    let world = World::new(store);
    let finder = world.finder(RulesOnly, FinderSettings::default());
    let request = world.request(40).await;
    let outcome = finder.run_search(&request).await.unwrap();
    assert_eq!(outcome.profiles_found, 40);
    assert_eq!(outcome.leads.len(), 40, "failed: {:?}", outcome.failed);
    assert_eq!(outcome.duplicates, 0);
    for lead in &outcome.leads {
        assert!(lead.by_rules);
        assert_eq!(lead.allocatable, lead.quality_score.value() >= 6.0);
        let state = CommandHandler::new(Arc::clone(&world.store))
            .load::<LeadState>(&domain::lead_stream(lead.lead_id))
            .await
            .unwrap()
            .state;
        assert!(state.is_discovered());
        assert_eq!(
            state.classification.map(|(class, _)| class),
            Some(lead.classification)
        );
        assert_eq!(state.score, Some(lead.quality_score));
        assert!(state.profile.name.is_some() && state.profile.linkedin_url.is_some());
    }
    let classes: BTreeSet<_> = outcome
        .leads
        .iter()
        .map(|lead| lead.classification)
        .collect();
    assert!(
        classes.len() >= 2,
        "a realistic mix of classes: {classes:?}"
    );
    let counts = world.counts().await;
    assert_eq!(counts["url_reserved"], 40);
    assert_eq!(counts["lead_discovered"], 40);
    assert_eq!(counts["lead_classified"], 40);
    assert_eq!(counts["quality_score_calculated"], 40);
    assert_eq!(counts["search_completed"], 1);

    // The same request again does nothing; a second search over the same people finds only
    // duplicates.
    let again = finder.run_search(&request).await.unwrap();
    assert!(again.already_completed);
    assert_eq!(world.counts().await, counts);
    let second = finder.run_search(&world.request(40).await).await.unwrap();
    assert_eq!(second.duplicates, 40);
    assert!(second.leads.is_empty());
    assert_eq!(world.counts().await["lead_discovered"], 40);

    // Every event of a lead carries the lead's own correlation id.
    for event in world.all_events().await {
        if let Some(lead_id) = domain::streams::lead_id_of(&event.stream_id) {
            assert_eq!(event.metadata.correlation_id, Some(lead_id));
            assert_eq!(event.metadata.actor, Actor::agent("lead_finder"));
        }
    }
}

#[tokio::test]
async fn sqlite_a_search_makes_each_profile_a_lead_once() {
    let (_directory, store) = sqlite_store().await;
    a_search_makes_each_profile_a_lead_once(store).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_a_search_makes_each_profile_a_lead_once(pool: sqlx::PgPool) {
    a_search_makes_each_profile_a_lead_once(postgres(pool)).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn rival_finders_on_the_same_people_make_one_lead_each(pool: sqlx::PgPool) {
    let world = World::new(postgres(pool));
    let first = world.request(30).await;
    let second = world.request(30).await;
    let (a, b) = (
        world.finder(RulesOnly, FinderSettings::default()),
        world.finder(RulesOnly, FinderSettings::default()),
    );
    let (left, right) = tokio::join!(a.run_search(&first), b.run_search(&second));
    let (left, right) = (left.unwrap(), right.unwrap());
    assert_eq!(left.leads.len() + right.leads.len(), 30);
    assert_eq!(left.duplicates + right.duplicates, 30);
    assert!(lead_ids(&left).is_disjoint(&lead_ids(&right)));
    assert_eq!(world.counts().await["lead_discovered"], 30);
}

#[tokio::test]
async fn the_daily_cap_holds() {
    let (_directory, store) = sqlite_store().await;
    let world = World::new(store);
    let finder = world.finder(
        RulesOnly,
        FinderSettings {
            max_leads_per_day: 10,
            ..FinderSettings::default()
        },
    );
    let outcome = finder.run_search(&world.request(25).await).await.unwrap();
    assert_eq!(outcome.leads.len(), 10);
    assert_eq!(outcome.over_cap, 15);
    assert_eq!(world.counts().await["lead_discovered"], 10);
}

/// The rules, except that the process dies at the `nth` call.
struct DiesAtCall {
    calls: AtomicUsize,
    nth: usize,
}

impl LlmPort for DiesAtCall {
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
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.nth {
            panic!("the process dies while classifying");
        }
        RulesOnly.complete(agent, task, fallback).await
    }
}

async fn a_crash_mid_search_is_finished_by_the_rerun(store: Store) {
    let world = World::new(store);
    let request = world.request(20).await;
    let dying = world.finder(
        DiesAtCall {
            calls: AtomicUsize::new(0),
            nth: 8,
        },
        FinderSettings::default(),
    );
    let cause = request.clone();
    let crashed = tokio::spawn(async move { dying.run_search(&cause).await }).await;
    assert!(crashed.is_err(), "the first run died");
    let before = world.counts().await;
    assert_eq!(
        before["lead_discovered"], 8,
        "seven done, the eighth discovered"
    );
    assert_eq!(before.get("search_completed"), None);

    let outcome = world
        .finder(RulesOnly, FinderSettings::default())
        .run_search(&request)
        .await
        .unwrap();
    assert_eq!(outcome.leads.len() as u32 + outcome.duplicates, 20);
    let counts = world.counts().await;
    assert_eq!(counts["url_reserved"], 20, "{counts:?}");
    assert_eq!(counts["lead_discovered"], 20, "{counts:?}");
    assert_eq!(counts["lead_classified"], 20, "{counts:?}");
    assert_eq!(counts["quality_score_calculated"], 20, "{counts:?}");
    assert_eq!(counts["search_completed"], 1);
}

#[tokio::test]
async fn sqlite_a_crash_mid_search_is_finished_by_the_rerun() {
    let (_directory, store) = sqlite_store().await;
    a_crash_mid_search_is_finished_by_the_rerun(store).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_a_crash_mid_search_is_finished_by_the_rerun(pool: sqlx::PgPool) {
    a_crash_mid_search_is_finished_by_the_rerun(postgres(pool)).await;
}

/// A human's override is learnt: the next search classifies profiles like the corrected one as
/// the team did (the rules apply the correction; the LLM would get it as a few-shot example),
/// and leaves unlike profiles alone.
async fn corrections_are_applied_to_similar_profiles_on_the_next_run(store: Store) {
    use salesdept_agents::lead_finder::CorrectionSource;
    use salesdept_agents::rules::feedback::{SIMILARITY_THRESHOLD, similarity};
    use salesdept_agents::rules::{Correction, Profile};
    use salesdept_events::domain::{Classification, LeadCommand};

    let world = World::new(store);
    let finder = world
        .finder(RulesOnly, FinderSettings::default())
        .with_corrections(Arc::clone(&world.store) as Arc<dyn CorrectionSource>, 5);
    let first = finder.run_search(&world.request(40).await).await.unwrap();
    let handler = CommandHandler::new(Arc::clone(&world.store));
    let load = |lead_id: Uuid| {
        let handler = &handler;
        async move {
            handler
                .load::<LeadState>(&domain::lead_stream(lead_id))
                .await
                .unwrap()
                .state
        }
    };
    // The team corrects the lead whose position is the most common among the first results.
    let mut by_position: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
    for lead in &first.leads {
        by_position
            .entry(load(lead.lead_id).await.position)
            .or_default()
            .push(lead.lead_id);
    }
    let (_, ids) = by_position.iter().max_by_key(|(_, ids)| ids.len()).unwrap();
    let corrected = load(ids[0]).await;
    let previous = corrected.classification.unwrap().0;
    let target = Classification::ALL
        .into_iter()
        .find(|class| *class != previous)
        .unwrap();
    let metadata = CommandMetadata::new(Actor::human("ana@team"), world.clock.now());
    handler
        .execute::<LeadState>(
            &domain::lead_stream(ids[0]),
            &LeadCommand::OverrideClassification {
                classification: target,
                reason: Some("they buy booths, they do not talk".into()),
            },
            &metadata,
        )
        .await
        .unwrap();
    let corrections = world.store.latest_corrections(5).await.unwrap();
    assert_eq!(corrections.len(), 1, "{corrections:?}");
    assert_eq!(corrections[0].corrected_classification, Some(target));
    assert_eq!(corrections[0].previous_classification, Some(previous));
    assert_eq!(corrections[0].position, corrected.position);

    // The next day's search finds new people.
    world.clock.advance_by(chrono::Duration::days(1));
    let second = finder.run_search(&world.request(300).await).await.unwrap();
    let correction: &Correction = &corrections[0];
    let (mut alike, mut unlike) = (0, 0);
    for lead in &second.leads {
        let state = load(lead.lead_id).await;
        let profile = Profile {
            position: state.position.clone(),
            industry: state.industry.clone().unwrap_or_default(),
            company_size: state.company_size.clone().unwrap_or_default(),
            ..Profile::default()
        };
        let (class, _) = state.classification.unwrap();
        if similarity(&profile, correction) >= SIMILARITY_THRESHOLD {
            alike += 1;
            assert_eq!(class, target, "{} follows the correction", state.position);
            assert!(lead.confidence.value() >= 0.8);
        } else {
            unlike += 1;
        }
    }
    assert!(
        alike > 0,
        "the second search met a profile like the corrected one"
    );
    assert!(unlike > 0);
}

#[tokio::test]
async fn sqlite_corrections_are_applied_to_similar_profiles_on_the_next_run() {
    let (_directory, store) = sqlite_store().await;
    corrections_are_applied_to_similar_profiles_on_the_next_run(store).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_corrections_are_applied_to_similar_profiles_on_the_next_run(pool: sqlx::PgPool) {
    corrections_are_applied_to_similar_profiles_on_the_next_run(postgres(pool)).await;
}
