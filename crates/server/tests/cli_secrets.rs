//! Secrets never reach output or the log: the real binary, at `RUST_LOG=debug`, with a
//! configuration holding a fake but distinctive value for every secret it reads (the master
//! key, an API token, an LLM API key, a service-account key file), runs `config check`, a
//! short simulation and an import whose LLM calls fail against a local server that refuses
//! them. Every secret value is then looked for in stdout, stderr, the event log's file and
//! every file the runs wrote.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const API_TOKEN: &str = "apitoken-SECRET-7f3a9c1e5b2d4a6f";
const LLM_API_KEY: &str = "sk-SECRET-llmkey-0c4e8a2f6b1d3e5a";
const SERVICE_ACCOUNT_PRIVATE_KEY: &str = "SERVICEACCOUNTSECRET9d8c7b6a5f4e3d2c";
/// 32 bytes, so it is a usable master key; found in output by its base64 text.
const MASTER_KEY_BYTES: &[u8; 32] = b"MASTERKEY-SECRET-0123456789abcde";

fn master_key_base64() -> String {
    base64::engine::general_purpose::STANDARD.encode(MASTER_KEY_BYTES)
}

fn salesdept(dir: &Path, args: &[&str]) -> Output {
    Command::new(PathBuf::from(env!("CARGO_BIN_EXE_salesdept")))
        .current_dir(dir)
        .arg("--config")
        .arg(dir.join("config"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("SALESDEPT_MASTER_KEY_FILE")
        .env("SALESDEPT_MASTER_KEY", master_key_base64())
        .env("SECRETS_TEST_API_TOKEN", API_TOKEN)
        .env("SECRETS_TEST_LLM_KEY", LLM_API_KEY)
        .env("RUST_LOG", "debug")
        .output()
        .expect("run salesdept")
}

fn write_config(dir: &Path, llm_base_url: &str) {
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    let key_file = dir.join("service-account.json");
    std::fs::write(
        &key_file,
        format!(
            r#"{{"type":"service_account","client_email":"sheet@example.iam.gserviceaccount.com","private_key":"{SERVICE_ACCOUNT_PRIVATE_KEY}","token_uri":"http://127.0.0.1:9/token"}}"#
        ),
    )
    .unwrap();
    std::fs::write(
        config.join("agents.yaml"),
        format!(
            "lead_finder:\n  llm_provider: fake\n  llm_model: fake-model\n\
             sheet:\n  service_account_key_file: {}\n\
             api:\n  tokens:\n    - {{ user: ops, role: operator, token: \"${{SECRETS_TEST_API_TOKEN}}\" }}\n",
            key_file.display()
        ),
    )
    .unwrap();
    std::fs::write(
        config.join("llm.yaml"),
        format!(
            "providers:\n  fake:\n    kind: openai_compatible\n    base_url: {llm_base_url}\n    \
             api_key: \"${{SECRETS_TEST_LLM_KEY}}\"\n    default_model: fake-model\n\
             agents:\n  lead_finder:\n    chain:\n      - {{ provider: fake }}\n\
             prices:\n  fake-model: {{ prompt: 0.0, completion: 0.0 }}\n\
             resilience:\n  timeout_seconds: 2\n  max_retries: 0\n  min_backoff_seconds: 0.01\n  max_backoff_seconds: 0.02\n  \
             max_retry_after_seconds: 1\n  breaker_failure_threshold: 5\n  breaker_cool_down_seconds: 60\n"
        ),
    )
    .unwrap();
}

/// Every file under `dir`, read as bytes.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    found
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_configured_secret_appears_in_output_logs_or_the_event_log() {
    // The LLM server refuses every call, so the import's LLM path fails and falls back to the
    // rules: the error path, where a key is most likely to be echoed.
    let llm = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401).set_body_string(
            r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}"#,
        ))
        .mount(&llm)
        .await;
    let dir = tempfile::TempDir::new().unwrap();
    write_config(dir.path(), &format!("{}/v1", llm.uri()));
    std::fs::write(
        dir.path().join("prospects.csv"),
        "Full Name,LinkedIn URL,Title,Company\n\
         Ada Example,https://www.linkedin.com/in/ada-example,CTO,Example GmbH\n",
    )
    .unwrap();

    let runs = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || {
            let database = format!("sqlite://{}", dir.join("import.sqlite").display());
            vec![
                ("config check", salesdept(&dir, &["config", "check"])),
                (
                    "simulate",
                    salesdept(
                        &dir,
                        &[
                            "simulate",
                            "--days",
                            "3",
                            "--seed",
                            "11",
                            "--network-size",
                            "2000",
                            "--output",
                            "run",
                        ],
                    ),
                ),
                (
                    "import",
                    salesdept(&dir, &["--database", &database, "import", "prospects.csv"]),
                ),
            ]
        }
    })
    .await
    .unwrap();

    let secrets = [
        ("API token", API_TOKEN.to_owned()),
        ("LLM API key", LLM_API_KEY.to_owned()),
        (
            "service-account key",
            SERVICE_ACCOUNT_PRIVATE_KEY.to_owned(),
        ),
        ("master key", master_key_base64()),
        (
            "master key bytes",
            String::from_utf8(MASTER_KEY_BYTES.to_vec()).unwrap(),
        ),
    ];
    for (name, output) in &runs {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{name} failed: {}\n{stderr}",
            String::from_utf8_lossy(&output.stdout)
        );
        // The debug logs are on: the check is not vacuous.
        assert!(
            stderr.contains("DEBUG") || *name == "config check",
            "{name}: no debug log lines: {stderr}"
        );
        for (secret_name, value) in &secrets {
            assert!(
                !contains(&output.stdout, value),
                "{name}: the {secret_name} is in stdout"
            );
            assert!(
                !contains(&output.stderr, value),
                "{name}: the {secret_name} is in stderr"
            );
        }
    }
    assert!(
        !llm.received_requests().await.unwrap().is_empty(),
        "the import asked the LLM (so the key was in use)"
    );
    let written = files_under(dir.path());
    assert!(
        written
            .iter()
            .any(|(path, _)| path.ends_with("run/salesdept.sqlite")),
        "the simulation's event log is there"
    );
    for (path, bytes) in &written {
        if path.ends_with("service-account.json") {
            continue;
        }
        for (secret_name, value) in &secrets {
            assert!(
                !contains(bytes, value),
                "the {secret_name} is in {}",
                path.display()
            );
        }
    }
}
