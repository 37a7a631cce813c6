//! `salesdept classify profiles|replies`, end to end: the built binary on the labelled
//! fixtures with the rules engine, on a file with malformed lines, and through the LLM chain
//! against a local fake OpenAI-compatible server configured in a temporary config directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use tempfile::TempDir;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_salesdept"))
}

/// `<repo root>/../shared/fixtures`, or from a git worktree further down the nearest ancestor
/// holding `shared/fixtures`.
fn fixture(name: &str) -> PathBuf {
    let repo_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    repo_root
        .ancestors()
        .skip(1)
        .map(|dir| dir.join("shared/fixtures"))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| repo_root.join("../shared/fixtures"))
        .join(name)
}

/// Runs salesdept in `dir` (so the embedded store and key, if opened, land there) with the
/// configuration directory `dir/config`.
fn salesdept(dir: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .current_dir(dir)
        .arg("--config")
        .arg(dir.join("config"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("SALESDEPT_MASTER_KEY")
        .env_remove("SALESDEPT_MASTER_KEY_FILE")
        .env("RUST_LOG", "error")
        .output()
        .expect("run salesdept")
}

fn workdir() -> TempDir {
    let dir = TempDir::new().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    dir
}

fn stdout_lines(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn input_ids(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["id"].clone())
        .collect()
}

/// The percentage printed after "FIELD: accuracy ".
fn reported_accuracy(stderr: &str, field: &str) -> f64 {
    let prefix = format!("{field}: accuracy ");
    let line = stderr
        .lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {field} accuracy in:\n{stderr}"));
    line[prefix.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn profiles_with_the_rules_one_line_per_profile_and_an_accuracy_report() {
    let dir = workdir();
    let file = fixture("profiles.dev.jsonl");
    let output = salesdept(
        dir.path(),
        &["classify", "profiles", file.to_str().unwrap(), "--rules"],
    );
    let errors = stderr(&output);
    assert!(output.status.success(), "{errors}");
    let lines = stdout_lines(&output);
    let ids: Vec<Value> = lines.iter().map(|line| line["id"].clone()).collect();
    assert_eq!(ids, input_ids(&file), "one line out per line in, in order");
    for line in &lines {
        let object = line.as_object().unwrap();
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "classification",
                "confidence",
                "id",
                "quality_score",
                "rationale"
            ]
        );
        assert!(
            ["Speaker", "Sponsor", "Other"].contains(&line["classification"].as_str().unwrap())
        );
        let confidence = line["confidence"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&confidence), "{line}");
        let score = line["quality_score"].as_f64().unwrap();
        assert!((1.0..=10.0).contains(&score), "{line}");
        assert!(!line["rationale"].as_str().unwrap().is_empty());
    }
    assert!(
        errors.contains("label \\ predicted"),
        "a confusion matrix: {errors}"
    );
    assert!(errors.contains("quality_score mean by tier"), "{errors}");
    assert!(
        reported_accuracy(&errors, "classification") >= 85.0,
        "{errors}"
    );
    assert!(!dir.path().join("data").exists(), "the rules need no store");
}

#[test]
fn replies_with_the_rules_one_line_per_reply_and_an_accuracy_report() {
    let dir = workdir();
    let file = fixture("replies.dev.jsonl");
    let output = salesdept(
        dir.path(),
        &["classify", "replies", file.to_str().unwrap(), "--rules"],
    );
    let errors = stderr(&output);
    assert!(output.status.success(), "{errors}");
    let lines = stdout_lines(&output);
    let ids: Vec<Value> = lines.iter().map(|line| line["id"].clone()).collect();
    assert_eq!(ids, input_ids(&file));
    for line in &lines {
        for field in ["sentiment", "intent", "confidence"] {
            assert!(line.get(field).is_some(), "{field} missing in {line}");
        }
    }
    let out_of_office = lines.iter().find(|line| line["id"] == "rd-005").unwrap();
    assert_eq!(out_of_office["intent"], "OutOfOffice");
    assert_eq!(out_of_office["return_date"], "14 March");
    assert!(reported_accuracy(&errors, "intent") >= 85.0, "{errors}");
    assert!(reported_accuracy(&errors, "sentiment") >= 85.0, "{errors}");
    assert!(errors.contains("DoNotContact recall: 100.0 %"), "{errors}");
}

#[test]
fn without_any_llm_configuration_the_rules_answer_and_no_store_is_opened() {
    let dir = workdir();
    let file = dir.path().join("replies.jsonl");
    std::fs::write(
        &file,
        "{\"id\": 1, \"text\": \"Please stop messaging me.\"}\n",
    )
    .unwrap();
    let output = salesdept(dir.path(), &["classify", "replies", file.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("with the rules engine"),
        "{}",
        stderr(&output)
    );
    let lines = stdout_lines(&output);
    assert_eq!(lines[0]["id"], 1);
    assert_eq!(lines[0]["intent"], "DoNotContact");
    assert!(!dir.path().join("data").exists());
}

#[test]
fn malformed_lines_are_named_and_do_not_stop_the_others() {
    let dir = workdir();
    let file = dir.path().join("profiles.jsonl");
    let lines = [
        r#"{"id": "ok-1", "name": "Ada", "position": "CTO", "industry": "Software Development"}"#,
        r#"{"id": "broken", "position": "CTO""#,
        "",
        r#"{"id": "p4", "position": 7}"#,
        r#"["not", "an", "object"]"#,
        r#"{"id": "p6", "position": "VP Marketing", "label": "Vendor"}"#,
        r#"{"id": "ok-7", "name": "Bo", "position": "Recruiter", "industry": "Staffing"}"#,
    ];
    std::fs::write(&file, lines.join("\n")).unwrap();
    let output = salesdept(
        dir.path(),
        &["classify", "profiles", file.to_str().unwrap(), "--rules"],
    );
    let errors = stderr(&output);
    assert!(
        !output.status.success(),
        "a failed line makes the command fail"
    );
    let ids: Vec<Value> = stdout_lines(&output)
        .iter()
        .map(|line| line["id"].clone())
        .collect();
    assert_eq!(ids, [json!("ok-1"), json!("ok-7")], "{errors}");
    for (number, why) in [
        (2, "not valid JSON"),
        (4, "must be strings"),
        (5, "expected a JSON object"),
        (6, "label label"),
    ] {
        assert!(
            errors.contains(&format!("error: line {number}: ")) && errors.contains(why),
            "line {number} ({why}) is not reported:\n{errors}"
        );
    }
    assert!(
        !errors.contains("line 3:"),
        "a blank line is no error: {errors}"
    );
    assert!(
        errors.contains("4 of 6 lines could not be classified"),
        "{errors}"
    );
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let dir = workdir();
    let output = salesdept(
        dir.path(),
        &["classify", "replies", "nowhere.jsonl", "--rules"],
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("cannot open nowhere.jsonl"),
        "{}",
        stderr(&output)
    );
}

/// A fake OpenAI-compatible server that answers every chat completion with `answer`.
async fn fake_llm(answer: &Value) -> MockServer {
    let server = MockServer::start().await;
    let body = json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_764_000_000u32,
        "model": "fake-model",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": answer.to_string()},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    });
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    server
}

fn write_llm_config(dir: &Path, server: &MockServer) {
    std::fs::write(
        dir.join("config/agents.yaml"),
        "lead_finder:\n  llm_provider: fake\n  llm_model: fake-model\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("config/llm.yaml"),
        format!(
            "providers:\n  fake:\n    kind: openai_compatible\n    base_url: {}/v1\n    \
             default_model: fake-model\n    max_tokens: 200\n\
             agents:\n  lead_finder:\n    chain:\n      - {{ provider: fake, temperature: 0.0 }}\n\
             prices:\n  fake-model: {{ prompt: 0.0, completion: 0.0 }}\n\
             resilience:\n  timeout_seconds: 5\n  max_retries: 0\n  min_backoff_seconds: 0.01\n  \
             max_backoff_seconds: 0.05\n  max_retry_after_seconds: 1\n  \
             breaker_failure_threshold: 5\n  breaker_cool_down_seconds: 60\n",
            server.uri()
        ),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_through_the_llm_chain_get_the_fake_models_answers_and_the_cache() {
    let server = fake_llm(&json!({
        "classification": "Sponsor", "confidence": 0.91, "quality_score": 6.5,
        "rationale": "the fake model's verdict"
    }))
    .await;
    let dir = workdir();
    write_llm_config(dir.path(), &server);
    let file = dir.path().join("profiles.jsonl");
    let three: Vec<String> = std::fs::read_to_string(fixture("profiles.dev.jsonl"))
        .unwrap()
        .lines()
        .take(3)
        .map(str::to_owned)
        .collect();
    std::fs::write(&file, three.join("\n")).unwrap();
    let run = |args: Vec<String>| {
        let dir = dir.path().to_owned();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            salesdept(&dir, &args)
        })
    };
    let args = |extra: &[&str]| {
        let mut args = vec![
            "classify".to_owned(),
            "profiles".to_owned(),
            file.display().to_string(),
        ];
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        args
    };

    let output = run(args(&[])).await.unwrap();
    let errors = stderr(&output);
    assert!(output.status.success(), "{errors}");
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 3);
    for line in &lines {
        assert_eq!(line["classification"], "Sponsor", "{line}");
        assert_eq!(line["rationale"], "the fake model's verdict", "{line}");
        assert_eq!(line["quality_score"], 6.5);
    }
    assert!(errors.contains("provider 3, cache 0, rules 0"), "{errors}");
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3, "one call per profile");
    // The profile reaches the model as data in the user message, never in the instructions.
    let body: Value = requests[0].body_json().unwrap();
    let system = body["messages"][0]["content"].as_str().unwrap();
    let user = body["messages"][1]["content"].as_str().unwrap();
    assert!(
        !system.contains("Maya Lindqvist") && user.contains("Maya Lindqvist"),
        "{body}"
    );
    // The first profile is labelled Speaker, so the fake's answers score 0 of 1 there.
    assert!(errors.contains("classification: accuracy"), "{errors}");

    // The same input again is served from the store's cache.
    let again = run(args(&[])).await.unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("provider 0, cache 3, rules 0"),
        "{}",
        stderr(&again)
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 3);

    // --rules forces the rules engine: no call, the rules' rationale.
    let rules = run(args(&["--rules"])).await.unwrap();
    assert!(rules.status.success(), "{}", stderr(&rules));
    let lines = stdout_lines(&rules);
    assert_eq!(lines[0]["classification"], "Speaker");
    assert_ne!(lines[0]["rationale"], "the fake model's verdict");
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[test]
fn an_llm_provider_without_llm_yaml_is_a_configuration_error() {
    let dir = workdir();
    std::fs::write(
        dir.path().join("config/agents.yaml"),
        "sales_manager:\n  llm_provider: openai\n",
    )
    .unwrap();
    let file = dir.path().join("replies.jsonl");
    std::fs::write(&file, "{\"id\": 1, \"text\": \"Yes!\"}\n").unwrap();
    let output = salesdept(dir.path(), &["classify", "replies", file.to_str().unwrap()]);
    assert!(!output.status.success());
    let errors = stderr(&output);
    assert!(
        errors.contains("sales_manager.llm_provider") && errors.contains("llm.yaml"),
        "{errors}"
    );
}
