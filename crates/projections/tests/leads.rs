//! The lead table, its rebuild, the audit queries and time travel, on both stores: the real
//! PostgreSQL (a fresh database per test, `#[sqlx::test]`) and a SQLite file in a temp dir.
//! Both run with the personal-data vault on, as in production.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use salesdept_events::domain::lead::{
    LeadAllocation, LeadClassified, LeadDiscovered, LeadEvent, LeadForgotten, LeadSource,
    MessageDrafted, MessageKind, MessageSent, NoteAdded, Priority, QualityScoreCalculated,
    ResponseAnalysed, ResponseReceived, ReviewRequested,
};
use salesdept_events::domain::url::{UrlReservationEvent, UrlReserved};
use salesdept_events::domain::{
    AccountId, Classification, Confidence, DomainEvent, Intent, LeadStatus, LinkedInUrl, Pii,
    QualityScore, Sentiment, lead_stream, upcasters, url_stream,
};
use salesdept_events::pii_vault::{MasterKey, PiiVault};
use salesdept_events::store::{EventCursor, EventOrder, EventQuery, PostgresEventStore};
use salesdept_events::subscription::stored_checkpoint;
use salesdept_events::{
    Actor, Checkpoint, EventStore, ExpectedVersion, Handler, HandlerContext, HandlerError,
    Metadata, NewEvent, RecordedEvent, Store, Subscription, SubscriptionOptions,
};
use salesdept_projections::audit::{
    AuditFilter, audit_events, lead_as_of, lead_history, resolve_lead, table_as_of,
};
use salesdept_projections::leads::{
    LEADS_TABLE, LeadFilter, LeadOrder, LeadTableHandler, Page, RebuildOptions, SUBSCRIPTION_NAME,
    dump_table, get_lead, list_leads, rebuild_leads, rebuild_leads_with,
};
use salesdept_projections::row::LeadRow;
use sqlx::PgPool;
use uuid::Uuid;

const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn with_vault(store: Store) -> Store {
    store.enable_pii_vault(Arc::new(PiiVault::new(
        MasterKey::from_base64(MASTER_KEY).unwrap(),
    )));
    store
}

fn pg_store(pool: PgPool) -> Store {
    with_vault(Store::Postgres(PostgresEventStore::from_pool(
        pool,
        upcasters(),
    )))
}

async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
    let url = format!("sqlite://{}", dir.path().join("log.sqlite").display());
    let store = Store::connect(&url, upcasters()).await.unwrap();
    store.migrate().await.unwrap();
    with_vault(store)
}

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    format!("2026-11-{day:02}T{hour:02}:00:00Z")
        .parse()
        .unwrap()
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

fn url_of(n: usize) -> LinkedInUrl {
    LinkedInUrl::parse(&format!("https://www.linkedin.com/in/person-{n}")).unwrap()
}

fn discovered(lead_id: Uuid, n: usize, position: &str, company: &str) -> LeadEvent {
    let url = url_of(n);
    LeadEvent::LeadDiscovered(LeadDiscovered {
        lead_id,
        position: position.into(),
        company: company.into(),
        company_size: None,
        industry: None,
        is_connection: true,
        source: LeadSource::Search,
        search_id: None,
        import_format: None,
        url_hash: url.hash(),
        pii: Pii {
            name: Some(format!("Person {n}")),
            linkedin_url: Some(url),
            ..Pii::default()
        },
    })
}

fn classified(classification: Classification) -> LeadEvent {
    LeadEvent::LeadClassified(LeadClassified {
        classification,
        confidence: Confidence::parse(0.9).unwrap(),
        manual: false,
        pii: Pii::default(),
    })
}

fn scored(score: f64) -> LeadEvent {
    LeadEvent::QualityScoreCalculated(QualityScoreCalculated {
        score: QualityScore::parse(score).unwrap(),
        factors: Default::default(),
        manual: false,
        pii: Pii::default(),
    })
}

fn allocated() -> LeadEvent {
    LeadEvent::LeadAllocation(LeadAllocation {
        assigned_to: "outreach".into(),
        priority: Priority::High,
        reason: "high quality speaker".into(),
    })
}

fn drafted(draft_id: Uuid) -> LeadEvent {
    LeadEvent::MessageDrafted(MessageDrafted {
        draft_id,
        kind: MessageKind::Initial,
        follow_up_number: None,
        variant: None,
        pii: Pii::message("Hi there"),
    })
}

fn sent(draft_id: Uuid, sent_at: DateTime<Utc>) -> LeadEvent {
    LeadEvent::MessageSent(MessageSent {
        account_id: AccountId::parse("primary").unwrap(),
        kind: MessageKind::Initial,
        provider_message_id: format!("m-{draft_id}"),
        draft_id,
        slot_id: Uuid::new_v4(),
        follow_up_number: None,
        variant: None,
        sent_at,
        pii: Pii::message("Hi there"),
    })
}

