//! PostgreSQL-only guarantees of the log: concurrent writers and the late-commit rule.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use salesdept_events::store::PostgresEventStore;
use salesdept_events::{
    Actor, Checkpoint, EventStore, ExpectedVersion, Handler, HandlerContext, HandlerError,
    Metadata, NewEvent, RecordedEvent, Store, StoreError, Subscription, SubscriptionOptions,
    Upcasters,
};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};
use tokio_util::sync::CancellationToken;

fn event(writer: usize, n: usize) -> NewEvent {
    NewEvent::new(
        "written",
        json!({ "writer": writer, "n": n }),
        Metadata::new(Actor::agent(format!("writer-{writer}")), Utc::now()),
    )
}

#[derive(Default)]
struct Collector {
    seen: Mutex<Vec<RecordedEvent>>,
}

#[async_trait]
impl Handler for Collector {
    async fn handle(
        &self,
        event: &RecordedEvent,
        _: &mut HandlerContext,
    ) -> Result<(), HandlerError> {
        self.seen.lock().unwrap().push(event.clone());
        Ok(())
    }
}

/// 8 writers append to overlapping streams (each append reads the version and expects it,
/// retrying on conflict) while a subscriber follows the log. Afterwards the subscriber saw every
/// committed event exactly once, no stream version is missing or doubled, and per-stream order
/// holds.
#[sqlx::test(migrations = "../../migrations/postgres")]
async fn eight_writers_and_a_subscriber(pool_options: PgPoolOptions, connect: PgConnectOptions) {
    let pool = pool_options
        .max_connections(16)
        .connect_with(connect)
        .await
        .unwrap();
    let store = Store::Postgres(PostgresEventStore::from_pool(pool, Upcasters::new()));
    let collector = Arc::new(Collector::default());
    let subscription = Subscription::new("follower", store.clone(), collector.clone())
        .with_options(SubscriptionOptions {
            batch_size: 50,
            poll_interval: Duration::from_millis(10),
            ..SubscriptionOptions::default()
        });
    let cancel = CancellationToken::new();
    let follower = {
        let cancel = cancel.clone();
        tokio::spawn(async move { subscription.run(cancel).await })
    };

    const WRITERS: usize = 8;
    const APPENDS: usize = 60;
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for n in 0..APPENDS {
                // Overlapping streams: every writer touches streams 0..4.
                let stream = format!("shared-{}", (writer + n) % 4);
                loop {
                    let version = store.stream_version(&stream).await.unwrap();
                    let batch = vec![event(writer, n)];
                    match store
                        .append(&stream, ExpectedVersion::from_read(version), batch)
                        .await
                    {
                        Ok(_) => break,
                        Err(StoreError::Conflict { .. }) => conflicts += 1,
                        Err(other) => panic!("append failed: {other}"),
                    }
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for writer in writers {
        conflicts += writer.await.unwrap();
    }
    let total = WRITERS * APPENDS;
    // Wait until the follower has caught up with every committed event.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while collector.seen.lock().unwrap().len() < total {
        assert!(
            tokio::time::Instant::now() < deadline,
            "subscriber did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    follower.await.unwrap().unwrap();

    let seen = collector.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), total, "every event exactly once");
    let ids: HashSet<_> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), total, "no event delivered twice");
    assert!(
        seen.windows(2)
            .all(|pair| pair[0].checkpoint() < pair[1].checkpoint()),
        "global order"
    );
    let mut per_stream: HashMap<&str, Vec<i64>> = HashMap::new();
    for event in &seen {
        per_stream
            .entry(event.stream_id.as_str())
            .or_default()
            .push(event.stream_version);
    }
    for (stream, versions) in per_stream {
        let expected: Vec<i64> = (1..=versions.len() as i64).collect();
        assert_eq!(
            versions, expected,
            "stream {stream} delivered in order without gaps"
        );
    }
    // Each writer's own appends are in its order within the log.
    for writer in 0..WRITERS {
        let mine: Vec<u64> = seen
            .iter()
            .filter(|e| e.data["writer"] == writer)
            .map(|e| e.data["n"].as_u64().unwrap())
            .collect();
        assert_eq!(mine, (0..APPENDS as u64).collect::<Vec<_>>());
    }
    eprintln!("{total} appends by {WRITERS} writers, {conflicts} conflicts retried");
}

