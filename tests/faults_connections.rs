//! The fault-injection suite on PostgreSQL, part two: connections dropped under a running
//! department. The department runs as `serve` runs it — the wall-clock scheduler, on a clock
//! that runs about 7,200 times faster than real time — against a TCP proxy in front of
//! PostgreSQL that cuts every live connection several times, and once refuses new ones for
//! three seconds. The service must recover on its own, and the log must show nothing lost and
//! nothing doubled: every check of the log and the projections (the lead table equal to a fresh
//! rebuild), what the provider received against the log, no intent without its outcome, no
//! event parked in the dead letters, every subscription at the head.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use salesdept_agents::clock::Clock;
use salesdept_agents::department::{JobKind, JobRetry, Scheduler, WallClockScheduler};
use salesdept_e2e::proxy::PgProxy;
use salesdept_e2e::{World, start};
use salesdept_events::store::{PostgresEventStore, PostgresOptions};
use salesdept_events::subscription::{list_dead_letters, stored_checkpoint};
use salesdept_events::{EventStore, Store, domain};
use sqlx::PgPool;
use tokio::sync::watch;

const SEED: u64 = 20_260_107;
const PEOPLE: u32 = 2_000;
const ACCOUNTS: u32 = 2;
const LEADS_PER_DAY: u32 = 20;
const SUBSCRIPTIONS: [&str; 5] = ["lead_finder", "outreach", "hand_over", "leads", "reports"];

/// The store the department uses: through `proxy` to the test's database.
async fn store_through(proxy: &PgProxy, pool: &PgPool) -> Store {
    let options = (*pool.connect_options())
        .clone()
        .host("127.0.0.1")
        .port(proxy.port());
    let store = PostgresEventStore::connect_with(
        options,
        PostgresOptions {
            max_connections: 8,
            // A refused connection is reported within this, not after the default 10 s.
            acquire_timeout: Duration::from_secs(2),
            ..PostgresOptions::default()
        },
        domain::upcasters(),
    )
    .await
    .unwrap();
    Store::Postgres(store)
}

async fn sleep_until(began: Instant, seconds: f64) {
    tokio::time::sleep_until((began + Duration::from_secs_f64(seconds)).into()).await;
}

#[sqlx::test(migrations = "migrations/postgres")]
async fn the_department_rides_out_dropped_connections_and_a_refusing_server(pool: PgPool) {
    let upstream = format!(
        "{}:{}",
        pool.connect_options().get_host(),
        pool.connect_options().get_port()
    );
    let upstream = tokio::net::lookup_host(upstream)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = PgProxy::start(upstream).await;
    let store = store_through(&proxy, &pool).await;
    let world = World::new(store.clone(), SEED, PEOPLE, ACCOUNTS, LEADS_PER_DAY);
    // Monday 08:00 to Tuesday 18:00: two coordinations, two days of sends.
    world.clock.advance_to(start() + TimeDelta::hours(8));
    let until = start() + TimeDelta::hours(24 + 18);
    let department = Arc::new(world.department(None).await);

    // The clock: 36 simulated seconds every 5 ms (two hours a second).
    let ticking = {
        let clock = world.clock.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                clock.advance_by(TimeDelta::seconds(36));
            }
        })
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let scheduler =
        WallClockScheduler::new(Arc::new(world.clock.clone()) as Arc<dyn Clock>, stop_rx)
            .tick(Duration::from_millis(20))
            .retry(JobRetry {
                attempts: 30,
                first: Duration::from_millis(50),
                max: Duration::from_millis(500),
            })
            .wake_on(store.wake_ups())
            .run_at_start([JobKind::ScheduledSearch, JobKind::Coordination]);
    let heartbeat = scheduler.heartbeat();
    let schedule = department.schedule();
    let running = {
        let department = Arc::clone(&department);
        tokio::spawn(async move { scheduler.run(&schedule, department.as_ref()).await })
    };
    // Whether a catch-up was ever seen failing: the cuts reached the service.
    let watching = {
        let heartbeat = heartbeat.clone();
        tokio::spawn(async move {
            let mut failed = false;
            for _ in 0..1_000 {
                failed |= heartbeat.state().catch_up_error.is_some();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            failed
        })
    };

    let began = Instant::now();
    for at in [2.0, 3.5, 5.0] {
        sleep_until(began, at).await;
        proxy.cut_all();
    }
    sleep_until(began, 6.5).await;
    proxy.refuse(true);
    proxy.cut_all();
    sleep_until(began, 9.5).await;
    proxy.refuse(false);
    for at in [11.0, 12.0] {
        sleep_until(began, at).await;
        proxy.cut_all();
    }
    let restored = chrono::Utc::now();
    let (_, refused) = proxy.counts();
    assert!(refused > 0, "the service tried to reconnect while refused");

    // It recovers on its own: the run goes on to its end, with new events after the last cut.
    let deadline = began + Duration::from_secs(45);
    while world.clock_now() < until {
        assert!(Instant::now() < deadline, "the run did not reach its end");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let appended_since: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE recorded_at > $1")
            .bind(restored)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(
        appended_since > 0,
        "the department worked after the last cut"
    );
    stop_tx.send(true).unwrap();
    running.await.unwrap().unwrap();
    ticking.abort();
    watching.abort();
    let saw_failures =
        heartbeat.state().failures.values().sum::<u64>() > 0 || watching.await.unwrap_or(true);
    assert!(saw_failures, "the cuts reached the service");

    // Every subscription reaches the head; nothing was parked.
    department.catch_up_all().await.unwrap();
    let head: i64 = sqlx::query_scalar("SELECT max(global_position) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    for name in SUBSCRIPTIONS {
        let checkpoint = stored_checkpoint(&store, name).await.unwrap();
        assert_eq!(checkpoint.global_position, head, "{name} is at the head");
    }
    let parked = list_dead_letters(&store, None).await.unwrap();
    assert!(
        parked.is_empty(),
        "a lost connection parks nothing: {parked:#?}"
    );

    // Nothing lost, nothing doubled.
    let checks = world.check().await;
    assert!(checks.passed(), "{checks}");
    let summary = world.summary().await;
    assert!(summary.invitations_sent > 0, "invitations went out");
    assert!(summary.allocated > 0, "leads were allocated");
    let problems = world.provider_problems(&summary);
    assert!(problems.is_empty(), "{problems:#?}");
    let lost = world.intents_without_outcome().await;
    assert!(lost.is_empty(), "{lost:#?}");
    department.release().await.unwrap();
}
