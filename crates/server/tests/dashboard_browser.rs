//! The dashboard in a real headless Chromium (Debian's `chromium` driven by `chromedriver`
//! through fantoccini): the real `salesdept serve` binary on a scratch SQLite file that holds
//! one draft waiting for review. The test logs in with a token, opens the overview (its live
//! feed connected) in one window and the review queue in another, approves the draft there,
//! and sees `message_approved` by the session's user appear in the first window's feed.
//!
//! Without `/usr/bin/chromium` or `/usr/bin/chromedriver` the test fails (`.ci/run` installs
//! them with apt-get).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use salesdept_events::domain::lead::{DiscoverLead, LeadSource, MessageKind, Priority, Review};
use salesdept_events::domain::{
    Classification, CommandHandler, CommandMetadata, Confidence, FollowUpPolicy, LeadCommand,
    LeadState, LinkedInUrl, Pii, QualityScore, lead_stream,
};
use salesdept_events::{Actor, EventStore, Store, Subscription, domain};
use salesdept_projections::LeadTableHandler;
use uuid::Uuid;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const TOKEN: &str = "browser-operator-token-5e8d21";
const WAIT: Duration = Duration::from_secs(30);

/// Kills the child when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A lead held for review with one first-message draft: (lead, draft). The lead table is
/// caught up, so the review queue lists it from the start.
async fn seed(url: &str) -> (Uuid, Uuid) {
    let store = Store::connect(url, domain::upcasters()).await.unwrap();
    store.migrate().await.unwrap();
    let handler = CommandHandler::new(Arc::new(store.clone()));
    let lead_id = Uuid::now_v7();
    let draft_id = Uuid::now_v7();
    let now = chrono::Utc::now();
    let commands = [
        (
            LeadCommand::Discover(DiscoverLead {
                lead_id,
                url: LinkedInUrl::parse("https://www.linkedin.com/in/browser-test-person").unwrap(),
                name: "Katherine Johnson".into(),
                position: "Head of Research".into(),
                company: "Orbitworks".into(),
                company_size: None,
                industry: None,
                is_connection: true,
                source: LeadSource::Search,
                search_id: None,
                import_format: None,
                profile: Pii::default(),
            }),
            "lead_finder",
        ),
        (
            LeadCommand::Classify {
                classification: Classification::Speaker,
                confidence: Confidence::parse(0.9).unwrap(),
                rationale: None,
            },
            "lead_finder",
        ),
        (
            LeadCommand::Score {
                score: QualityScore::parse(8.0).unwrap(),
                factors: BTreeMap::new(),
                rationale: None,
            },
            "lead_finder",
        ),
        (
            LeadCommand::Allocate {
                assigned_to: "outreach".into(),
                priority: Priority::High,
                reason: "high quality speaker".into(),
            },
            "sales_manager",
        ),
        (
            LeadCommand::DraftMessage {
                draft_id,
                kind: MessageKind::Initial,
                variant: Some("speaker_a".into()),
                text: "Hello Katherine, would you speak at our summit?".into(),
                review: Review::Required {
                    reason: "first message of a new variant".into(),
                },
                policy: FollowUpPolicy::default(),
            },
            "outreach",
        ),
    ];
    for (command, agent) in commands {
        handler
            .execute::<LeadState>(
                &lead_stream(lead_id),
                &command,
                &CommandMetadata::new(Actor::agent(agent), now),
            )
            .await
            .unwrap();
    }
    let subscription = Subscription::new(
        salesdept_projections::leads::SUBSCRIPTION_NAME,
        store.clone(),
        Arc::new(LeadTableHandler::new()),
    );
    subscription.catch_up().await.unwrap();
    subscription.release_lease().await.unwrap();
    let row = salesdept_projections::get_lead(&store, lead_id)
        .await
        .unwrap();
    assert_eq!(
        row.map(|row| row.version),
        store.stream_version(&lead_stream(lead_id)).await.unwrap()
    );
    store.close().await;
    (lead_id, draft_id)
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/agents.yaml"),
    )
    .unwrap();
    std::fs::write(
        config.join("agents.yaml"),
        format!(
            "{shipped}\napi:\n  tokens:\n    - {{user: katya, role: operator, token: \"{TOKEN}\"}}\n"
        ),
    )
    .unwrap();
    config
}

