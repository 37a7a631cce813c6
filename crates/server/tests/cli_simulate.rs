//! `salesdept simulate`, end to end through the binary on the embedded SQLite default.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn salesdept(dir: &Path, args: &[&str]) -> Output {
    Command::new(PathBuf::from(env!("CARGO_BIN_EXE_salesdept")))
        .current_dir(dir)
        .args(args)
        .env_remove("DATABASE_URL")
        .env("SALESDEPT_MASTER_KEY_FILE", dir.join("master.key"))
        .output()
        .expect("run salesdept")
}

fn last_json_line(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().expect("some output");
    serde_json::from_str(last).expect("the last line is one JSON object")
}

#[test]
fn three_simulated_days_print_a_summary_from_the_log() {
    let dir = tempfile::TempDir::new().unwrap();
    let output = salesdept(
        dir.path(),
        &[
            "simulate",
            "--days",
            "3",
            "--seed",
            "7",
            "--network-size",
            "3000",
            "--output",
            "run",
            "--json",
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "simulate failed: {}\n{stderr}",
        String::from_utf8_lossy(&output.stdout)
    );
    // One progress line per simulated day, on stderr.
    for day in 1..=3 {
        assert!(
            stderr.contains(&format!("day {day:>3}/3")),
            "no progress line for day {day}: {stderr}"
        );
    }
    let summary = last_json_line(&output);
    assert_eq!(summary["days"], 3);
    assert_eq!(summary["backend"], "sqlite");
    for key in [
        "leads_discovered",
        "duplicates_skipped",
        "classified",
        "allocated",
        "messages_sent",
        "max_messages_per_account_day",
        "min_gap_seconds",
        "replies_per_intent",
        "qualified",
        "follow_ups_sent",
        "human_emails",
        "llm_calls",
        "llm_tokens",
    ] {
        assert!(summary.get(key).is_some(), "{key} missing: {summary}");
    }
    assert!(
        summary["leads_discovered"].as_u64().unwrap() > 0,
        "{summary}"
    );
    let classified: u64 = summary["classified"]
        .as_object()
        .unwrap()
        .values()
        .map(|count| count.as_u64().unwrap())
        .sum();
    assert_eq!(
        classified,
        summary["leads_discovered"].as_u64().unwrap(),
        "every lead classified"
    );
    assert_eq!(summary["checks"]["passed"], true, "{summary}");
    assert_eq!(summary["llm_calls"], 0, "the rules, no LLM");
    assert!(dir.path().join("run/salesdept.sqlite").exists());
    assert!(dir.path().join("run/leads.csv").exists());

    // The same seed gives the same events, so the same summary.
    let again = salesdept(
        dir.path(),
        &[
            "simulate",
            "--days",
            "3",
            "--seed",
            "7",
            "--network-size",
            "3000",
            "--output",
            "again",
            "--json",
        ],
    );
    assert!(again.status.success());
    let second = last_json_line(&again);
    for key in [
        "events",
        "leads_discovered",
        "classified",
        "messages_sent",
        "invitations_sent",
    ] {
        assert_eq!(
            summary[key], second[key],
            "{key} differs between two runs of one seed"
        );
    }

    // A log that already holds a run is refused, with a clear message.
    let refused = salesdept(
        dir.path(),
        &[
            "simulate",
            "--days",
            "1",
            "--database",
            &format!(
                "sqlite://{}",
                dir.path().join("run/salesdept.sqlite").display()
            ),
        ],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("empty event log"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}