fn replied(received_at: DateTime<Utc>) -> LeadEvent {
    LeadEvent::ResponseReceived(ResponseReceived {
        response_number: 1,
        provider_message_id: None,
        received_at,
        pii: Pii::reply("Sounds great"),
    })
}

fn analysed() -> LeadEvent {
    LeadEvent::ResponseAnalysed(ResponseAnalysed {
        response_number: 1,
        sentiment: Sentiment::Positive,
        intent: Intent::Interested,
        confidence: Confidence::parse(0.8).unwrap(),
        pii: Pii::default(),
    })
}

/// A whole journey, one event an hour from `start`: discovered … reply analysed.
fn journey(
    lead_id: Uuid,
    n: usize,
    start: DateTime<Utc>,
) -> Vec<(LeadEvent, Actor, DateTime<Utc>)> {
    let draft_id = Uuid::new_v4();
    let hour = |h: i64| start + TimeDelta::hours(h);
    vec![
        (
            discovered(lead_id, n, "CTO", "Fjordbyte"),
            Actor::agent("lead_finder"),
            hour(0),
        ),
        (
            classified(Classification::Speaker),
            Actor::agent("lead_finder"),
            hour(1),
        ),
        (scored(8.25), Actor::agent("lead_finder"), hour(2)),
        (allocated(), Actor::agent("sales_manager"), hour(3)),
        (drafted(draft_id), Actor::agent("outreach"), hour(4)),
        (sent(draft_id, hour(5)), Actor::agent("outreach"), hour(5)),
        (replied(hour(6)), Actor::system("webhook"), hour(6)),
        (analysed(), Actor::agent("sales_manager"), hour(7)),
    ]
}

fn new_event(event: &LeadEvent, actor: &Actor, time: DateTime<Utc>, correlation: Uuid) -> NewEvent {
    event.to_new_event(Metadata::new(actor.clone(), time).with_correlation(correlation))
}

/// Appends events to a lead's stream, one append each (so they interleave with other leads').
async fn append_one(
    store: &Store,
    lead_id: Uuid,
    event: &LeadEvent,
    actor: &Actor,
    time: DateTime<Utc>,
) {
    store
        .append(
            &lead_stream(lead_id),
            ExpectedVersion::Any,
            vec![new_event(event, actor, time, lead_id)],
        )
        .await
        .unwrap();
}

async fn append_journey(
    store: &Store,
    lead_id: Uuid,
    events: &[(LeadEvent, Actor, DateTime<Utc>)],
) {
    for (event, actor, time) in events {
        append_one(store, lead_id, event, actor, *time).await;
    }
}

/// Reserves the lead's URL the way the Lead Finder does (so audits can find it by URL).
async fn reserve_url(store: &Store, lead_id: Uuid, n: usize) {
    let url = url_of(n);
    let event = UrlReservationEvent::UrlReserved(UrlReserved::new(lead_id, &url));
    store
        .append(
            &url_stream(&url),
            ExpectedVersion::NoStream,
            vec![event.to_new_event(Metadata::new(Actor::agent("lead_finder"), at(1, 8)))],
        )
        .await
        .unwrap();
}

/// Every event committed, counted directly (the whole-log reader may lag behind the horizon).
async fn committed(store: &Store) -> usize {
    let count: i64 = match store {
        Store::Postgres(pg) => sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(pg.pool())
            .await
            .unwrap(),
        Store::Sqlite(lite) => sqlx::query_scalar("SELECT COUNT(*) FROM events")
            .fetch_one(lite.read_pool())
            .await
            .unwrap(),
    };
    count as usize
}

async fn read_everything(store: &Store) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    let mut after = Checkpoint::START;
    loop {
        let batch = store.read_all(after, 1000).await.unwrap();
        let Some(last) = batch.last() else { return all };
        after = last.checkpoint();
        all.extend(batch);
    }
}