/// `salesdept serve` on `database`: the child and its base URL.
fn serve(dir: &Path, config: &Path, database: &str) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_salesdept"))
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .arg("--config")
        .arg(config)
        .args(["--database", database, "serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("serve printed its address").unwrap();
        if let Some(url) = line.strip_prefix("salesdept serving on ") {
            break url.trim().to_owned();
        }
    };
    (running, url)
}

/// chromedriver on a free port, once it answers: the child and its URL.
async fn chromedriver() -> (Running, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {CHROMEDRIVER}: {error}"));
    let running = Running(child);
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(response) = client.get(format!("{url}/status")).send().await
            && response.status().is_success()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver never answered on {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (running, url)
}

async fn browser(webdriver: &str) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(webdriver)
        .await
        .expect("chromedriver starts a headless Chromium session")
}

/// Waits until the text of `css` contains `wanted`.
async fn wait_for_text(browser: &Client, css: &str, wanted: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(element) = browser.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
            && text.contains(wanted)
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{css} never showed {wanted:?}; the page: {}",
            browser.source().await.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approving_a_draft_in_chromium_shows_in_the_live_feed() {
    for binary in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(binary).exists(),
            "{binary} is missing: install Debian's chromium and chromium-driver \
             (`apt-get install -y chromium chromium-driver`; .ci/run does)"
        );
    }
    let dir = tempfile::TempDir::new().unwrap();
    let database = format!("sqlite://{}", dir.path().join("dashboard.sqlite").display());
    let (lead_id, draft_id) = seed(&database).await;
    let config = write_config(dir.path());
    let (_serve, url) = serve(dir.path(), &config, &database);
    let (_driver, webdriver) = chromedriver().await;
    let browser = browser(&webdriver).await;

    let result = async {
        // Log in.
        browser.goto(&format!("{url}/")).await?;
        let token = browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Id("token"))
            .await?;
        token.send_keys(TOKEN).await?;
        browser.find(Locator::Id("login")).await?.click().await?;
        wait_for_text(&browser, "h1", "Overview").await;
        let overview_source = browser.source().await?;
        assert!(
            overview_source.contains("funnel-chart"),
            "the funnel is drawn"
        );
        // The overview's feed is connected before anything happens.
        wait_for_text(&browser, "#live-status", "live").await;
        let overview = browser.window().await?;

        // Approve in another window.
        let review = browser.new_window(false).await?;
        browser.switch_to_window(review.handle).await?;
        browser.goto(&format!("{url}/review")).await?;
        wait_for_text(&browser, "main", "Katherine Johnson").await;
        let approve =
            format!("form[action=\"/review/{lead_id}/drafts/{draft_id}/approve\"] button");
        browser.find(Locator::Css(&approve)).await?.click().await?;
        wait_for_text(&browser, "main", "No draft is waiting").await;

        // The first window's feed shows the approval, by the session's user.
        browser.switch_to_window(overview).await?;
        let feed = wait_for_text(&browser, "#live-feed", "message_approved").await;
        let line = feed
            .lines()
            .find(|line| line.contains("message_approved"))
            .unwrap()
            .to_owned();
        assert!(line.contains(&format!("lead-{lead_id}")), "{line}");
        assert!(line.contains("human:katya"), "{line}");
        Ok::<_, fantoccini::error::CmdError>(())
    }
    .await;
    browser.close().await.unwrap();
    result.unwrap();

    // The approval is the same event the JSON API appends.
    let store = Store::connect(&database, domain::upcasters())
        .await
        .unwrap();
    let events = store
        .read_stream(&lead_stream(lead_id), 1, None)
        .await
        .unwrap();
    let approved = events
        .iter()
        .find(|event| event.event_type == "message_approved")
        .expect("message_approved in the lead's stream");
    assert_eq!(approved.metadata.actor, Actor::human("katya"));
    assert_eq!(approved.data["draft_id"], draft_id.to_string());
    store.close().await;
}
