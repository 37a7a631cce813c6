//! The whole department end to end on PostgreSQL: a simulated month checked from the event log
//! itself, and a month interrupted by a crash between a provider's answer and its event, then
//! finished by a new department on the same store.

use std::time::{Duration, Instant};

use chrono::TimeDelta;
use salesdept_e2e::send_crash::{SendCrash, SendKind, SendStep};
use salesdept_e2e::{World, start};
use salesdept_events::Store;
use salesdept_events::domain;
use salesdept_events::store::PostgresEventStore;

const SEED: u64 = 20_260_105;
const PEOPLE: u32 = 6_000;
const ACCOUNTS: u32 = 2;
const LEADS_PER_DAY: u32 = 40;

/// Simulated days per run: `SALESDEPT_E2E_DAYS` (30 for the full month of the issue), else a
/// working week, which keeps the suite's wall time reasonable on 2 cores in a debug build.
fn days() -> i64 {
    std::env::var("SALESDEPT_E2E_DAYS")
        .ok()
        .and_then(|days| days.parse().ok())
        .unwrap_or(DEFAULT_DAYS)
}

const DEFAULT_DAYS: i64 = 5;

fn postgres(pool: sqlx::PgPool) -> Store {
    Store::Postgres(PostgresEventStore::from_pool(pool, domain::upcasters()))
}

fn assert_busy_and_clean(
    world: &World,
    summary: &salesdept_agents::department::summary::SimulationSummary,
) {
    eprintln!(
        "{}",
        serde_json::to_string_pretty(&summary.to_json()).unwrap()
    );
    assert!(summary.leads_discovered > 0, "leads were found");
    assert!(summary.allocated > 0, "leads were allocated");
    assert!(summary.invitations_sent > 0, "invitations went out");
    assert!(summary.messages_sent > 0, "messages went out");
    assert!(summary.replies > 0, "replies came back");
    assert!(
        summary.replies_per_intent.values().sum::<u64>() > 0,
        "replies were analysed"
    );
    assert!(summary.qualified > 0, "some leads qualified");
    assert_eq!(
        summary.human_emails, summary.qualified,
        "every qualified lead handed over by one mail"
    );
    let problems = world.provider_problems(summary);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn a_simulated_month_keeps_every_invariant(pool: sqlx::PgPool) {
    let world = World::new(postgres(pool), SEED, PEOPLE, ACCOUNTS, LEADS_PER_DAY);
    let department = world.department(None).await;
    let wall = Instant::now();
    let report = world
        .run(&department, start() + TimeDelta::days(days()))
        .await;
    eprintln!(
        "{} days on PostgreSQL in {:?}: {report:?}",
        days(),
        wall.elapsed()
    );
    let checks = world.check().await;
    assert!(checks.passed(), "{checks}");
    for check in [
        "no_lead_messaged_twice",
        "daily_caps",
        "minimum_gap",
        "working_hours",
        "positive_replies_handed_over_once",
        "lead_table_equals_replay",
        "reports_equal_replay",
        "sheet_equals_replay",
    ] {
        assert!(
            checks.examined.get(check).copied().unwrap_or(0) > 0,
            "{check} looked at nothing: {:?}",
            checks.examined
        );
    }
    let summary = world.summary().await;
    assert_busy_and_clean(&world, &summary);
    assert!(summary.max_messages_per_account_day <= 45);
    assert!(summary.min_gap_seconds.is_some_and(|gap| gap >= 300));
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn a_crash_between_the_provider_and_the_log_loses_and_doubles_nothing(pool: sqlx::PgPool) {
    let world = World::new(postgres(pool), SEED, PEOPLE, ACCOUNTS, LEADS_PER_DAY);
    let until = start() + TimeDelta::days(days());
    let crash = SendCrash::new(SendStep::ProviderAccepted, SendKind::Message, 25);
    {
        let department = world.department(Some(crash.wrapper())).await;
        let run = world.run(&department, until);
        tokio::select! {
            _ = run => panic!("the run ended before the planned crash"),
            () = crash.crashed.notified() => {}
        }
        // Leaving the select dropped the run mid-send; now the department goes too, its
        // subscriptions' leases left to expire as after a real crash.
    }
    let cut_off = crash.cut_off().expect("a send was cut off");
    let crashed_at = world.clock_now();
    assert!(crashed_at < until);

    let wall = Instant::now();
    let department = world.department(None).await;
    world.run(&department, until).await;
    assert!(
        wall.elapsed() < Duration::from_secs(120),
        "the restart took over within the lease's lifetime"
    );

    let checks = world.check().await;
    assert!(checks.passed(), "{checks}");
    let summary = world.summary().await;
    assert_busy_and_clean(&world, &summary);
    // The message the provider took just before the crash is in the log exactly once.
    let events = salesdept_agents::department::summary::read_log(&world.store)
        .await
        .unwrap();
    let recorded = events
        .iter()
        .filter(|event| {
            event.event_type == "message_sent"
                && event.data["provider_message_id"].as_str() == Some(cut_off.as_str())
        })
        .count();
    assert_eq!(
        recorded, 1,
        "the cut-off send {cut_off} was reconciled, not resent"
    );
}

/// The subscriptions' rows: name, checkpoint, lease expiry and last update.
async fn subscription_rows(store: &Store) -> Vec<(String, i64, Option<i64>, String)> {
    let Store::Sqlite(sqlite) = store else {
        unreachable!("the embedded store")
    };
    sqlx::query_as(
        "SELECT name, checkpoint_pos, lease_expires_at, updated_at FROM subscriptions ORDER BY name",
    )
    .fetch_all(sqlite.read_pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn on_sqlite_a_catch_up_is_skipped_only_while_the_log_has_not_moved() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("log.sqlite").display());
    let store = Store::connect(&url, domain::upcasters()).await.unwrap();
    store.migrate().await.unwrap();
    let world = World::new(store.clone(), SEED, PEOPLE, ACCOUNTS, LEADS_PER_DAY);
    let department = world.department(None).await;
    world.run(&department, start() + TimeDelta::hours(36)).await;
    let head: i64 = match &store {
        Store::Sqlite(sqlite) => sqlx::query_scalar("SELECT max(global_position) FROM events")
            .fetch_one(sqlite.read_pool())
            .await
            .unwrap(),
        Store::Postgres(_) => unreachable!(),
    };
    let caught_up = subscription_rows(&store).await;
    assert_eq!(caught_up.len(), 5, "{caught_up:?}");
    assert!(caught_up.iter().all(|row| row.1 == head), "{caught_up:?}");

    // Nothing appended: the subscriptions are not even asked (no lease renewed).
    tokio::time::sleep(Duration::from_millis(5)).await;
    department.catch_up_all().await.unwrap();
    assert_eq!(subscription_rows(&store).await, caught_up);

    // The log moves on (skips in between included), and the projections still equal a replay.
    world.run(&department, start() + TimeDelta::hours(60)).await;
    let checks = world.check().await;
    assert!(checks.passed(), "{checks}");
    let moved = subscription_rows(&store).await;
    assert!(moved.iter().all(|row| row.1 > head), "{moved:?}");
}
