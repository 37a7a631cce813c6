//! Event store throughput against the local PostgreSQL, as events/s and as ratios to plain
//! INSERTs and SELECTs of the same rows into a bare table (primary key only), measured in the
//! same run. Run: `cargo bench -p salesdept-events --bench store` (DATABASE_URL names the
//! server; a scratch database is created and dropped). `BENCH_SCALE=2` doubles the counts.

use std::future::Future;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::Utc;
use salesdept_events::store::postgres::{PostgresEventStore, PostgresOptions};
use salesdept_events::{
    Actor, Checkpoint, EventStore, ExpectedVersion, Metadata, NewEvent, Upcasters,
};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Executor, QueryBuilder, Row};
use uuid::Uuid;

const BARE_TABLE: &str = "CREATE TABLE bare (
    global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id text NOT NULL, stream_version bigint NOT NULL, event_id uuid NOT NULL,
    event_type text NOT NULL, schema_version int NOT NULL, data jsonb NOT NULL,
    metadata jsonb NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now())";

fn body(n: usize) -> Value {
    json!({
        "lead_id": Uuid::new_v4(), "account_id": "primary", "kind": "initial",
        "provider_message_id": format!("msg-{n}"), "template": "speaker-a",
        "pii": { "text": "Hi Maya, your talk on zero-downtime schema migrations was great. We run a deep-tech conference in Stockholm and would love you on stage." }
    })
}

fn new_event(n: usize) -> NewEvent {
    NewEvent::new(
        "message_sent",
        body(n),
        Metadata::new(Actor::agent("outreach"), Utc::now()).with_correlation(Uuid::new_v4()),
    )
}

struct Rows {
    stream: String,
    version: i64,
    event: NewEvent,
}

/// The version the first row's stream was at before this append.
fn expected_of(rows: &[Rows]) -> ExpectedVersion {
    ExpectedVersion::from_read(Some(rows[0].version - 1))
}

async fn bare_insert(pool: &PgPool, rows: &[Rows]) -> Result<(), sqlx::Error> {
    let mut builder = QueryBuilder::new(
        "INSERT INTO bare (stream_id, stream_version, event_id, event_type, schema_version, data, metadata) ",
    );
    builder.push_values(rows, |mut row, item| {
        row.push_bind(&item.stream)
            .push_bind(item.version)
            .push_bind(item.event.event_id)
            .push_bind(&item.event.event_type)
            .push_bind(item.event.schema_version)
            .push_bind(&item.event.data)
            .push_bind(serde_json::to_value(&item.event.metadata).unwrap());
    });
    builder.build().execute(pool).await.map(drop)
}

