//! `salesdept serve --demo` end to end: the real binary on a fresh SQLite file in a temporary
//! directory and on a fresh PostgreSQL database — health, readiness, leads through the API, a clean stop on SIGTERM, a restart
//! that sees the same leads.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "serve-test-token-0123456789";

fn write_config(dir: &std::path::Path) -> std::path::PathBuf {
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/agents.yaml"),
    )
    .unwrap();
    std::fs::write(
        config.join("agents.yaml"),
        format!(
            "{shipped}\napi:\n  tokens:\n    - {{user: tester, role: viewer, token: \"{TOKEN}\"}}\n"
        ),
    )
    .unwrap();
    config
}

/// Starts the service and returns it with its base URL.
fn start(
    dir: &std::path::Path,
    config: &std::path::Path,
    database: Option<&str>,
) -> (Child, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_salesdept"));
    command
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .args(["--config"])
        .arg(config);
    if let Some(url) = database {
        command.args(["--database", url]);
    }
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0", "--demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(url) = line.strip_prefix("salesdept serving on ") {
            break url.trim().to_owned();
        }
    };
    (child, url)
}

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

fn stop(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "serve exited with {status}");
            return;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
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
    let config = write_config(dir.path());
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
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await.unwrap();
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
