//! The `salesdept` binary's `migrate` and `log` commands, end to end, on the embedded SQLite
//! default and on the real PostgreSQL when `DATABASE_URL` names one.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The binary cargo built for this test run.
fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_salesdept"))
}

fn salesdept(dir: &Path, database: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(binary());
    command
        .current_dir(dir)
        .args(args)
        .env_remove("DATABASE_URL");
    if let Some(url) = database {
        command.args(["--database", url]);
    }
    command.output().expect("run salesdept")
}

fn ok(output: Output) -> String {
    assert!(
        output.status.success(),
        "salesdept failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

fn exercise_log(dir: &Path, database: Option<&str>, stream: &str) {
    ok(salesdept(dir, database, &["migrate"]));
    let event_id = uuid::Uuid::new_v4().to_string();
    let appended = ok(salesdept(
        dir,
        database,
        &[
            "log",
            "append",
            "--stream",
            stream,
            "--type",
            "note_added",
            "--data",
            r#"{"n":1}"#,
            "--expected-version",
            "none",
            "--event-id",
            &event_id,
            "--actor",
            "human:alice",
            "--json",
        ],
    ));
    let appended = &json_lines(&appended)[0];
    assert_eq!(appended["stream_version"], 1);
    assert_eq!(appended["metadata"]["actor"]["name"], "alice");

    // Re-appending the same event id stores it once.
    let again = ok(salesdept(
        dir,
        database,
        &[
            "log",
            "append",
            "--stream",
            stream,
            "--type",
            "note_added",
            "--data",
            r#"{"n":1}"#,
            "--expected-version",
            "none",
            "--event-id",
            &event_id,
        ],
    ));
    assert!(again.contains("already stored"), "{again}");

    ok(salesdept(
        dir,
        database,
        &[
            "log",
            "append",
            "--stream",
            stream,
            "--type",
            "note_added",
            "--data",
            r#"{"n":2}"#,
            "--expected-version",
            "1",
        ],
    ));

    // A conflict exits non-zero and names the expected and the actual version.
    let conflict = salesdept(
        dir,
        database,
        &[
            "log",
            "append",
            "--stream",
            stream,
            "--type",
            "note_added",
            "--data",
            r#"{"n":3}"#,
            "--expected-version",
            "1",
        ],
    );
    assert_eq!(conflict.status.code(), Some(3));
    let message = String::from_utf8_lossy(&conflict.stderr);
    assert!(
        message.contains("expected 1") && message.contains("actual 2"),
        "{message}"
    );

    let read = json_lines(&ok(salesdept(
        dir,
        database,
        &["log", "read", "--stream", stream, "--json"],
    )));
    assert_eq!(read.len(), 2);
    for column in [
        "global_position",
        "transaction_id",
        "stream_id",
        "stream_version",
        "event_id",
        "event_type",
        "schema_version",
        "data",
        "metadata",
        "recorded_at",
        "checkpoint",
    ] {
        assert!(
            read[0].get(column).is_some(),
            "column {column} missing from {}",
            read[0]
        );
    }
    assert_eq!(read[1]["data"]["n"], 2);

    // Paging through the whole log with the opaque checkpoint.
    let first = json_lines(&ok(salesdept(
        dir,
        database,
        &["log", "read", "--limit", "1", "--json"],
    )));
    assert_eq!(first.len(), 1);
    let checkpoint = first[0]["checkpoint"].as_str().unwrap().to_owned();
    let rest = json_lines(&ok(salesdept(
        dir,
        database,
        &["log", "read", "--after", &checkpoint, "--json"],
    )));
    let all = json_lines(&ok(salesdept(dir, database, &["log", "read", "--json"])));
    assert_eq!(rest.len() + 1, all.len());
    assert_eq!(rest[0]["event_id"], all[1]["event_id"]);

    // Bad input gets a clear error.
    for (args, expected) in [
        (
            vec![
                "log",
                "append",
                "--stream",
                stream,
                "--type",
                "x",
                "--data",
                "{not json",
            ],
            "not valid JSON",
        ),
        (
            vec![
                "log",
                "append",
                "--stream",
                stream,
                "--type",
                "x",
                "--data",
                "{}",
                "--expected-version",
                "soon",
            ],
            "expected version",
        ),
        (
            vec!["log", "read", "--after", "garbage"],
            "invalid checkpoint",
        ),
    ] {
        let output = salesdept(dir, database, &args);
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn log_commands_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    exercise_log(dir.path(), None, "lead-embedded");
    assert!(
        dir.path().join("data/salesdept.sqlite").exists(),
        "the embedded file is under ./data/"
    );
}

#[test]
fn log_commands_on_postgres() {
    let database = common::ScratchDatabase::create("salesdept_cli");
    let dir = tempfile::tempdir().unwrap();
    exercise_log(dir.path(), Some(&database.url), "lead-postgres");
}

#[test]
fn json_logs_go_to_stdout_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(binary())
        .current_dir(dir.path())
        .arg("migrate")
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "debug")
        .env("SALESDEPT_LOG_FORMAT", "json")
        .output()
        .expect("run salesdept");
    let stdout = ok(output);
    let logs: Vec<Value> = stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).expect("a log line is one JSON object"))
        .collect();
    assert!(!logs.is_empty(), "no JSON log lines in {stdout}");
    for log in &logs {
        assert!(
            log["level"].is_string() && log["timestamp"].is_string(),
            "{log}"
        );
    }
}
