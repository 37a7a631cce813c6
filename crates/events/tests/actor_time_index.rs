//! The audit queries by actor and time window (monitoring's heartbeat, error rates, the
//! coordination's own allocations) are served by the `events_actor_occurred_at` expression
//! index on both stores, and give the same answer as filtering the whole log.

use chrono::{DateTime, TimeDelta, Utc};
use salesdept_events::store::{EventCursor, EventOrder, EventQuery, PostgresEventStore};
use salesdept_events::{
    Actor, Checkpoint, EventStore, ExpectedVersion, Metadata, NewEvent, RecordedEvent, Store,
    Upcasters,
};
use serde_json::json;
use sqlx::PgPool;

const AGENTS: [&str; 3] = ["lead_finder", "outreach", "sales_manager"];

fn start() -> DateTime<Utc> {
    "2026-01-05T08:00:00Z".parse().unwrap()
}

/// 90 events over 45 hours, the three agents taking turns, in three streams.
async fn fill(store: &Store) {
    for n in 0..90_i64 {
        let agent = AGENTS[(n % 3) as usize];
        let occurred_at = start() + TimeDelta::minutes(30 * n);
        let event = NewEvent::new(
            if n % 7 == 0 { "agent_error" } else { "worked" },
            json!({ "n": n, "agent": agent }),
            Metadata::new(Actor::agent(agent), occurred_at),
        );
        store
            .append(
                &format!("lead-{}", n % 3),
                ExpectedVersion::Any,
                vec![event],
            )
            .await
            .unwrap();
    }
}

/// The whole log, all `expected` events of it. On PostgreSQL the whole-log horizon is
/// cluster-wide: another test's open transaction may hold it back for a moment, so read on
/// until every event is in.
async fn whole_log(store: &Store, expected: usize) -> Vec<RecordedEvent> {
    let mut all = Vec::new();
    let mut after = Checkpoint::START;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let batch = store.read_all(after, 50).await.unwrap();
        let Some(last) = batch.last() else {
            if all.len() >= expected || std::time::Instant::now() > deadline {
                return all;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            continue;
        };
        after = last.checkpoint();
        all.extend(batch);
    }
}

/// Every page of `query`, small pages so the cursor is exercised too.
async fn query_all(store: &Store, mut query: EventQuery) -> Vec<i64> {
    query.limit = 4;
    let mut positions = Vec::new();
    loop {
        let page = store.query_events(&query).await.unwrap();
        let Some(last) = page.last() else {
            return positions;
        };
        query.after = EventCursor::after(last, EventOrder::Global);
        positions.extend(page.iter().map(|event| event.global_position));
    }
}

async fn same_answers_as_the_whole_log(store: &Store) {
    fill(store).await;
    let log = whole_log(store, 90).await;
    assert_eq!(log.len(), 90);
    let windows = [
        (None, Some(start() + TimeDelta::hours(10))),
        (Some(start() + TimeDelta::hours(12)), None),
        (
            Some(start() + TimeDelta::hours(20)),
            Some(start() + TimeDelta::hours(26)),
        ),
        (Some(start() + TimeDelta::hours(50)), None),
    ];
    for agent in AGENTS {
        for (from, to) in windows {
            for event_type in [None, Some("agent_error")] {
                let query = EventQuery {
                    occurred_from: from,
                    occurred_to: to,
                    actor: Some(Actor::agent(agent)),
                    event_type: event_type.map(str::to_owned),
                    ..EventQuery::default()
                };
                let expected: Vec<i64> = log
                    .iter()
                    .filter(|event| event.metadata.actor == Actor::agent(agent))
                    .filter(|event| from.is_none_or(|from| event.metadata.occurred_at >= from))
                    .filter(|event| to.is_none_or(|to| event.metadata.occurred_at <= to))
                    .filter(|event| event_type.is_none_or(|kind| event.event_type == kind))
                    .map(|event| event.global_position)
                    .collect();
                assert_eq!(
                    query_all(store, query).await,
                    expected,
                    "{agent} {from:?}..{to:?} {event_type:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn sqlite_actor_and_time_queries_match_the_whole_log_and_use_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("log.sqlite").display());
    let store = Store::connect(&url, Upcasters::new()).await.unwrap();
    store.migrate().await.unwrap();
    same_answers_as_the_whole_log(&store).await;

    // The expressions as SqliteEventStore::query_events spells them.
    let Store::Sqlite(sqlite) = &store else {
        unreachable!()
    };
    let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
        "EXPLAIN QUERY PLAN SELECT * FROM events WHERE 1 \
         AND json_extract(metadata, '$.occurred_at') >= ?1 \
         AND json_extract(metadata, '$.occurred_at') <= ?2 \
         AND json_extract(metadata, '$.actor.kind') = 'agent' \
         AND json_extract(metadata, '$.actor.name') = 'outreach' \
         ORDER BY global_position LIMIT 1",
    )
    .bind("2026-01-05T10:00:00.000000Z")
    .bind("2026-01-06T10:00:00.000000Z")
    .fetch_all(sqlite.read_pool())
    .await
    .unwrap();
    assert!(
        plan.iter()
            .any(|(_, _, _, detail)| detail.contains("events_actor_occurred_at")),
        "{plan:?}"
    );
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_actor_and_time_queries_match_the_whole_log_and_use_the_index(pool: PgPool) {
    let store = Store::Postgres(PostgresEventStore::from_pool(
        pool.clone(),
        Upcasters::new(),
    ));
    same_answers_as_the_whole_log(&store).await;

    // A tiny table is scanned whatever the indexes; forbid that to see the index can serve
    // the expressions as PostgresEventStore::query_events spells them.
    let mut connection = pool.acquire().await.unwrap();
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *connection)
        .await
        .unwrap();
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT * FROM events WHERE true \
         AND (metadata->>'occurred_at') COLLATE \"C\" >= $1 \
         AND (metadata->>'occurred_at') COLLATE \"C\" <= $2 \
         AND metadata->'actor'->>'kind' = 'agent' \
         AND metadata->'actor'->>'name' = 'outreach'",
    )
    .bind("2026-01-05T10:00:00.000000Z")
    .bind("2026-01-06T10:00:00.000000Z")
    .fetch_all(&mut *connection)
    .await
    .unwrap();
    assert!(
        plan.iter()
            .any(|line| line.contains("events_actor_occurred_at")),
        "{plan:?}"
    );
}