/// Runs `writers` tasks each doing `appends` appends of `batch` events; returns events/s.
async fn run_writers<F, Fut>(writers: usize, appends: usize, batch: usize, work: F) -> f64
where
    F: Fn(usize, usize, Vec<Rows>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let work = work.clone();
        let run = Uuid::new_v4().simple().to_string();
        tasks.push(tokio::spawn(async move {
            // Ten streams per writer, each append expecting its stream's exact version.
            let mut versions = [0i64; 10];
            for n in 0..appends {
                let slot = n % 10;
                let stream = format!("lead-{run}-{writer}-{slot}");
                let rows = (0..batch)
                    .map(|i| {
                        versions[slot] += 1;
                        Rows {
                            stream: stream.clone(),
                            version: versions[slot],
                            event: new_event(n * batch + i),
                        }
                    })
                    .collect();
                work(writer, n, rows).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    (writers * appends * batch) as f64 / started.elapsed().as_secs_f64()
}

fn report(name: &str, store: f64, baseline: f64, target: f64) {
    let ratio = store / baseline;
    println!(
        "{name:<34} store {store:>10.0} ev/s   bare {baseline:>10.0} ev/s   ratio {ratio:>5.2}x   (target >= {target:.1}x) {}",
        if ratio >= target {
            "ok"
        } else {
            "BELOW TARGET"
        }
    );
}

#[tokio::main]
async fn main() {
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let scale: usize = std::env::var("BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let name = format!("salesdept_bench_{}", std::process::id());
    let admin = PgPool::connect(&server)
        .await
        .expect("connect to DATABASE_URL");
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    let connect = PgConnectOptions::from_str(&server).unwrap().database(&name);
    let fsync: String = sqlx::query_scalar("SHOW fsync")
        .fetch_one(&admin)
        .await
        .unwrap();
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&admin)
        .await
        .unwrap();
    println!(
        "PostgreSQL {version}, fsync={fsync}, {} cores, scale {scale}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let store = PostgresEventStore::connect_with(
        connect.clone(),
        PostgresOptions {
            max_connections: 10,
            ..PostgresOptions::default()
        },
        Upcasters::new(),
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    let bare_pool = PgPoolOptions::new()
        .max_connections(10)
        .connect_with(connect)
        .await
        .unwrap();
    bare_pool.execute(BARE_TABLE).await.unwrap();

    for (label, writers, appends, batch) in [
        ("single-event appends, 1 writer", 1, 1500 * scale, 1),
        ("single-event appends, 8 writers", 8, 400 * scale, 1),
        ("100-event appends, 1 writer", 1, 60 * scale, 100),
        ("100-event appends, 8 writers", 8, 20 * scale, 100),
    ] {
        let bare_round = async || {
            let pool = bare_pool.clone();
            run_writers(writers, appends, batch, move |_, _, rows| {
                let pool = pool.clone();
                async move { bare_insert(&pool, &rows).await.unwrap() }
            })
            .await
        };
        let store_round = async || {
            let store = store.clone();
            run_writers(writers, appends, batch, move |_, _, rows| {
                let store = store.clone();
                async move {
                    let stream = rows[0].stream.clone();
                    let expected = expected_of(&rows);
                    let events = rows.into_iter().map(|row| row.event).collect();
                    store.append(&stream, expected, events).await.unwrap();
                }
            })
            .await
        };
        // Alternating rounds, best of each: load changes hit both alike.
        let (mut baseline, mut appended) = (0.0f64, 0.0f64);
        for _ in 0..2 {
            baseline = baseline.max(bare_round().await);
            appended = appended.max(store_round().await);
        }
        report(label, appended, baseline, 0.7);
    }

    // Whole-log read in global order, 1,000 events a page, decoding the same columns.
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let bare_round = async || {
        let started = Instant::now();
        let mut after = 0i64;
        let mut count = 0usize;
        loop {
            let rows = sqlx::query(
                "SELECT global_position, stream_id, stream_version, event_id, event_type, schema_version, \
                 data, metadata, recorded_at FROM events WHERE global_position > $1 ORDER BY global_position LIMIT 1000",
            )
            .bind(after)
            .fetch_all(store.pool())
            .await
            .unwrap();
            let Some(last) = rows.last() else { break };
            after = last.get(0);
            for row in &rows {
                let _: (String, i64, Uuid, String, i32) =
                    (row.get(1), row.get(2), row.get(3), row.get(4), row.get(5));
                let _: (Value, chrono::DateTime<Utc>) = (row.get(6), row.get(8));
                let _: sqlx::types::Json<Metadata> = row.get(7);
            }
            count += rows.len();
        }
        assert_eq!(count as i64, total);
        count as f64 / started.elapsed().as_secs_f64()
    };
    let store_round = async || {
        let started = Instant::now();
        let mut after = Checkpoint::START;
        let mut count = 0usize;
        loop {
            let events = store.read_all(after, 1000).await.unwrap();
            let Some(last) = events.last() else { break };
            after = last.checkpoint();
            count += events.len();
        }
        assert_eq!(count as i64, total);
        count as f64 / started.elapsed().as_secs_f64()
    };
    // Rounds alternate between the two readers so that a change in the machine's load
    // affects both alike; the best round of each counts.
    let (mut bare_read, mut store_read) = (0.0f64, 0.0f64);
    for _ in 0..5 {
        bare_read = bare_read.max(bare_round().await);
        store_read = store_read.max(store_round().await);
    }
    report(
        &format!("whole-log read ({total} events)"),
        store_read,
        bare_read,
        0.9,
    );

    subscription_lag(&store, connect_for_lag(&server, &name)).await;

    store.pool().close().await;
    bare_pool.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    admin
        .execute(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {name} WITH (FORCE)"
        )))
        .await
        .unwrap();
}

fn connect_for_lag(server: &str, database: &str) -> PgConnectOptions {
    PgConnectOptions::from_str(server)
        .unwrap()
        .database(database)
}

/// Records when each append returned and when each event reached the handler; the lags are
/// paired up afterwards, so an event the handler saw before its writer's task resumed counts too.
struct LagRecorder {
    seen_at: std::sync::Mutex<std::collections::HashMap<Uuid, Instant>>,
    sent_at: std::sync::Mutex<std::collections::HashMap<Uuid, Instant>>,
}

#[async_trait::async_trait]
impl salesdept_events::Handler for LagRecorder {
    async fn handle(
        &self,
        event: &salesdept_events::RecordedEvent,
        _: &mut salesdept_events::HandlerContext,
    ) -> Result<(), salesdept_events::HandlerError> {
        self.seen_at
            .lock()
            .unwrap()
            .entry(event.event_id)
            .or_insert_with(Instant::now);
        Ok(())
    }
}

/// Appends at 1,000 events/s through one store while a subscription runs on a second store
/// (its own pool, woken by NOTIFY/LISTEN as another process would be), and prints the lag from
/// the append returning to the handler seeing the event.
async fn subscription_lag(writer: &PostgresEventStore, reader_connect: PgConnectOptions) {
    use std::sync::Arc;
    let reader = PostgresEventStore::connect_with(
        reader_connect,
        PostgresOptions {
            max_connections: 4,
            ..PostgresOptions::default()
        },
        Upcasters::new(),
    )
    .await
    .unwrap();
    let recorder = Arc::new(LagRecorder {
        seen_at: Default::default(),
        sent_at: Default::default(),
    });
    let reader_store = salesdept_events::Store::Postgres(reader.clone());
    // Start the subscription at the head so only the timed events count.
    let subscription =
        salesdept_events::Subscription::new("lag-probe", reader_store, recorder.clone())
            .with_options(salesdept_events::SubscriptionOptions {
                poll_interval: Duration::from_millis(500),
                batch_size: 1000,
                ..Default::default()
            });
    subscription.catch_up().await.unwrap();
    let cancel = tokio_util::sync::CancellationToken::new();
    let runner = {
        let cancel = cancel.clone();
        tokio::spawn(async move { subscription.run(cancel).await })
    };
    let rate = 1000u32;
    let seconds = 5u32;
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / rate as u64));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut in_flight = Vec::new();
    for n in 0..(rate * seconds) as usize {
        ticker.tick().await;
        let writer = writer.clone();
        let recorder = recorder.clone();
        in_flight.push(tokio::spawn(async move {
            let event = new_event(n);
            let id = event.event_id;
            writer
                .append(
                    &format!("lag-{}", n % 50),
                    ExpectedVersion::Any,
                    vec![event],
                )
                .await
                .unwrap();
            recorder.sent_at.lock().unwrap().insert(id, Instant::now());
        }));
    }
    for task in in_flight {
        task.await.unwrap();
    }
    let achieved = (rate * seconds) as f64 / started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(10);
    while recorder.seen_at.lock().unwrap().len() < (rate * seconds) as usize
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    runner.await.unwrap().unwrap();
    let mut lags: Vec<Duration> = {
        let seen = recorder.seen_at.lock().unwrap();
        let sent = recorder.sent_at.lock().unwrap();
        sent.iter()
            .filter_map(|(id, sent)| Some(seen.get(id)?.saturating_duration_since(*sent)))
            .collect()
    };
    lags.sort();
    let at = |q: f64| lags[((lags.len() as f64 * q) as usize).min(lags.len() - 1)];
    println!(
        "subscription lag at {achieved:.0} appends/s   p50 {:>6.1} ms   p99 {:>6.1} ms   max {:>6.1} ms   ({} of {} seen)   (target p99 <= 50 ms) {}",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        lags.last().unwrap().as_secs_f64() * 1e3,
        lags.len(),
        rate * seconds,
        if at(0.99) <= Duration::from_millis(50) {
            "ok"
        } else {
            "ABOVE TARGET"
        }
    );
    reader.pool().close().await;
}
