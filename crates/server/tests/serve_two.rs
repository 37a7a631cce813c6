//! Two `salesdept serve --demo` processes on one PostgreSQL database (a standby, a rolling
//! deploy): one runs the schedule and every subscription, the other serves HTTP and stands by;
//! when the active one is killed the standby takes over within the lease's lifetime. Nothing
//! is done twice: every profile is a lead once, no lead is invited twice, and no account sends
//! more than its daily cap.

mod common;

use common::serve::{start, stop, write_config};

use std::process::Child;
use std::time::{Duration, Instant};

use sqlx::PgPool;

const TOKEN: &str = "two-serve-test-token-0123456789";
/// The shipped configuration's daily cap per account.
const DAILY_CAP: i64 = 45;

async fn get_json(client: &reqwest::Client, url: &str) -> (u16, serde_json::Value) {
    let response = client
        .get(url)
        .bearer_auth(TOKEN)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Waits until the service is ready in `role` ("active" or "standby").
async fn ready_as(client: &reqwest::Client, url: &str, role: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (status, ready) = get_json(client, &format!("{url}/readyz")).await;
        if status == 200 && ready["role"] == role {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} not ready as {role} within {within:?}: {status} {ready}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The sum of `salesdept_agent_operations_total` over every job: the jobs this process ran.
async fn operations(client: &reqwest::Client, url: &str) -> f64 {
    let text = client
        .get(format!("{url}/metrics"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|line| line.starts_with("salesdept_agent_operations_total{"))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// The owners of the subscriptions' leases (each `pid-uuid`), as the store holds them.
async fn subscription_owners(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT coalesce(lease_owner, '') FROM subscriptions ORDER BY name")
        .fetch_all(pool)
        .await
        .unwrap()
}

fn owned_by(owners: &[String], child: &Child) -> bool {
    let prefix = format!("{}-", child.id());
    !owners.is_empty() && owners.iter().all(|owner| owner.starts_with(&prefix))
}

async fn wait_for_owner(pool: &PgPool, child: &Child, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let owners = subscription_owners(pool).await;
        if owned_by(&owners, child) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the subscriptions are not all held by process {} within {within:?}: {owners:?}",
            child.id()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Nothing doubled in the log: no profile claimed twice, no lead invited twice, no account over
/// its daily cap.
async fn assert_nothing_doubled(pool: &PgPool) {
    let doubled_claims: Vec<(String, i64)> = sqlx::query_as(
        "SELECT stream_id, count(*) FROM events WHERE event_type = 'url_reserved' \
         GROUP BY stream_id HAVING count(*) > 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(doubled_claims.is_empty(), "{doubled_claims:?}");
    let doubled_invitations: Vec<(String, i64)> = sqlx::query_as(
        "SELECT stream_id, count(*) FROM events WHERE event_type = 'invitation_sent' \
         GROUP BY stream_id HAVING count(*) > 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(doubled_invitations.is_empty(), "{doubled_invitations:?}");
    let over_cap: Vec<(String, i64)> = sqlx::query_as(
        "SELECT stream_id || ' ' || (recorded_at::date)::text, count(*) FROM events \
         WHERE event_type = 'send_slot_reserved' GROUP BY 1 HAVING count(*) > $1",
    )
    .bind(DAILY_CAP)
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(over_cap.is_empty(), "{over_cap:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_serve_processes_share_the_work_one_at_a_time_and_the_standby_takes_over() {
    let database = common::ScratchDatabase::create("salesdept_serve_two");
    let first_dir = tempfile::tempdir().unwrap();
    let second_dir = tempfile::tempdir().unwrap();
    let config = write_config(first_dir.path(), TOKEN);
    let client = reqwest::Client::new();

    let (first, first_url) = start(first_dir.path(), &config, Some(&database.url));
    ready_as(&client, &first_url, "active", Duration::from_secs(90)).await;
    let pool = PgPool::connect(&database.url).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (_, page) = get_json(&client, &format!("{first_url}/api/leads?limit=1")).await;
        if page["total"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "no leads within three minutes");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The second process serves the same leads but runs nothing.
    let (second, second_url) = start(second_dir.path(), &config, Some(&database.url));
    ready_as(&client, &second_url, "standby", Duration::from_secs(60)).await;
    let (status, leads) = get_json(&client, &format!("{second_url}/api/leads?limit=1")).await;
    assert_eq!(status, 200);
    assert!(leads["total"].as_i64().unwrap() > 0, "{leads}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(operations(&client, &second_url).await, 0.0);
    assert!(operations(&client, &first_url).await > 0.0);
    wait_for_owner(&pool, &first, Duration::from_secs(30)).await;
    let owner: String = sqlx::query_scalar("SELECT owner FROM leases WHERE name = 'department'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(owner.starts_with(&format!("{}-", first.id())), "{owner}");

    // The active process dies without handing anything over: the standby takes over once the
    // leases expire, and runs the schedule and the subscriptions.
    let mut first = first;
    first.kill().unwrap();
    first.wait().unwrap();
    ready_as(&client, &second_url, "active", Duration::from_secs(60)).await;
    wait_for_owner(&pool, &second, Duration::from_secs(60)).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    while operations(&client, &second_url).await == 0.0 {
        assert!(
            Instant::now() < deadline,
            "the new active process ran no job"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_nothing_doubled(&pool).await;
    let (_, page) = get_json(
        &client,
        &format!("{second_url}/api/leads?limit=500&order=id"),
    )
    .await;
    let urls: Vec<&str> = page["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|lead| lead["linkedin_url"].as_str().unwrap())
        .collect();
    let unique: std::collections::BTreeSet<_> = urls.iter().collect();
    assert_eq!(unique.len(), urls.len(), "every profile is a lead once");

    // A clean stop hands the department lease back.
    stop(second);
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM leases WHERE name = 'department'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(held, 0, "a clean stop releases the department lease");
    pool.close().await;
}
