//! One conformance suite run against both stores: the real PostgreSQL on this machine (a fresh
//! database per test, `#[sqlx::test]`) and a SQLite file in a temporary directory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Utc;
use salesdept_events::store::{PostgresEventStore, SqliteEventStore};
use salesdept_events::subscription::{
    SubscriptionError, list_dead_letters, request_dead_letter_retry, stored_checkpoint,
};
use salesdept_events::{
    Actor, Checkpoint, EventStore, ExpectedVersion, Handler, HandlerContext, HandlerError,
    Metadata, NewEvent, RecordedEvent, Store, StoreError, StoreTx, Subscription,
    SubscriptionOptions, Upcasters,
};
use serde_json::json;
use sqlx::PgPool;

fn event(event_type: &str, n: i64) -> NewEvent {
    NewEvent::new(
        event_type,
        json!({ "n": n }),
        Metadata::new(Actor::agent("test"), Utc::now()),
    )
}

fn events(event_type: &str, range: std::ops::Range<i64>) -> Vec<NewEvent> {
    range.map(|n| event(event_type, n)).collect()
}

fn fast_options() -> SubscriptionOptions {
    SubscriptionOptions {
        batch_size: 7,
        max_attempts: 3,
        initial_backoff: std::time::Duration::from_millis(1),
        max_backoff: std::time::Duration::from_millis(5),
        poll_interval: std::time::Duration::from_millis(20),
        lease_ttl: std::time::Duration::from_secs(30),
        dead_letter_check_interval: std::time::Duration::ZERO,
    }
}

