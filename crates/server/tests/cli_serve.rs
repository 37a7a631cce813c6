//! `salesdept serve --demo` end to end: the real binary on a fresh SQLite file in a temporary
//! directory and on a fresh PostgreSQL database — health, readiness, leads through the API, a clean stop on SIGTERM, a restart
//! that sees the same leads.

mod common;

use common::serve::{start, stop, write_config};

use std::time::{Duration, Instant};

const TOKEN: &str = "serve-test-token-0123456789";

async fn leads(client: &reqwest::Client, url: &str) -> serde_json::Value {
    client
        .get(format!("{url}/api/leads?limit=500&order=id"))
        .bearer_auth(TOKEN)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_demo_finds_leads_stops_cleanly_and_restarts_on_the_same_log() {
    serve_demo(None, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_demo_on_postgres() {
    let database = common::ScratchDatabase::create("salesdept_serve");
    serve_demo(Some(database.url.clone()), "postgres").await;
}

async fn serve_demo(database: Option<String>, backend: &str) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), TOKEN);
    let client = reqwest::Client::new();
    let (child, url) = start(dir.path(), &config, database.as_deref());

    let health = client
        .get(format!("{url}/healthz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok");
    let unauthorised = client
        .get(format!("{url}/api/leads"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorised.status(), 401);

    // Leads (within seconds alone; the bound is generous for a machine running the whole suite
    // on two cores); then readiness (the scheduler has beaten by then).
    let deadline = Instant::now() + Duration::from_secs(180);
    let first = loop {
        let page = leads(&client, &url).await;
        if page["total"].as_i64().unwrap_or(0) > 0 {
            break page;
        }
        if Instant::now() >= deadline {
            let ready = client
                .get(format!("{url}/readyz"))
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            panic!("no leads within three minutes; readiness: {ready}");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let ready = client
        .get(format!("{url}/readyz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    let ready_status = ready.status();
    let ready: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(ready_status, 200, "{ready}");
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["backend"], backend);
    assert!(ready["jobs"]["scheduled_search"].as_u64().unwrap() >= 1);
    for agent in ["lead_finder", "outreach", "sales_manager", "projections"] {
        assert!(
            ready["agents"][agent]["heartbeat_at"].is_string(),
            "{agent}: {ready}"
        );
    }
    // The jobs that found the leads are counted, and the lead table's lag is reported.
    let metrics = client
        .get(format!("{url}/metrics"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.lines().any(|line| line.starts_with(
            "salesdept_agent_operations_total{agent=\"lead_finder\",job=\"scheduled_search\"}"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains("salesdept_subscription_lag_events{subscription="),
        "{metrics}"
    );
    stop(child);
    let ids = |page: &serde_json::Value| {
        page["leads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|lead| lead["lead_id"].as_str().unwrap().to_owned())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let before = ids(&first);

    let (child, url) = start(dir.path(), &config, database.as_deref());
    let again = leads(&client, &url).await;
    let after = ids(&again);
    assert!(before.is_subset(&after), "a restart keeps the leads");
    // The search of the day is not repeated: no new lead appears from a second search.
    let urls: Vec<_> = again["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|lead| lead["linkedin_url"].as_str().unwrap().to_owned())
        .collect();
    let unique: std::collections::BTreeSet<_> = urls.iter().collect();
    assert_eq!(unique.len(), urls.len(), "every profile is a lead once");
    stop(child);
}
