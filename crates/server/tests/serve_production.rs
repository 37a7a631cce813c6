//! `salesdept serve` on the production example configuration (`config/production/`), its
//! providers replaced by local fakes: Unipile (wiremock) for LinkedIn, an OpenAI-compatible
//! server (wiremock) for the LLM. The leads come from the provider, not the sandbox; the LLM
//! is called with the configured key; readiness reports every agent; a signed webhook wakes
//! the inbox check; no configured secret appears in the logs.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use salesdept_agents::linkedin::webhooks::sign_hmac_sha256;
use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{header, method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const OPS_TOKEN: &str = "ops-token-for-the-production-test-4411";
const ADMIN_TOKEN: &str = "admin-token-for-the-production-test-9923";
const UNIPILE_KEY: &str = "unipile-key-very-secret-5521";
const OPENAI_KEY: &str = "sk-test-openai-key-very-secret-7734";
const SMTP_PASSWORD: &str = "smtp-password-very-secret-1187";
const WEBHOOK_SECRET: &str = "webhook-secret-very-secret-6650";

async fn unipile() -> MockServer {
    let server = MockServer::start().await;
    let json = |body: serde_json::Value| ResponseTemplate::new(200).set_body_json(body);
    Mock::given(method("GET"))
        .and(path("/api/v1/linkedin/search/parameters"))
        .respond_with(json(json!({
            "object": "LinkedinSearchParametersList",
            "items": [{"object": "LinkedinSearchParameter", "id": "4", "title": "Resolved"}],
            "paging": {"page_count": 1}
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/linkedin/search"))
        .and(header("X-API-KEY", UNIPILE_KEY))
        .respond_with(json(json!({
            "object": "LinkedinSearch",
            "items": [
                {"object": "SearchResult", "type": "PEOPLE", "id": "ACoAAAmaya",
                 "public_identifier": "maya-lindqvist-d1",
                 "public_profile_url": "https://www.linkedin.com/in/maya-lindqvist-d1",
                 "name": "Maya Lindqvist", "headline": "CTO at Fjordbyte",
                 "location": "Stockholm, Sweden", "network_distance": "DISTANCE_2"}
            ],
            "paging": {"start": 0, "page_count": 1, "total_count": 1},
            "cursor": null
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(
            r"^/api/v1/(messages|users/relations|users/invite/sent)$",
        ))
        .respond_with(json(json!({"object": "List", "items": [], "cursor": null})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/api/v1/users/[^/]+$"))
        .respond_with(json(json!({
            "object": "UserProfile", "provider": "LINKEDIN", "provider_id": "ACoAAAmaya",
            "public_identifier": "maya-lindqvist-d1", "first_name": "Maya", "last_name": "Lindqvist",
            "headline": "CTO", "summary": "Spoke at QCon and KubeCon about platform engineering.",
            "location": "Stockholm, Sweden",
            "work_experience": [{"company": "Fjordbyte", "position": "CTO", "start": "1/1/2020", "end": null}]
        })))
        .mount(&server)
        .await;
    server
}

async fn openai() -> MockServer {
    let server = MockServer::start().await;
    // An answer that is not the asked-for JSON: the router falls back to the rules.
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "not json at all"}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14}
        })))
        .mount(&server)
        .await;
    server
}

/// The production example with the fakes' addresses, the CSV sheet (the Google Sheet has its
/// own tests against a fake Sheets API) and SMTP on a local port nothing listens on.
fn write_config(
    dir: &std::path::Path,
    unipile: &MockServer,
    openai: &MockServer,
) -> std::path::PathBuf {
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/production");
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    let agents = std::fs::read_to_string(shipped.join("agents.yaml"))
        .unwrap()
        .replace("provider: google", "provider: csv")
        .replace("smtp_host: smtp.example.com", "smtp_host: 127.0.0.1")
        .replace("smtp_port: 587", "smtp_port: 9");
    std::fs::write(config.join("agents.yaml"), agents).unwrap();
    let llm = std::fs::read_to_string(shipped.join("llm.yaml"))
        .unwrap()
        .replace("https://api.openai.com/v1", &format!("{}/v1", openai.uri()));
    std::fs::write(config.join("llm.yaml"), llm).unwrap();
    let _ = unipile;
    config
}

struct Served {
    child: Child,
    url: String,
    output: Arc<Mutex<String>>,
}

fn start(dir: &std::path::Path, config: &std::path::Path, unipile: &MockServer) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_salesdept"))
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "debug,sqlx=warn")
        .env("SALESDEPT_LOG_FORMAT", "json")
        .env("OPENAI_API_KEY", OPENAI_KEY)
        .env("UNIPILE_API_KEY", UNIPILE_KEY)
        .env("UNIPILE_DSN", unipile.uri())
        .env("UNIPILE_PRIMARY_ACCOUNT_ID", "acc-primary")
        .env("UNIPILE_RESERVE_ACCOUNT_ID", "acc-reserve")
        .env("SHEET_ID", "sheet-id-1")
        .env("SMTP_PASSWORD", SMTP_PASSWORD)
        .env("LINKEDIN_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("API_TOKEN_OPS", OPS_TOKEN)
        .env("API_TOKEN_ADMIN", ADMIN_TOKEN)
        .arg("--config")
        .arg(config)
        .args(["serve", "--listen", "127.0.0.1:0", "--demo"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = Arc::new(Mutex::new(String::new()));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let Some(line) = lines.next() else {
            let mut stderr = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
            let tail: String = stderr
                .chars()
                .rev()
                .take(3000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            panic!("serve exited before printing its address: …{tail}");
        };
        let line = line.unwrap();
        output.lock().unwrap().push_str(&line);
        if let Some(url) = line.strip_prefix("salesdept serving on ") {
            break url.trim().to_owned();
        }
    };
    let sink = Arc::clone(&output);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let mut sink = sink.lock().unwrap();
            sink.push_str(&line);
            sink.push('\n');
        }
    });
    let mut stderr = child.stderr.take().unwrap();
    let sink = Arc::clone(&output);
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        sink.lock().unwrap().push_str(&text);
    });
    Served { child, url, output }
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

async fn requests_to(server: &MockServer, wanted: &str) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|request| request.url.path() == wanted)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_runs_on_the_configured_providers() {
    let unipile = unipile().await;
    let openai = openai().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &unipile, &openai);
    let served = start(dir.path(), &config, &unipile);
    let url = served.url.clone();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    // The lead comes from the provider's search, classified after asking the LLM.
    let deadline = Instant::now() + Duration::from_secs(60);
    let leads = loop {
        let page: serde_json::Value = client
            .get(format!("{url}/api/leads?limit=50"))
            .bearer_auth(OPS_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if page["total"].as_i64().unwrap_or(0) > 0 {
            break page;
        }
        assert!(
            Instant::now() < deadline,
            "no lead within a minute: {}",
            served.output.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let urls: Vec<&str> = leads["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|lead| lead["linkedin_url"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        ["https://www.linkedin.com/in/maya-lindqvist-d1"],
        "only the provider's people, no sandbox"
    );
    let searches = requests_to(&unipile, "/api/v1/linkedin/search").await;
    assert!(!searches.is_empty());
    assert!(
        searches.iter().all(|request| request
            .url
            .query()
            .unwrap_or("")
            .contains("account_id=acc-primary")),
        "the Lead Finder searches through the primary account"
    );
    let completions = requests_to(&openai, "/v1/chat/completions").await;
    assert!(!completions.is_empty(), "the LLM was asked");
    assert!(completions.iter().all(|request| {
        request
            .headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            == Some(&format!("Bearer {OPENAI_KEY}")[..])
    }));

    // Readiness names every agent.
    let ready: serde_json::Value = client
        .get(format!("{url}/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    for agent in ["lead_finder", "outreach", "sales_manager", "projections"] {
        assert!(ready["agents"][agent]["age_seconds"].is_u64(), "{ready}");
    }

    // Webhooks: refused without the signature, accepted with it, and the inbox check runs.
    let body = serde_json::to_vec(&json!({
        "type": "reply",
        "profile_url": "https://www.linkedin.com/in/maya-lindqvist-d1",
        "text": "Sounds interesting, tell me more",
        "at": "2026-12-01T10:00:00Z"
    }))
    .unwrap();
    let unsigned = client
        .post(format!("{url}/webhooks/linkedin"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    let forged = client
        .post(format!("{url}/webhooks/unipile"))
        .header("X-Webhook-Secret", "not-the-secret")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    let polls_before = requests_to(&unipile, "/api/v1/messages").await.len();
    let signature = sign_hmac_sha256(&SecretString::from(WEBHOOK_SECRET), &body);
    let accepted = client
        .post(format!("{url}/webhooks/linkedin"))
        .header("X-Signature", signature)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 202);
    let accepted: serde_json::Value = accepted.json().await.unwrap();
    assert_eq!(accepted["deliveries"], 1);
    assert_eq!(accepted["replies"], 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while requests_to(&unipile, "/api/v1/messages").await.len() <= polls_before {
        assert!(
            Instant::now() < deadline,
            "the webhook did not wake the inbox check"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let malformed = client
        .post(format!("{url}/webhooks/dripify/{WEBHOOK_SECRET}"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);

    let output = Arc::clone(&served.output);
    stop(served.child);
    std::thread::sleep(Duration::from_millis(200));
    let output = output.lock().unwrap();
    assert!(output.contains("\"level\""), "JSON logs were captured");
    for secret in [
        OPS_TOKEN,
        ADMIN_TOKEN,
        UNIPILE_KEY,
        OPENAI_KEY,
        SMTP_PASSWORD,
        WEBHOOK_SECRET,
    ] {
        assert!(!output.contains(secret), "a secret reached the logs");
    }
}