/// Reads the whole log once at least `expected` events are visible. PostgreSQL's visibility
/// horizon is cluster-wide, so a short transaction of a test running in parallel in another
/// database may hold readers back for a moment.
async fn read_settled(store: &Store, expected: usize) -> Vec<RecordedEvent> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let all = read_everything(store).await;
        if all.len() >= expected || tokio::time::Instant::now() > deadline {
            return all;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Catches up until `handled + parked` reaches `expected` (see [`read_settled`]).
async fn settle(
    subscription: &Subscription,
    expected: u64,
) -> salesdept_events::subscription::CatchUp {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut total = salesdept_events::subscription::CatchUp::default();
    loop {
        let pass = subscription.catch_up().await.unwrap();
        total.handled += pass.handled;
        total.parked += pass.parked;
        total.checkpoint = pass.checkpoint;
        if total.handled + total.parked >= expected || tokio::time::Instant::now() > deadline {
            return total;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

async fn read_everything(store: &Store) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    let mut after = Checkpoint::START;
    loop {
        let batch = store.read_all(after, 3).await.unwrap();
        let Some(last) = batch.last() else { return all };
        after = last.checkpoint();
        all.extend(batch);
    }
}

/// Records every event it sees; fails on events whose `n` is in `fail_on` while `failing` is set.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(String, i64)>>,
    fail_on: Vec<i64>,
    failing: std::sync::atomic::AtomicBool,
    calls: AtomicU64,
}

#[async_trait]
impl Handler for Recorder {
    async fn handle(
        &self,
        event: &RecordedEvent,
        _: &mut HandlerContext,
    ) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let n = event.data["n"].as_i64().unwrap_or(-1);
        if self.failing.load(Ordering::SeqCst) && self.fail_on.contains(&n) {
            return Err(format!("cannot handle n={n}").into());
        }
        self.seen.lock().unwrap().push((event.stream_id.clone(), n));
        Ok(())
    }
}

/// A SQL projection: one row per event, written in the subscription's transaction.
struct RowWriter {
    fail_on: i64,
}

#[async_trait]
impl Handler for RowWriter {
    async fn handle(
        &self,
        event: &RecordedEvent,
        context: &mut HandlerContext,
    ) -> Result<(), HandlerError> {
        let n = event.data["n"].as_i64().unwrap_or(-1);
        match context.transaction().await? {
            StoreTx::Postgres(tx) => {
                sqlx::query("INSERT INTO projected (n) VALUES ($1)")
                    .bind(n)
                    .execute(&mut **tx)
                    .await?;
            }
            StoreTx::Sqlite(tx) => {
                sqlx::query("INSERT INTO projected (n) VALUES (?1)")
                    .bind(n)
                    .execute(&mut **tx)
                    .await?;
            }
        }
        if n == self.fail_on {
            return Err("poison event".into());
        }
        Ok(())
    }
}

/// The same projection written once per batch: one INSERT for all rows of the batch.
struct BatchRowWriter {
    fail_on: i64,
    batches: AtomicU64,
}

#[async_trait]
impl Handler for BatchRowWriter {
    async fn handle(
        &self,
        event: &RecordedEvent,
        context: &mut HandlerContext,
    ) -> Result<(), HandlerError> {
        self.handle_batch(std::slice::from_ref(event), context)
            .await
            .map_err(|(_, error)| error)
    }

    async fn handle_batch(
        &self,
        events: &[RecordedEvent],
        context: &mut HandlerContext,
    ) -> Result<(), (usize, HandlerError)> {
        self.batches.fetch_add(1, Ordering::SeqCst);
        let mut numbers: Vec<i64> = events
            .iter()
            .map(|e| e.data["n"].as_i64().unwrap_or(-1))
            .collect();
        // The contract: on failure at `index`, the events before it are handled in this context.
        let poison = numbers.iter().position(|&n| n == self.fail_on);
        if let Some(index) = poison {
            numbers.truncate(index);
        }
        let list = serde_json::to_string(&numbers).unwrap();
        let tx = context
            .transaction()
            .await
            .map_err(|error| (0, error.into()))?;
        let written = match tx {
            StoreTx::Postgres(tx) => sqlx::query("INSERT INTO projected (n) SELECT value::bigint FROM jsonb_array_elements_text($1::jsonb)")
                .bind(&list).execute(&mut **tx).await.map(drop),
            StoreTx::Sqlite(tx) => sqlx::query("INSERT INTO projected (n) SELECT value FROM json_each(?1)")
                .bind(&list).execute(&mut **tx).await.map(drop),
        };
        written.map_err(|error| (0, error.into()))?;
        match poison {
            Some(index) => Err((index, "poison event".into())),
            None => Ok(()),
        }
    }
}

mod suite {
    use super::*;

    pub async fn append_and_read(store: &Store) {
        let first = store
            .append("lead-1", ExpectedVersion::NoStream, events("a", 0..3))
            .await
            .unwrap();
        assert_eq!(first.stream_version, 3);
        assert_eq!(first.global_positions.len(), 3);
        assert!(
            first
                .global_positions
                .windows(2)
                .all(|pair| pair[0] < pair[1])
        );
        store
            .append("lead-2", ExpectedVersion::Any, events("b", 0..2))
            .await
            .unwrap();
        let read = store.read_stream("lead-1", 1, None).await.unwrap();
        assert_eq!(
            read.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(
            read.iter()
                .map(|e| e.data["n"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert_eq!(read[0].metadata.actor, Actor::agent("test"));
        let from_two = store.read_stream("lead-1", 2, Some(1)).await.unwrap();
        assert_eq!(from_two.len(), 1);
        assert_eq!(from_two[0].stream_version, 2);
        assert_eq!(store.stream_version("lead-1").await.unwrap(), Some(3));
        assert_eq!(store.stream_version("nobody").await.unwrap(), None);
        assert!(
            store
                .read_stream("nobody", 1, None)
                .await
                .unwrap()
                .is_empty()
        );
    }

    pub async fn expected_version_rules(store: &Store) {
        store
            .append("s", ExpectedVersion::NoStream, events("a", 0..2))
            .await
            .unwrap();
        let conflict = |result: Result<_, StoreError>, expected_actual: Option<i64>| match result {
            Err(StoreError::Conflict {
                stream_id, actual, ..
            }) => {
                assert!(stream_id == "s" || stream_id == "t");
                assert_eq!(actual, expected_actual);
            }
            other => panic!("expected a conflict, got {other:?}"),
        };
        conflict(
            store
                .append("s", ExpectedVersion::NoStream, events("a", 2..3))
                .await,
            Some(2),
        );
        conflict(
            store
                .append("s", ExpectedVersion::Exact(1), events("a", 2..3))
                .await,
            Some(2),
        );
        conflict(
            store
                .append("s", ExpectedVersion::Exact(5), events("a", 2..3))
                .await,
            Some(2),
        );
        conflict(
            store
                .append("t", ExpectedVersion::Exact(1), events("a", 0..1))
                .await,
            None,
        );
        let ok = store
            .append("s", ExpectedVersion::Exact(2), events("a", 2..4))
            .await
            .unwrap();
        assert_eq!(ok.stream_version, 4);
        let any = store
            .append("s", ExpectedVersion::Any, events("a", 4..5))
            .await
            .unwrap();
        assert_eq!(any.stream_version, 5);
        // The conflict message names the stream, the expected and the actual version.
        let message = store
            .append("s", ExpectedVersion::Exact(3), events("a", 9..10))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("s") && message.contains("expected 3") && message.contains("actual 5"),
            "{message}"
        );
        let versions: Vec<i64> = store
            .read_stream("s", 1, None)
            .await
            .unwrap()
            .iter()
            .map(|e| e.stream_version)
            .collect();
        assert_eq!(versions, vec![1, 2, 3, 4, 5]);
    }

    pub async fn idempotent_reappend(store: &Store) {
        let batch = events("a", 0..3);
        let first = store
            .append("s", ExpectedVersion::NoStream, batch.clone())
            .await
            .unwrap();
        assert!(!first.already_stored);
        // A retried request: same ids, same content, same expectation.
        let again = store
            .append("s", ExpectedVersion::NoStream, batch.clone())
            .await
            .unwrap();
        assert!(again.already_stored);
        assert_eq!(again.global_positions, first.global_positions);
        assert_eq!(again.stream_version, 3);
        // Also when retried with Any or with the version it originally expected.
        assert!(
            store
                .append("s", ExpectedVersion::Any, batch.clone())
                .await
                .unwrap()
                .already_stored
        );
        assert_eq!(store.read_stream("s", 1, None).await.unwrap().len(), 3);
        assert_eq!(read_settled(store, 3).await.len(), 3);
        // Same id, different content: refused, nothing written.
        let mut tampered = batch[0].clone();
        tampered.data = json!({ "n": 99 });
        match store
            .append("s", ExpectedVersion::Any, vec![tampered])
            .await
        {
            Err(StoreError::DuplicateEventId { event_id, .. }) => {
                assert_eq!(event_id, batch[0].event_id)
            }
            other => panic!("expected a duplicate id error, got {other:?}"),
        }
        // Same id in another stream: refused.
        assert!(matches!(
            store
                .append("other", ExpectedVersion::Any, vec![batch[1].clone()])
                .await,
            Err(StoreError::DuplicateEventId { .. })
        ));
        assert_eq!(read_settled(store, 3).await.len(), 3);
    }

    pub async fn invalid_appends_are_refused(store: &Store) {
        assert!(matches!(
            store.append("s", ExpectedVersion::Any, vec![]).await,
            Err(StoreError::InvalidAppend(_))
        ));
        assert!(matches!(
            store
                .append(" ", ExpectedVersion::Any, events("a", 0..1))
                .await,
            Err(StoreError::InvalidAppend(_))
        ));
        let one = event("a", 1);
        assert!(matches!(
            store
                .append("s", ExpectedVersion::Any, vec![one.clone(), one])
                .await,
            Err(StoreError::InvalidAppend(_))
        ));
        assert!(read_everything(store).await.is_empty());
    }

    pub async fn read_all_from_checkpoint(store: &Store) {
        for stream in 0..5 {
            store
                .append(
                    &format!("s-{stream}"),
                    ExpectedVersion::NoStream,
                    events("a", 0..4),
                )
                .await
                .unwrap();
        }
        let all = read_settled(store, 20).await;
        assert_eq!(all.len(), 20);
        assert!(
            all.windows(2)
                .all(|pair| pair[0].checkpoint() < pair[1].checkpoint())
        );
        let middle = all[9].checkpoint();
        let text: Checkpoint = middle.to_string().parse().unwrap();
        let rest = store.read_all(text, 100).await.unwrap();
        assert_eq!(rest.len(), 10);
        assert_eq!(rest[0].event_id, all[10].event_id);
        assert!(
            store
                .read_all(all[19].checkpoint(), 100)
                .await
                .unwrap()
                .is_empty()
        );
        // Wake-ups change on append.
        let mut wake_ups = store.wake_ups();
        wake_ups.mark_unchanged();
        store
            .append("s-0", ExpectedVersion::Any, events("a", 4..5))
            .await
            .unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(2), wake_ups.changed())
            .await
            .unwrap()
            .unwrap();
    }

    pub async fn subscription_resumes_after_restart(store: &Store) {
        store
            .append("s-1", ExpectedVersion::NoStream, events("a", 0..10))
            .await
            .unwrap();
        let recorder = Arc::new(Recorder::default());
        let first = Subscription::new("resume", store.clone(), recorder.clone())
            .with_options(fast_options());
        let pass = settle(&first, 10).await;
        assert_eq!(pass.handled, 10);
        first.release_lease().await.unwrap();
        drop(first);
        store
            .append("s-2", ExpectedVersion::NoStream, events("b", 10..15))
            .await
            .unwrap();
        // A new runner (a restarted process) continues from the stored checkpoint.
        let second = Subscription::new("resume", store.clone(), recorder.clone())
            .with_options(fast_options());
        assert_eq!(settle(&second, 5).await.handled, 5);
        let seen: Vec<i64> = recorder
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(seen, (0..15).collect::<Vec<_>>());
        let checkpoint = stored_checkpoint(store, "resume").await.unwrap();
        assert_eq!(
            checkpoint,
            read_settled(store, 15).await.last().unwrap().checkpoint()
        );
        // Another subscription starts from the beginning.
        let other = Arc::new(Recorder::default());
        let fresh =
            Subscription::new("other", store.clone(), other.clone()).with_options(fast_options());
        assert_eq!(settle(&fresh, 15).await.handled, 15);
    }

    pub async fn only_one_runner_holds_the_lease(store: &Store) {
        store
            .append("s", ExpectedVersion::NoStream, events("a", 0..3))
            .await
            .unwrap();
        let holder = Subscription::new("leased", store.clone(), Arc::new(Recorder::default()))
            .with_options(fast_options());
        settle(&holder, 3).await;
        let rival_handler = Arc::new(Recorder::default());
        let rival = Subscription::new("leased", store.clone(), rival_handler.clone())
            .with_options(fast_options());
        assert!(matches!(
            rival.catch_up().await,
            Err(SubscriptionError::LeaseHeld { .. })
        ));
        assert_eq!(rival_handler.calls.load(Ordering::SeqCst), 0);
        holder.release_lease().await.unwrap();
        assert_eq!(rival.catch_up().await.unwrap().handled, 0);
    }

    pub async fn a_crashed_runners_lease_expires_and_is_fenced(store: &Store) {
        store
            .append("s", ExpectedVersion::NoStream, events("a", 0..3))
            .await
            .unwrap();
        let short_lease = SubscriptionOptions {
            lease_ttl: std::time::Duration::from_millis(300),
            ..fast_options()
        };
        let crashed_handler = Arc::new(Recorder::default());
        let crashed = Subscription::new("crash", store.clone(), crashed_handler.clone())
            .with_options(short_lease.clone());
        settle(&crashed, 3).await;
        // The runner dies without releasing its lease: a rival is refused until it expires.
        let rival_handler = Arc::new(Recorder::default());
        let rival = Subscription::new("crash", store.clone(), rival_handler.clone())
            .with_options(short_lease);
        assert!(matches!(
            rival.catch_up().await,
            Err(SubscriptionError::LeaseHeld { .. })
        ));
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        store
            .append("s", ExpectedVersion::Any, events("a", 3..5))
            .await
            .unwrap();
        assert_eq!(
            settle(&rival, 2).await.handled,
            2,
            "the rival takes over from the checkpoint"
        );
        // The old runner comes back: it cannot take the lease while the rival holds it, so it
        // never handles or checkpoints anything twice.
        assert!(matches!(
            crashed.catch_up().await,
            Err(SubscriptionError::LeaseHeld { .. })
        ));
        assert_eq!(crashed_handler.seen.lock().unwrap().len(), 3);
        let rival_seen: Vec<i64> = rival_handler
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(rival_seen, vec![3, 4]);
    }

    pub async fn failing_event_is_parked_and_subscription_moves_on(store: &Store) {
        store
            .append("s", ExpectedVersion::NoStream, events("a", 0..12))
            .await
            .unwrap();
        let recorder = Arc::new(Recorder {
            fail_on: vec![5],
            ..Recorder::default()
        });
        recorder.failing.store(true, Ordering::SeqCst);
        let subscription =
            Subscription::new("dlq", store.clone(), recorder.clone()).with_options(fast_options());
        let pass = settle(&subscription, 12).await;
        assert_eq!(pass.parked, 1);
        assert_eq!(pass.handled, 11);
        let seen: Vec<i64> = recorder
            .seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(seen, vec![0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11]);
        let parked = list_dead_letters(store, Some("dlq")).await.unwrap();
        assert_eq!(parked.len(), 1);
        assert_eq!(parked[0].attempts, 3);
        assert!(parked[0].error.contains("n=5"), "{}", parked[0].error);
        // Fixed, then retried on request: resolved, handled once more.
        recorder.failing.store(false, Ordering::SeqCst);
        assert!(
            request_dead_letter_retry(store, parked[0].id)
                .await
                .unwrap()
        );
        assert!(
            !request_dead_letter_retry(store, parked[0].id + 1000)
                .await
                .unwrap()
        );
        assert_eq!(subscription.catch_up().await.unwrap().handled, 1);
        assert!(
            list_dead_letters(store, Some("dlq"))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(recorder.seen.lock().unwrap().last().unwrap().1, 5);
    }

    pub async fn projection_rows_commit_with_the_checkpoint(store: &Store) {
        match store {
            Store::Postgres(s) => sqlx::query("CREATE TABLE projected (n bigint NOT NULL UNIQUE)")
                .execute(s.pool())
                .await
                .map(drop),
            Store::Sqlite(s) => sqlx::query("CREATE TABLE projected (n INTEGER NOT NULL UNIQUE)")
                .execute(s.write_pool())
                .await
                .map(drop),
        }
        .unwrap();
        store
            .append("s", ExpectedVersion::NoStream, events("a", 0..10))
            .await
            .unwrap();
        let subscription =
            Subscription::new("rows", store.clone(), Arc::new(RowWriter { fail_on: 4 }))
                .with_options(fast_options());
        let pass = settle(&subscription, 10).await;
        assert_eq!((pass.handled, pass.parked), (9, 1));
        let rows: Vec<i64> = match store {
            Store::Postgres(s) => {
                sqlx::query_scalar("SELECT n FROM projected ORDER BY n")
                    .fetch_all(s.pool())
                    .await
            }
            Store::Sqlite(s) => {
                sqlx::query_scalar("SELECT n FROM projected ORDER BY n")
                    .fetch_all(s.read_pool())
                    .await
            }
        }
        .unwrap();
        // The poison event's row was rolled back with its failed attempts; every other row is
        // there exactly once (the UNIQUE constraint would have failed a doubled write).
        assert_eq!(rows, vec![0, 1, 2, 3, 5, 6, 7, 8, 9]);
    }

    pub async fn batch_projection_writes_once_per_batch(store: &Store) {
        match store {
            Store::Postgres(s) => sqlx::query("CREATE TABLE projected (n bigint NOT NULL UNIQUE)")
                .execute(s.pool())
                .await
                .map(drop),
            Store::Sqlite(s) => sqlx::query("CREATE TABLE projected (n INTEGER NOT NULL UNIQUE)")
                .execute(s.write_pool())
                .await
                .map(drop),
        }
        .unwrap();
        store
            .append("s", ExpectedVersion::NoStream, events("a", 0..20))
            .await
            .unwrap();
        let handler = Arc::new(BatchRowWriter {
            fail_on: 9,
            batches: AtomicU64::new(0),
        });
        let subscription = Subscription::new("batched", store.clone(), handler.clone())
            .with_options(fast_options());
        let pass = settle(&subscription, 20).await;
        assert_eq!((pass.handled, pass.parked), (19, 1));
        let rows: Vec<i64> = match store {
            Store::Postgres(s) => {
                sqlx::query_scalar("SELECT n FROM projected ORDER BY n")
                    .fetch_all(s.pool())
                    .await
            }
            Store::Sqlite(s) => {
                sqlx::query_scalar("SELECT n FROM projected ORDER BY n")
                    .fetch_all(s.read_pool())
                    .await
            }
        }
        .unwrap();
        assert_eq!(rows, (0..20).filter(|&n| n != 9).collect::<Vec<_>>());
        // Batches of 7: far fewer handler calls than events, even with the retries of event 9.
        assert!(
            handler.batches.load(Ordering::SeqCst) < 12,
            "{}",
            handler.batches.load(Ordering::SeqCst)
        );
    }

    pub async fn personal_data_is_sealed_and_can_be_forgotten(store: &Store) {
        let vault = Arc::new(salesdept_events::pii_vault::PiiVault::new(
            salesdept_events::pii_vault::MasterKey::from_base64(
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            )
            .unwrap(),
        ));
        store.enable_pii_vault(vault);
        let lead = "lead-6f1c2d5e-0000-4000-8000-000000000001";
        let discovered = NewEvent::new(
            "lead_discovered",
            json!({ "position": "CTO", "pii": { "name": "Maya Lindqvist", "linkedin_url": "https://www.linkedin.com/in/maya" } }),
            Metadata::new(Actor::agent("lead_finder"), Utc::now()),
        );
        let claim = NewEvent::new(
            "url_reserved",
            json!({ "lead_id": "6f1c2d5e-0000-4000-8000-000000000001", "pii": { "linkedin_url": "https://www.linkedin.com/in/maya" } }),
            Metadata::new(Actor::agent("lead_finder"), Utc::now()),
        );
        store
            .append("linkedin-url-abc", ExpectedVersion::NoStream, vec![claim])
            .await
            .unwrap();
        store
            .append(lead, ExpectedVersion::NoStream, vec![discovered.clone()])
            .await
            .unwrap();
        // A retried append of the same event is still recognised (the seal is not deterministic).
        assert!(
            store
                .append(lead, ExpectedVersion::Any, vec![discovered])
                .await
                .unwrap()
                .already_stored
        );

        // At rest, no personal field is readable; through the store, all are.
        let raw: Vec<String> = match store {
            Store::Postgres(s) => {
                sqlx::query_scalar("SELECT data::text FROM events ORDER BY global_position")
                    .fetch_all(s.pool())
                    .await
            }
            Store::Sqlite(s) => {
                sqlx::query_scalar("SELECT data FROM events ORDER BY global_position")
                    .fetch_all(s.read_pool())
                    .await
            }
        }
        .unwrap();
        assert_eq!(raw.len(), 2);
        for row in &raw {
            assert!(
                !row.contains("Maya") && !row.contains("linkedin.com"),
                "personal data at rest: {row}"
            );
        }
        assert!(raw[1].contains("CTO"), "non-personal fields stay queryable");
        let read = store.read_stream(lead, 1, None).await.unwrap();
        assert_eq!(read[0].data["pii"]["name"], "Maya Lindqvist");
        let all = read_settled(store, 2).await;
        assert_eq!(
            all[0].data["pii"]["linkedin_url"],
            "https://www.linkedin.com/in/maya"
        );

        // Forgotten: the events stay, the person's data is unreadable, new data is dropped.
        store.forget_subject(lead).await.unwrap();
        store
            .append(
                lead,
                ExpectedVersion::Any,
                vec![NewEvent::new(
                    "note_added",
                    json!({ "pii": { "note": "called Maya" } }),
                    Metadata::new(Actor::human("alice"), Utc::now()),
                )],
            )
            .await
            .unwrap();
        let after = store.read_stream(lead, 1, None).await.unwrap();
        assert_eq!(after.len(), 2, "the audit trail is intact");
        for event in &after {
            assert_eq!(event.data["pii"], json!({ "forgotten": true }));
        }
        assert_eq!(after[0].data["position"], "CTO");
        let claim = store
            .read_stream("linkedin-url-abc", 1, None)
            .await
            .unwrap();
        assert_eq!(claim[0].data["pii"], json!({ "forgotten": true }));
        assert_eq!(
            claim[0].data["lead_id"], "6f1c2d5e-0000-4000-8000-000000000001",
            "the claim stays, so the person is never re-added"
        );
        let raw_after: Vec<String> = match store {
            Store::Postgres(s) => {
                sqlx::query_scalar("SELECT data::text FROM events ORDER BY global_position")
                    .fetch_all(s.pool())
                    .await
            }
            Store::Sqlite(s) => {
                sqlx::query_scalar("SELECT data FROM events ORDER BY global_position")
                    .fetch_all(s.read_pool())
                    .await
            }
        }
        .unwrap();
        assert!(raw_after.iter().all(|row| !row.contains("called Maya")));
    }

    pub async fn upcasters_apply_on_read(store: &Store, upcast_store: &Store) {
        let old = event("contact_found", 1);
        let mut old = old.with_schema_version(1);
        old.data = json!({ "full_name": "Ada Lovelace" });
        store
            .append("s", ExpectedVersion::NoStream, vec![old])
            .await
            .unwrap();
        let raw = store.read_stream("s", 1, None).await.unwrap();
        assert_eq!(raw[0].schema_version, 1);
        let read = upcast_store.read_stream("s", 1, None).await.unwrap();
        assert_eq!(read[0].schema_version, 3);
        assert_eq!(
            read[0].data,
            json!({ "pii": { "name": "Ada Lovelace" }, "source": "unknown" })
        );
        // A whole-log read sees the event once no older transaction is open anywhere on the
        // server (other tests share it), so wait for it, boundedly.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let all = loop {
            let all = upcast_store.read_all(Checkpoint::START, 10).await.unwrap();
            if !all.is_empty() || std::time::Instant::now() > deadline {
                break all;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        };
        assert_eq!(all[0].data, read[0].data);
    }

    pub fn test_upcasters() -> Upcasters {
        Upcasters::new()
            .register("contact_found", 1, |mut data| {
                let name = data
                    .as_object_mut()
                    .and_then(|o| o.remove("full_name"))
                    .ok_or("no full_name")?;
                Ok(json!({ "pii": { "name": name } }))
            })
            .register("contact_found", 2, |mut data| {
                data["source"] = json!("unknown");
                Ok(data)
            })
    }
}

async fn sqlite_store(dir: &tempfile::TempDir, upcasters: Upcasters) -> Store {
    let url = format!("sqlite://{}", dir.path().join("log.sqlite").display());
    let store = Store::connect(&url, upcasters).await.unwrap();
    store.migrate().await.unwrap();
    store
}

fn pg_store(pool: PgPool) -> Store {
    Store::Postgres(PostgresEventStore::from_pool(pool, Upcasters::new()))
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
                    suite::$name(&sqlite_store(&dir, Upcasters::new()).await).await;
                }
            )*
        }
    };
}

