//! A person pauses an agent and it stops working — its jobs are skipped and its subscription's
//! events wait in the log — while the other agents go on; resumed, it picks up the waiting
//! work. On SQLite and PostgreSQL.

use std::sync::Arc;

use chrono::TimeDelta;
use salesdept_e2e::{World, start};
use salesdept_events::domain::department::{DepartmentCommand, DepartmentState};
use salesdept_events::domain::{self, CommandHandler, CommandMetadata, DEPARTMENT_STREAM};
use salesdept_events::store::{PostgresEventStore, SqliteEventStore};
use salesdept_events::{Actor, Store};

async fn command(world: &World, command: DepartmentCommand) {
    let handler = CommandHandler::new(Arc::new(world.store.clone()));
    let metadata = CommandMetadata::new(Actor::Human("ops".into()), world.clock_now());
    let executed = handler
        .execute::<DepartmentState>(DEPARTMENT_STREAM, &command, &metadata)
        .await
        .unwrap();
    assert_eq!(executed.appended.len(), 1);
}

async fn a_paused_outreach_sends_nothing_until_resumed(store: Store) {
    let world = World::new(store, 7, 2_000, 1, 20);
    let department = world.department(None).await;
    command(
        &world,
        DepartmentCommand::PauseAgent {
            agent: "outreach".into(),
            reason: "checking the templates".into(),
        },
    )
    .await;
    assert!(
        department
            .paused_agents()
            .await
            .unwrap()
            .contains("outreach")
    );

    // Two working days paused: leads are found and allocated, nothing is drafted or sent.
    world.run(&department, start() + TimeDelta::days(2)).await;
    let paused = world.summary().await;
    assert!(paused.leads_discovered > 0, "the Lead Finder went on");
    assert!(paused.allocated > 0, "the Sales Manager went on");
    assert_eq!(
        paused.invitations_sent + paused.messages_sent,
        0,
        "{paused:?}"
    );
    let heartbeats = department.agent_heartbeats();
    let beat = |agent| {
        heartbeats
            .iter()
            .find(|heartbeat| heartbeat.agent == agent)
            .unwrap()
            .beat_at
    };
    assert_eq!(beat("outreach"), start(), "a paused agent does not beat");
    assert!(beat("lead_finder") > start());

    command(
        &world,
        DepartmentCommand::ResumeAgent {
            agent: "outreach".into(),
        },
    )
    .await;
    world.run(&department, start() + TimeDelta::days(4)).await;
    let resumed = world.summary().await;
    assert!(
        resumed.invitations_sent + resumed.messages_sent > 0,
        "the waiting allocations were worked: {resumed:?}"
    );
    let report = world.check().await;
    assert!(report.passed(), "{report:#?}");
}

#[tokio::test]
async fn sqlite_a_paused_outreach_sends_nothing_until_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::Sqlite(
        SqliteEventStore::open(&dir.path().join("events.db"), domain::upcasters())
            .await
            .unwrap(),
    );
    store.migrate().await.unwrap();
    a_paused_outreach_sends_nothing_until_resumed(store).await;
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn postgres_a_paused_outreach_sends_nothing_until_resumed(pool: sqlx::PgPool) {
    a_paused_outreach_sends_nothing_until_resumed(Store::Postgres(PostgresEventStore::from_pool(
        pool,
        domain::upcasters(),
    )))
    .await;
}