/// Racing appends expecting the same version: exactly one of N wins.
#[sqlx::test(migrations = "../../migrations/postgres")]
async fn exactly_one_of_racing_writers_wins(
    pool_options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = pool_options
        .max_connections(12)
        .connect_with(connect)
        .await
        .unwrap();
    let store = Store::Postgres(PostgresEventStore::from_pool(pool, Upcasters::new()));
    store
        .append("race", ExpectedVersion::NoStream, vec![event(0, 0)])
        .await
        .unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let racers: Vec<_> = (0..8)
        .map(|writer| {
            let store = store.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .append("race", ExpectedVersion::Exact(1), vec![event(writer, 1)])
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::Conflict { actual, .. }) => assert_eq!(actual, Some(2)),
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(store.stream_version("race").await.unwrap(), Some(2));
}

async fn read_all_now(store: &Store) -> Vec<RecordedEvent> {
    store.read_all(Checkpoint::START, 1000).await.unwrap()
}

/// Reads until `done` holds. The visibility horizon is cluster-wide: a short transaction of a
/// test running in parallel in another database may hold readers back for a moment.
async fn read_until(store: &Store, done: impl Fn(&[RecordedEvent]) -> bool) -> Vec<RecordedEvent> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let events = read_all_now(store).await;
        if done(&events) || tokio::time::Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Inserts one event the way an append does, inside a transaction the test controls.
async fn insert_in_open_transaction(tx: &mut sqlx::PgConnection, stream: &str) {
    sqlx::query(
        "INSERT INTO events (stream_id, stream_version, event_id, event_type, data, metadata) \
         VALUES ($1, 1, $2, 'late', '{}'::jsonb, $3::jsonb)",
    )
    .bind(stream)
    .bind(uuid::Uuid::now_v7())
    .bind(serde_json::to_string(&Metadata::new(Actor::system("test"), Utc::now())).unwrap())
    .execute(tx)
    .await
    .unwrap();
}

/// Transaction A appends and stays open; B appends and commits. The reader must not deliver
/// B's event past A's until A ends, and then delivers A's (if committed) without loss.
#[sqlx::test(migrations = "../../migrations/postgres")]
async fn a_late_commit_is_never_skipped(pool: PgPool) {
    let store = Store::Postgres(PostgresEventStore::from_pool(
        pool.clone(),
        Upcasters::new(),
    ));
    store
        .append("before", ExpectedVersion::NoStream, vec![event(0, 0)])
        .await
        .unwrap();
    read_until(&store, |events| !events.is_empty()).await;

    for commit_a in [true, false] {
        let stream_a = format!("a-{commit_a}");
        let stream_b = format!("b-{commit_a}");
        let mut connection = pool.acquire().await.unwrap();
        let mut transaction_a = connection.begin().await.unwrap();
        insert_in_open_transaction(&mut transaction_a, &stream_a).await;

        store
            .append(&stream_b, ExpectedVersion::NoStream, vec![event(1, 1)])
            .await
            .unwrap();
        for _ in 0..20 {
            let visible = read_all_now(&store).await;
            assert!(
                visible.iter().all(|e| e.stream_id != stream_b),
                "B was delivered while the earlier transaction A was still open"
            );
            // The reader is held back, not stopped: events before A are there.
            assert!(visible.iter().any(|e| e.stream_id == "before"));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }

        if commit_a {
            transaction_a.commit().await.unwrap();
        } else {
            transaction_a.rollback().await.unwrap();
        }
        drop(connection);
        let after = read_until(&store, |events| {
            events.iter().any(|e| e.stream_id == stream_b)
        })
        .await;
        let position_of = |stream: &str| after.iter().position(|e| e.stream_id == stream);
        let b = position_of(&stream_b).expect("B is delivered once A ends");
        match (commit_a, position_of(&stream_a)) {
            (true, Some(a)) => assert!(a < b, "A's event comes before B's"),
            (true, None) => panic!("A committed but was never delivered"),
            (false, Some(_)) => panic!("A rolled back but was delivered"),
            (false, None) => {}
        }
    }
}

/// Readers that already hold a checkpoint past earlier events still get a late commit: the
/// checkpoint is (transaction, position), and A's transaction id is below B's.
#[sqlx::test(migrations = "../../migrations/postgres")]
async fn a_late_commit_is_delivered_after_a_checkpoint(pool: PgPool) {
    let store = Store::Postgres(PostgresEventStore::from_pool(
        pool.clone(),
        Upcasters::new(),
    ));
    let mut connection = pool.acquire().await.unwrap();
    let mut transaction_a = connection.begin().await.unwrap();
    insert_in_open_transaction(&mut transaction_a, "late").await;
    store
        .append("early", ExpectedVersion::NoStream, vec![event(1, 1)])
        .await
        .unwrap();
    let first = read_all_now(&store).await;
    assert!(
        first.is_empty(),
        "nothing past the open transaction: {first:?}"
    );
    transaction_a.commit().await.unwrap();
    let all = read_until(&store, |events| events.len() == 2).await;
    assert_eq!(
        all.iter().map(|e| e.stream_id.as_str()).collect::<Vec<_>>(),
        vec!["late", "early"]
    );
    let checkpoint = all[0].checkpoint();
    let rest = store.read_all(checkpoint, 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].stream_id, "early");
}