both_stores!(
    append_and_read,
    expected_version_rules,
    idempotent_reappend,
    invalid_appends_are_refused,
    read_all_from_checkpoint,
    subscription_resumes_after_restart,
    only_one_runner_holds_the_lease,
    a_crashed_runners_lease_expires_and_is_fenced,
    failing_event_is_parked_and_subscription_moves_on,
    projection_rows_commit_with_the_checkpoint,
    batch_projection_writes_once_per_batch,
    personal_data_is_sealed_and_can_be_forgotten,
);

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_upcasters_apply_on_read(pool: PgPool) {
    let plain = pg_store(pool.clone());
    let upcasting = Store::Postgres(PostgresEventStore::from_pool(pool, suite::test_upcasters()));
    suite::upcasters_apply_on_read(&plain, &upcasting).await;
}

#[tokio::test]
async fn sqlite_upcasters_apply_on_read() {
    let dir = tempfile::tempdir().unwrap();
    let plain = sqlite_store(&dir, Upcasters::new()).await;
    let path = dir.path().join("log.sqlite");
    let upcasting = Store::Sqlite(
        SqliteEventStore::open(&path, suite::test_upcasters())
            .await
            .unwrap(),
    );
    suite::upcasters_apply_on_read(&plain, &upcasting).await;
}

#[tokio::test]
async fn unknown_database_urls_are_refused_without_leaking_passwords() {
    let error = Store::connect("mysql://user:hunter2@db/x", Upcasters::new())
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("postgres://") && !message.contains("hunter2"),
        "{message}"
    );
}