/// Waits until the whole-log reader sees `expected` events. PostgreSQL's visibility horizon is
/// cluster-wide: a test in another database may hold it back for a moment.
async fn settle_log(store: &Store, expected: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while read_everything(store).await.len() < expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the log never showed {expected} events"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Catches the subscription up until it handled `expected` events in all.
async fn catch_up(subscription: &Subscription, expected: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut handled = 0;
    loop {
        let pass = subscription.catch_up().await.unwrap();
        handled += pass.handled + pass.parked;
        if handled >= expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "handled {handled} of {expected}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn live(store: &Store, handler: Arc<LeadTableHandler>) -> Subscription {
    Subscription::new(SUBSCRIPTION_NAME, store.clone(), handler).with_options(options())
}

/// The row of every lead in the log, folded from its stream: what the table must hold.
async fn expected_rows(store: &Store) -> Vec<LeadRow> {
    let mut by_lead: std::collections::BTreeMap<String, Vec<RecordedEvent>> = Default::default();
    for event in read_everything(store).await {
        if event.stream_id.starts_with("lead-") {
            by_lead
                .entry(event.stream_id.clone())
                .or_default()
                .push(event);
        }
    }
    by_lead
        .into_iter()
        .map(|(stream, mut events)| {
            events.sort_by_key(|event| event.stream_version);
            let lead_id = Uuid::parse_str(&stream["lead-".len()..]).unwrap();
            LeadRow::from_events(lead_id, &events).unwrap()
        })
        .collect()
}

async fn table_rows(store: &Store) -> Vec<LeadRow> {
    let page = list_leads(
        store,
        &LeadFilter::default(),
        Page {
            limit: 10_000,
            offset: 0,
        },
        LeadOrder::LeadId,
    )
    .await
    .unwrap();
    assert_eq!(page.total as usize, page.rows.len());
    page.rows
}

mod suite {
    use super::*;

    pub async fn a_journey_fills_the_row(store: &Store) {
        let lead_id = Uuid::new_v4();
        let events = journey(lead_id, 1, at(2, 9));
        append_journey(store, lead_id, &events).await;
        // Events of other streams are ignored.
        reserve_url(store, lead_id, 1).await;
        settle_log(store, events.len() + 1).await;
        let handler = Arc::new(LeadTableHandler::new());
        catch_up(&live(store, handler), events.len() as u64 + 1).await;

        let row = get_lead(store, lead_id)
            .await
            .unwrap()
            .expect("the lead has a row");
        assert_eq!(row.contact_status, LeadStatus::Responded);
        assert_eq!(row.name, "Person 1");
        assert_eq!(row.linkedin_url, "https://www.linkedin.com/in/person-1");
        assert_eq!(row.classification, "Speaker");
        assert_eq!(row.quality_score, Some(8.25));
        assert_eq!(row.last_contacted, Some(at(2, 14)));
        assert_eq!(row.message_sent, "Hi there");
        assert_eq!(row.response, "Sounds great");
        assert_eq!(row.response_sentiment, "Positive");
        assert_eq!(row.response_intent, "Interested");
        assert_eq!(row.assigned_to, "outreach");
        assert_eq!(row.version, 8);
        assert_eq!(row.updated_at, Some(at(2, 16)));
        assert_eq!(vec![row], expected_rows(store).await);
        assert_eq!(get_lead(store, Uuid::new_v4()).await.unwrap(), None);
    }

    pub async fn a_redelivered_batch_changes_nothing(store: &Store) {
        let leads: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        for (n, lead_id) in leads.iter().enumerate() {
            append_journey(store, *lead_id, &journey(*lead_id, n, at(2, 9))).await;
        }
        settle_log(store, 24).await;
        catch_up(&live(store, Arc::new(LeadTableHandler::new())), 24).await;
        let before = dump_table(store, LEADS_TABLE).await.unwrap();
        assert_eq!(before.len(), 3);

        // A second subscription over the same table delivers every event again.
        let again = Arc::new(LeadTableHandler::new());
        let redelivery = Subscription::new("leads-redelivery", store.clone(), again.clone())
            .with_options(options());
        catch_up(&redelivery, 24).await;
        assert!(again.batches() >= 1, "the events were delivered again");
        assert_eq!(dump_table(store, LEADS_TABLE).await.unwrap(), before);
    }

    /// Fails its first attempt after the lead table handler wrote its rows; on the retry it
    /// looks at the database from outside the transaction first.
    struct FailsOnceAfterWriting {
        inner: LeadTableHandler,
        calls: AtomicU32,
        seen_on_retry: std::sync::Mutex<Option<(Option<LeadRow>, Checkpoint)>>,
        lead_id: Uuid,
    }

    #[async_trait]
    impl Handler for FailsOnceAfterWriting {
        async fn handle(
            &self,
            _: &RecordedEvent,
            _: &mut HandlerContext,
        ) -> Result<(), HandlerError> {
            unreachable!("handle_batch is overridden")
        }

        async fn handle_batch(
            &self,
            events: &[RecordedEvent],
            context: &mut HandlerContext,
        ) -> Result<(), (usize, HandlerError)> {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            if call == 1 {
                let store = context.store().clone();
                let row = get_lead(&store, self.lead_id).await.unwrap();
                let checkpoint = stored_checkpoint(&store, SUBSCRIPTION_NAME).await.unwrap();
                *self.seen_on_retry.lock().unwrap() = Some((row, checkpoint));
            }
            self.inner.handle_batch(events, context).await?;
            if call == 0 {
                return Err((0, "the projection failed after writing".into()));
            }
            Ok(())
        }
    }

    pub async fn rows_and_checkpoint_commit_together(store: &Store) {
        let lead_id = Uuid::new_v4();
        append_one(
            store,
            lead_id,
            &discovered(lead_id, 1, "CTO", "Fjordbyte"),
            &Actor::agent("lead_finder"),
            at(2, 9),
        )
        .await;
        settle_log(store, 1).await;
        let handler = Arc::new(FailsOnceAfterWriting {
            inner: LeadTableHandler::new(),
            calls: AtomicU32::new(0),
            seen_on_retry: Default::default(),
            lead_id,
        });
        let subscription = Subscription::new(SUBSCRIPTION_NAME, store.clone(), handler.clone())
            .with_options(options());
        catch_up(&subscription, 1).await;

        let (row, checkpoint) = handler
            .seen_on_retry
            .lock()
            .unwrap()
            .clone()
            .expect("retried");
        assert_eq!(row, None, "the failed attempt's row was rolled back");
        assert_eq!(checkpoint, Checkpoint::START, "and so was its checkpoint");
        let row = get_lead(store, lead_id)
            .await
            .unwrap()
            .expect("the retry committed");
        assert_eq!(row.version, 1);
        let last = read_everything(store).await.last().unwrap().checkpoint();
        assert_eq!(
            stored_checkpoint(store, SUBSCRIPTION_NAME).await.unwrap(),
            last
        );
    }

    pub async fn a_batch_costs_one_load_and_one_upsert(store: &Store) {
        // 50 leads × 10 events, interleaved: round k appends every lead's k-th event.
        let leads: Vec<Uuid> = (0..50).map(|_| Uuid::new_v4()).collect();
        let journeys: Vec<_> = leads
            .iter()
            .enumerate()
            .map(|(n, id)| {
                let mut events = journey(*id, n, at(3, 9));
                events.push((
                    LeadEvent::NoteAdded(NoteAdded {
                        pii: Pii::note(format!("note {n}")),
                    }),
                    Actor::human("alice"),
                    at(3, 18),
                ));
                events.push((
                    LeadEvent::NoteAdded(NoteAdded {
                        pii: Pii::note("second"),
                    }),
                    Actor::human("alice"),
                    at(3, 19),
                ));
                events
            })
            .collect();
        for round in 0..10 {
            for (lead_id, events) in leads.iter().zip(&journeys) {
                let (event, actor, time) = &events[round];
                append_one(store, *lead_id, event, actor, *time).await;
            }
        }
        settle_log(store, 500).await;
        let handler = Arc::new(LeadTableHandler::new());
        let subscription = live(store, handler.clone());
        catch_up(&subscription, 500).await;
        assert_eq!(handler.batches(), 1, "500 events are one batch");
        assert_eq!(handler.upsert_statements(), 1, "50 rows, one upsert");
        assert_eq!(
            handler.load_queries(),
            0,
            "every lead starts in this batch: nothing to load"
        );
        assert_eq!(table_rows(store).await, expected_rows(store).await);

        // One more event for each lead: their rows are loaded in one query.
        for lead_id in &leads {
            append_one(
                store,
                *lead_id,
                &LeadEvent::NoteAdded(NoteAdded {
                    pii: Pii::note("third"),
                }),
                &Actor::human("bob"),
                at(4, 9),
            )
            .await;
        }
        settle_log(store, 550).await;
        catch_up(&subscription, 50).await;
        assert_eq!(handler.batches(), 2);
        assert_eq!(handler.load_queries(), 1);
        assert_eq!(handler.upsert_statements(), 2);
        let rows = table_rows(store).await;
        assert_eq!(rows, expected_rows(store).await);
        assert!(
            rows.iter()
                .all(|row| row.version == 11 && row.notes.ends_with("second\nthird"))
        );
    }

    /// A mixed log: journeys, a forgotten lead, URL reservations and a department event.
    async fn mixed_log(store: &Store) -> (Vec<Uuid>, Uuid) {
        let leads: Vec<Uuid> = (0..12).map(|_| Uuid::new_v4()).collect();
        for (n, lead_id) in leads.iter().enumerate() {
            reserve_url(store, *lead_id, n).await;
            let mut events = journey(*lead_id, n, at(2, 9) + TimeDelta::minutes(n as i64));
            events.truncate(3 + n % 6);
            append_journey(store, *lead_id, &events).await;
        }
        store
            .append(
                "department",
                ExpectedVersion::Any,
                vec![NewEvent::new(
                    "strategy_update",
                    serde_json::json!({"note": "x"}),
                    Metadata::new(Actor::agent("sales_manager"), at(2, 20)),
                )],
            )
            .await
            .unwrap();
        let forgotten = leads[5];
        store.forget_subject(&lead_stream(forgotten)).await.unwrap();
        append_one(
            store,
            forgotten,
            &LeadEvent::LeadForgotten(LeadForgotten {}),
            &Actor::human("dpo"),
            at(3, 9),
        )
        .await;
        (leads, forgotten)
    }

    pub async fn a_rebuild_equals_the_live_table_byte_for_byte(store: &Store) {
        let (leads, forgotten) = mixed_log(store).await;
        let total = committed(store).await;
        settle_log(store, total).await;
        catch_up(
            &live(store, Arc::new(LeadTableHandler::new())),
            total as u64,
        )
        .await;
        let live_dump = dump_table(store, LEADS_TABLE).await.unwrap();
        assert_eq!(live_dump.len(), leads.len());

        let report = rebuild_leads(store).await.unwrap();
        assert_eq!(report.leads as usize, leads.len());
        assert_eq!(report.events as usize, total);
        let first = dump_table(store, LEADS_TABLE).await.unwrap();
        assert_eq!(first, live_dump, "the rebuild equals the live table");
        let report = rebuild_leads_with(
            store,
            RebuildOptions {
                batch_size: 7,
                ..RebuildOptions::default()
            },
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!(report.leads as usize, leads.len());
        let second = dump_table(store, LEADS_TABLE).await.unwrap();
        assert_eq!(first, second, "rebuilding twice gives the same bytes");
        assert_eq!(table_rows(store).await, expected_rows(store).await);

        // The forgotten lead's personal columns are blank; the rest stays.
        let row = get_lead(store, forgotten).await.unwrap().unwrap();
        assert!(row.forgotten);
        assert_eq!((row.name.as_str(), row.linkedin_url.as_str()), ("", ""));
        assert_eq!(
            (row.position.as_str(), row.company.as_str()),
            ("CTO", "Fjordbyte")
        );
        let other = get_lead(store, leads[4]).await.unwrap().unwrap();
        assert_eq!(other.name, "Person 4");

        // The swap left the schema as the migration made it: the same index names.
        let indexes = index_names(store).await;
        for name in [
            "leads_contact_status_updated_at_lead_id_idx",
            "leads_classification_updated_at_lead_id_idx",
            "leads_quality_score_lead_id_idx",
            "leads_updated_at_lead_id_idx",
        ] {
            assert!(
                indexes.contains(&name.to_owned()),
                "{name} missing from {indexes:?}"
            );
        }
        assert!(
            !indexes.iter().any(|name| name.contains("rebuild")),
            "{indexes:?}"
        );
    }

    async fn index_names(store: &Store) -> Vec<String> {
        match store {
            Store::Postgres(pg) => sqlx::query_scalar(
                "SELECT indexname::text FROM pg_indexes WHERE tablename = 'leads'",
            )
            .fetch_all(pg.pool())
            .await
            .unwrap(),
            Store::Sqlite(lite) => sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'leads'",
            )
            .fetch_all(lite.read_pool())
            .await
            .unwrap(),
        }
    }

    pub async fn a_rebuild_under_live_traffic_loses_nothing(store: &Store) {
        let handler = Arc::new(LeadTableHandler::new());
        let subscription = Arc::new(live(store, handler));
        let cancel = tokio_util::sync::CancellationToken::new();
        let runner = {
            let subscription = subscription.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move { subscription.run(cancel).await })
        };
        let appender = {
            let store = store.clone();
            tokio::spawn(async move {
                let leads: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
                for round in 0..8 {
                    for (n, lead_id) in leads.iter().enumerate() {
                        let events = journey(*lead_id, n, at(5, 9));
                        let (event, actor, time) = &events[round];
                        append_one(&store, *lead_id, event, actor, *time).await;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                leads
            })
        };
        // Rebuild again and again while events arrive and the live subscription handles them.
        let small = RebuildOptions {
            batch_size: 16,
            ..RebuildOptions::default()
        };
        let mut rebuilds = 0;
        while !appender.is_finished() || rebuilds < 2 {
            rebuild_leads_with(store, small, |_| {}).await.unwrap();
            rebuilds += 1;
        }
        let leads = appender.await.unwrap();
        rebuild_leads_with(store, small, |_| {}).await.unwrap();

        // The live subscription catches up with the table it now writes to.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let rows = table_rows(store).await;
            if rows.len() == leads.len() && rows.iter().all(|row| row.version == 8) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "rows never caught up: {rows:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let settled = stored_checkpoint(store, SUBSCRIPTION_NAME).await.unwrap();
        let head = read_everything(store).await.last().unwrap().checkpoint();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut checkpoint = settled;
        while checkpoint < head {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
            checkpoint = stored_checkpoint(store, SUBSCRIPTION_NAME).await.unwrap();
        }
        cancel.cancel();
        runner.await.unwrap().unwrap();
        assert!(rebuilds >= 2);
        assert_eq!(table_rows(store).await, expected_rows(store).await);
    }

    pub async fn list_filters_and_pages(store: &Store) {
        let specs = [
            ("CTO", "Fjordbyte", Classification::Speaker, 9.0, true),
            (
                "Head of DevRel",
                "Nordic Cloud",
                Classification::Sponsor,
                7.5,
                true,
            ),
            ("Engineer", "Fjordbyte", Classification::Speaker, 6.0, false),
            ("CMO", "Acme_Data", Classification::Sponsor, 8.0, false),
            ("Student", "Uni", Classification::Other, 2.0, false),
        ];
        let mut ids = Vec::new();
        for copy in 0..3 {
            for (n, (position, company, classification, score, allocate)) in
                specs.iter().enumerate()
            {
                let lead_id = Uuid::new_v4();
                let number = copy * 10 + n;
                append_one(
                    store,
                    lead_id,
                    &discovered(lead_id, number, position, company),
                    &Actor::agent("lead_finder"),
                    at(2, 9),
                )
                .await;
                append_one(
                    store,
                    lead_id,
                    &classified(*classification),
                    &Actor::agent("lead_finder"),
                    at(2, 10 + n as u32),
                )
                .await;
                append_one(
                    store,
                    lead_id,
                    &scored(*score),
                    &Actor::agent("lead_finder"),
                    at(2, 10 + n as u32),
                )
                .await;
                if *allocate {
                    append_one(
                        store,
                        lead_id,
                        &allocated(),
                        &Actor::agent("sales_manager"),
                        at(3, 9),
                    )
                    .await;
                }
                ids.push(lead_id);
            }
        }
        let total = committed(store).await;
        settle_log(store, total).await;
        catch_up(
            &live(store, Arc::new(LeadTableHandler::new())),
            total as u64,
        )
        .await;

        let all = Page {
            limit: 100,
            offset: 0,
        };
        let count = |filter: LeadFilter| async move {
            list_leads(store, &filter, all, LeadOrder::LeadId)
                .await
                .unwrap()
        };
        assert_eq!(count(LeadFilter::default()).await.total, 15);
        let allocated = count(LeadFilter {
            status: Some(LeadStatus::Allocated),
            ..Default::default()
        })
        .await;
        assert_eq!(allocated.total, 6);
        assert!(
            allocated
                .rows
                .iter()
                .all(|row| row.contact_status == LeadStatus::Allocated)
        );
        assert_eq!(
            count(LeadFilter {
                classification: Some("Sponsor".into()),
                ..Default::default()
            })
            .await
            .total,
            6
        );
        let scored = count(LeadFilter {
            min_score: Some(7.5),
            max_score: Some(8.0),
            ..Default::default()
        })
        .await;
        assert_eq!(scored.total, 6);
        assert!(
            scored
                .rows
                .iter()
                .all(|row| (7.5..=8.0).contains(&row.quality_score.unwrap()))
        );
        // Search is case-insensitive over name, company and position; wildcards are literal.
        assert_eq!(
            count(LeadFilter {
                search: Some("fjordBYTE".into()),
                ..Default::default()
            })
            .await
            .total,
            6
        );
        assert_eq!(
            count(LeadFilter {
                search: Some("devrel".into()),
                ..Default::default()
            })
            .await
            .total,
            3
        );
        assert_eq!(
            count(LeadFilter {
                search: Some("person 12".into()),
                ..Default::default()
            })
            .await
            .total,
            1
        );
        assert_eq!(
            count(LeadFilter {
                search: Some("acme_".into()),
                ..Default::default()
            })
            .await
            .total,
            3
        );
        assert_eq!(
            count(LeadFilter {
                search: Some("e_d".into()),
                ..Default::default()
            })
            .await
            .total,
            3
        );
        assert_eq!(
            count(LeadFilter {
                search: Some("%".into()),
                ..Default::default()
            })
            .await
            .total,
            0
        );
        let combined = count(LeadFilter {
            status: Some(LeadStatus::New),
            classification: Some("Speaker".into()),
            search: Some("engineer".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(combined.total, 3);

        // Pages in score order never overlap and cover everything.
        let mut seen = Vec::new();
        for offset in (0..15).step_by(4) {
            let page = list_leads(
                store,
                &LeadFilter::default(),
                Page { limit: 4, offset },
                LeadOrder::ScoreDesc,
            )
            .await
            .unwrap();
            assert_eq!(page.total, 15);
            assert!(page.rows.len() <= 4);
            seen.extend(page.rows);
        }
        assert_eq!(seen.len(), 15);
        let scores: Vec<f64> = seen.iter().map(|row| row.quality_score.unwrap()).collect();
        assert!(
            scores.windows(2).all(|pair| pair[0] >= pair[1]),
            "{scores:?}"
        );
        let mut unique: Vec<Uuid> = seen.iter().map(|row| row.lead_id).collect();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 15);
        let past_the_end = list_leads(
            store,
            &LeadFilter::default(),
            Page {
                limit: 4,
                offset: 40,
            },
            LeadOrder::NameAsc,
        )
        .await
        .unwrap();
        assert!(past_the_end.rows.is_empty());
        assert_eq!(past_the_end.total, 15);
    }

    pub async fn audits_filter_by_time_actor_and_type(store: &Store) {
        let (leads, forgotten) = mixed_log(store).await;
        settle_log(store, committed(store).await).await;
        let all = read_everything(store).await;
        let collect = |filter: AuditFilter| async move {
            let mut entries = Vec::new();
            audit_events(store, &filter, |entry| {
                entries.push(entry);
                Ok::<_, salesdept_projections::audit::AuditError>(())
            })
            .await
            .unwrap();
            entries
        };
        assert_eq!(collect(AuditFilter::default()).await.len(), all.len());
        let from = at(2, 10);
        let to = at(2, 12);
        let window = collect(AuditFilter {
            from: Some(from),
            to: Some(to),
            ..Default::default()
        })
        .await;
        let expected: Vec<Uuid> = all
            .iter()
            .filter(|event| event.metadata.occurred_at >= from && event.metadata.occurred_at <= to)
            .map(|event| event.event_id)
            .collect();
        assert!(!expected.is_empty());
        assert_eq!(
            window
                .iter()
                .map(|entry| entry.event.event_id)
                .collect::<Vec<_>>(),
            expected
        );
        let by_manager = collect(AuditFilter {
            actor: Some(Actor::agent("sales_manager")),
            ..Default::default()
        })
        .await;
        assert!(!by_manager.is_empty());
        assert!(
            by_manager
                .iter()
                .all(|entry| entry.event.metadata.actor == Actor::agent("sales_manager"))
        );
        assert_eq!(
            by_manager.len(),
            all.iter()
                .filter(|event| event.metadata.actor == Actor::agent("sales_manager"))
                .count()
        );
        let classified = collect(AuditFilter {
            event_type: Some("lead_classified".into()),
            ..Default::default()
        })
        .await;
        assert_eq!(classified.len(), leads.len());
        assert!(
            classified
                .iter()
                .all(|entry| entry.summary == "classified Speaker (confidence 0.90)")
        );
        let none = collect(AuditFilter {
            actor: Some(Actor::human("dpo")),
            event_type: Some("lead_classified".into()),
            ..Default::default()
        })
        .await;
        assert!(none.is_empty());

        // A lead's history, by id and by URL; the forgotten lead's personal fields say so.
        let history = lead_history(store, leads[4]).await.unwrap();
        assert_eq!(history.len(), 7);
        assert_eq!(
            history[0].summary,
            "discovered Person 4, CTO at Fjordbyte (search)"
        );
        assert_eq!(history[5].summary, "message sent via primary (initial)");
        assert_eq!(history[6].summary, "reply 1 received: Sounds great");
        assert_eq!(
            resolve_lead(store, "https://linkedin.com/in/Person-4/")
                .await
                .unwrap(),
            leads[4]
        );
        assert_eq!(
            resolve_lead(store, &lead_stream(leads[4])).await.unwrap(),
            leads[4]
        );
        assert!(
            resolve_lead(store, "https://www.linkedin.com/in/nobody")
                .await
                .is_err()
        );
        let forgotten_history = lead_history(store, forgotten).await.unwrap();
        assert_eq!(
            forgotten_history[0].summary,
            "discovered forgotten, CTO at Fjordbyte (search)"
        );
        assert!(
            forgotten_history
                .iter()
                .all(|entry| !entry.summary.contains("Person 5"))
        );
        assert_eq!(
            forgotten_history.last().unwrap().event.event_type,
            "lead_forgotten"
        );

        // The cursor pages through a query without gaps or repeats.
        let mut query = EventQuery {
            stream_prefix: Some("lead-".into()),
            order: EventOrder::Stream,
            limit: 5,
            ..EventQuery::default()
        };
        let mut paged = Vec::new();
        loop {
            let page = store.query_events(&query).await.unwrap();
            let Some(last) = page.last() else { break };
            query.after = EventCursor::after(last, EventOrder::Stream);
            paged.extend(page);
        }
        let lead_events = all
            .iter()
            .filter(|event| event.stream_id.starts_with("lead-"))
            .count();
        assert_eq!(paged.len(), lead_events);
        assert!(
            paged
                .windows(2)
                .all(|pair| (&pair[0].stream_id, pair[0].stream_version)
                    < (&pair[1].stream_id, pair[1].stream_version))
        );
    }

    pub async fn time_travel_folds_up_to_a_time(store: &Store) {
        let early = Uuid::new_v4();
        let late = Uuid::new_v4();
        append_journey(store, early, &journey(early, 1, at(2, 9))).await;
        let mut review = journey(late, 2, at(3, 9));
        review.truncate(5);
        let draft_id = match &review[4].0 {
            LeadEvent::MessageDrafted(draft) => draft.draft_id,
            _ => unreachable!(),
        };
        review.push((
            LeadEvent::ReviewRequested(ReviewRequested {
                draft_id,
                pii: Pii::note("check tone"),
            }),
            Actor::agent("outreach"),
            at(3, 15),
        ));
        append_journey(store, late, &review).await;

        assert_eq!(
            lead_as_of(store, early, at(2, 8)).await.unwrap(),
            None,
            "not discovered yet"
        );
        let (row, state) = lead_as_of(store, early, at(2, 10)).await.unwrap().unwrap();
        assert_eq!(row.classification, "Speaker");
        assert_eq!(row.quality_score, None);
        assert_eq!(row.version, 2);
        assert_eq!(
            state.classification.map(|(class, _)| class),
            Some(Classification::Speaker)
        );
        let (row, state) = lead_as_of(store, early, at(2, 14)).await.unwrap().unwrap();
        assert_eq!(row.contact_status, LeadStatus::Sent);
        assert_eq!(state.status, LeadStatus::Sent);
        let (row, _) = lead_as_of(store, early, at(9, 0)).await.unwrap().unwrap();
        assert_eq!(row.contact_status, LeadStatus::Responded);

        let table = table_as_of(store, at(2, 12)).await.unwrap();
        assert_eq!(table.len(), 1, "the late lead did not exist yet");
        assert_eq!(table[0].lead_id, early);
        assert_eq!(table[0].contact_status, LeadStatus::Allocated);
        let table = table_as_of(store, at(3, 16)).await.unwrap();
        assert_eq!(table.len(), 2);
        let late_row = table.iter().find(|row| row.lead_id == late).unwrap();
        assert_eq!(late_row.contact_status, LeadStatus::InReview);
        let mut sorted: Vec<String> = table.iter().map(|row| row.lead_id.to_string()).collect();
        sorted.sort();
        assert_eq!(
            table
                .iter()
                .map(|row| row.lead_id.to_string())
                .collect::<Vec<_>>(),
            sorted,
            "in lead id order"
        );
        // Now is the live table.
        settle_log(store, committed(store).await).await;
        let now = table_as_of(store, at(30, 0)).await.unwrap();
        assert_eq!(now, expected_rows(store).await);
    }
}

macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod postgres {
            use super::*;
            $(
                #[sqlx::test(migrations = "../../migrations/postgres")]
                async fn $name(pool: PgPool) {
                    suite::$name(&pg_store(pool)).await;
                }
            )*
        }
        mod sqlite {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    suite::$name(&sqlite_store(&dir).await).await;
                }
            )*
        }
    };
}

both_stores!(
    a_journey_fills_the_row,
    a_redelivered_batch_changes_nothing,
    rows_and_checkpoint_commit_together,
    a_batch_costs_one_load_and_one_upsert,
    a_rebuild_equals_the_live_table_byte_for_byte,
    a_rebuild_under_live_traffic_loses_nothing,
    list_filters_and_pages,
    audits_filter_by_time_actor_and_type,
    time_travel_folds_up_to_a_time,
);

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_runs_one_rebuild_at_a_time(pool: PgPool) {
    let store = pg_store(pool.clone());
    let lead_id = Uuid::new_v4();
    append_journey(&store, lead_id, &journey(lead_id, 1, at(2, 9))).await;
    // Another process holds the rebuild's lock: this rebuild refuses to start.
    let mut other = pool.acquire().await.unwrap();
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(7810756212804252258)")
        .fetch_one(&mut *other)
        .await
        .unwrap();
    assert!(locked);
    let refused = rebuild_leads(&store).await;
    assert!(
        matches!(
            refused,
            Err(salesdept_projections::ProjectionError::RebuildRunning)
        ),
        "{refused:?}"
    );
    sqlx::query("SELECT pg_advisory_unlock(7810756212804252258)")
        .execute(&mut *other)
        .await
        .unwrap();
    drop(other);
    settle_log(&store, 8).await;
    let report = rebuild_leads(&store).await.unwrap();
    assert_eq!(report.leads, 1);
    // The lock was released: the next rebuild runs too.
    assert_eq!(rebuild_leads(&store).await.unwrap().leads, 1);
}

/// The lead list's common pages read their order off an index on SQLite (the embedded default):
/// no temporary B-tree sort for "most recently changed", overall or within a status or a
/// classification, nor for "best score first".
#[tokio::test]
async fn sqlite_list_orders_are_served_by_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_store(&dir).await;
    let Store::Sqlite(lite) = &store else {
        unreachable!("a SQLite store");
    };
    for query in [
        "SELECT * FROM leads WHERE 1 ORDER BY updated_at DESC, lead_id LIMIT 50",
        "SELECT * FROM leads WHERE 1 AND contact_status = 'New' \
         ORDER BY updated_at DESC, lead_id LIMIT 50",
        "SELECT * FROM leads WHERE 1 AND classification = 'Speaker' \
         ORDER BY updated_at DESC, lead_id LIMIT 50",
        "SELECT * FROM leads WHERE 1 ORDER BY quality_score DESC NULLS LAST, lead_id LIMIT 50",
    ] {
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {query}")))
                .fetch_all(lite.read_pool())
                .await
                .unwrap();
        let steps: Vec<&str> = plan.iter().map(|step| step.3.as_str()).collect();
        assert!(
            steps.iter().any(|step| step.contains("INDEX leads_"))
                && !steps.iter().any(|step| step.contains("TEMP B-TREE")),
            "{query}: {steps:?}"
        );
    }
}