/// Every read decodes the `xid8` column in binary; the ids must be the server's own, as its
/// text form shows them, on every read path.
#[sqlx::test(migrations = "../../migrations/postgres")]
async fn transaction_ids_read_back_as_the_server_shows_them(pool: PgPool) {
    let store = Store::Postgres(PostgresEventStore::from_pool(
        pool.clone(),
        Upcasters::new(),
    ));
    for n in 0..3 {
        store
            .append("xids", ExpectedVersion::Any, vec![event(0, n)])
            .await
            .unwrap();
    }
    let events = read_until(&store, |events| events.len() == 3).await;
    assert_eq!(events.len(), 3);
    let by_stream = store.read_stream("xids", 1, None).await.unwrap();
    for (read, streamed) in events.iter().zip(&by_stream) {
        let server: i64 = sqlx::query_scalar(
            "SELECT transaction_id::text::bigint FROM events WHERE global_position = $1",
        )
        .bind(read.global_position)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(server > 0);
        assert_eq!(read.transaction_id, server);
        assert_eq!(streamed.transaction_id, server);
    }
    // Three appends are three transactions, in order.
    assert!(
        events
            .windows(2)
            .all(|pair| pair[0].checkpoint() < pair[1].checkpoint())
    );
    // Resuming from the second event's checkpoint gives exactly the third.
    let rest = store.read_all(events[1].checkpoint(), 10).await.unwrap();
    assert_eq!(rest, events[2..].to_vec());
}

/// A running subscription on another store (its own pool, woken by LISTEN as another process
/// would be) handles an event long before its poll interval, and its checkpoint (committed in
/// one statement) is stored and fenced by its lease.
#[sqlx::test(migrations = "../../migrations/postgres")]
async fn a_notify_wakes_a_subscription_long_before_its_poll(
    pool_options: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let writer_pool = pool_options
        .clone()
        .connect_with(connect.clone())
        .await
        .unwrap();
    let writer = Store::Postgres(PostgresEventStore::from_pool(writer_pool, Upcasters::new()));
    let reader_pool = pool_options.connect_with(connect).await.unwrap();
    let reader = Store::Postgres(PostgresEventStore::from_pool(reader_pool, Upcasters::new()));
    let collector = Arc::new(Collector::default());
    let poll_interval = Duration::from_secs(60);
    let subscription = Arc::new(
        Subscription::new("woken", reader.clone(), collector.clone()).with_options(
            SubscriptionOptions {
                poll_interval,
                ..SubscriptionOptions::default()
            },
        ),
    );
    subscription.catch_up().await.unwrap();
    let cancel = CancellationToken::new();
    let runner = {
        let (subscription, cancel) = (subscription.clone(), cancel.clone());
        tokio::spawn(async move { subscription.run(cancel).await })
    };
    // Let the runner reach its idle wait (the first re-polls back off within a second).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let appended = tokio::time::Instant::now();
    writer
        .append("woken-stream", ExpectedVersion::NoStream, vec![event(0, 0)])
        .await
        .unwrap();
    while collector.seen.lock().unwrap().is_empty() && appended.elapsed() < poll_interval / 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let waited = appended.elapsed();
    assert!(
        waited < poll_interval / 4,
        "the subscription waited {waited:?} for an event it was notified of"
    );
    let seen = collector.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    // The checkpoint commit follows the handler; wait for it boundedly.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stored = salesdept_events::subscription::stored_checkpoint(&reader, "woken")
            .await
            .unwrap();
        if stored == seen[0].checkpoint() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "checkpoint {stored} never reached {}",
            seen[0].checkpoint()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cancel.cancel();
    runner.await.unwrap().unwrap();
    // A runner whose lease was taken over cannot move the checkpoint (the one-statement commit
    // is fenced by the lease owner like the transactional one).
    let fenced = Subscription::new("woken", reader.clone(), collector.clone());
    fenced.catch_up().await.unwrap();
    let Store::Postgres(pg) = &reader else {
        unreachable!()
    };
    sqlx::query("UPDATE subscriptions SET lease_owner = 'someone-else', lease_expires_at = now() + interval '1 minute' WHERE name = 'woken'")
        .execute(pg.pool())
        .await
        .unwrap();
    writer
        .append("woken-stream", ExpectedVersion::Exact(1), vec![event(0, 1)])
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let outcome = loop {
        match fenced.catch_up().await {
            Ok(pass) if pass.handled == 0 && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => break other,
        }
    };
    assert!(
        matches!(
            outcome,
            Err(salesdept_events::SubscriptionError::LeaseLost { .. })
        ),
        "{outcome:?}"
    );
    assert_eq!(
        salesdept_events::subscription::stored_checkpoint(&reader, "woken")
            .await
            .unwrap(),
        seen[0].checkpoint()
    );
}
