//! `salesdept import FILE.csv` through the built binary, on the embedded SQLite default and on
//! the real PostgreSQL (a scratch database created and dropped): the report, the all-or-nothing
//! rule for rejected rows, duplicates against the file and the log, and a rerun that adds
//! nothing.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use uuid::Uuid;

const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn salesdept(dir: &Path, database: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_salesdept"))
        .current_dir(dir)
        .args(args)
        .args(["--database", database])
        .env_remove("DATABASE_URL")
        .env("SALESDEPT_MASTER_KEY", MASTER_KEY)
        .output()
        .expect("run salesdept")
}

fn report(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "no report; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    serde_json::from_str(last).expect("the report is one JSON object")
}

fn lines(value: &Value) -> Vec<u64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line.as_u64().unwrap())
        .collect()
}

/// A Sales Navigator-style export: two valid people, one repeated (another spelling of the
/// same URL), one row without a URL.
const WITH_A_BAD_ROW: &str = "\
First Name,Last Name,Title,Company,LinkedIn URL,Industry,Company Size
Maya,Lindqvist,CTO,Fjordbyte,https://www.linkedin.com/in/maya-lindqvist/,Software,51-200
Tom,Okafor,Head of Partnerships,Cloudnest,https://linkedin.com/in/tom-okafor,Software,201-500
Maya,Lindqvist,CTO,Fjordbyte,https://www.linkedin.com/in/Maya-Lindqvist,Software,51-200
Ana,Ruiz,VP Engineering,Datapeak,,Software,51-200
";

fn leads_count(dir: &Path, database: &str) -> usize {
    let output = salesdept(
        dir,
        database,
        &["log", "read", "--json", "--limit", "100000"],
    );
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains("\"event_type\":\"lead_discovered\""))
        .count()
}

fn exercise_import(dir: &Path, database: &str) {
    let file = dir.join("export.csv");
    std::fs::write(&file, WITH_A_BAD_ROW).unwrap();
    let file = file.to_str().unwrap();

    // A rejected row: nothing is imported, the report names the line and why.
    let refused = salesdept(dir, database, &["import", file, "--json", "--rules"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("1 row(s) rejected, nothing imported"),
        "{stderr}"
    );
    let refusal = report(&refused);
    assert_eq!(refusal["stored"], false);
    assert_eq!(refusal["rejected"][0]["line"], 5);
    assert_eq!(refusal["rejected"][0]["reason"], "no LinkedIn URL");
    assert_eq!(lines(&refusal["duplicates_in_file"]), [4]);
    assert_eq!(leads_count(dir, database), 0);

    // A dry run with --skip-invalid stores nothing either.
    let dry = salesdept(
        dir,
        database,
        &["import", file, "--skip-invalid", "--dry-run", "--rules"],
    );
    assert!(dry.status.success(), "{dry:?}");
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(text.contains("line 5: rejected: no LinkedIn URL"), "{text}");
    assert!(text.contains("would import (dry run) 2 of 2"), "{text}");
    assert_eq!(leads_count(dir, database), 0);

    // Imported for real: two leads, classified and scored.
    let imported = salesdept(
        dir,
        database,
        &[
            "import",
            file,
            "--skip-invalid",
            "--json",
            "--rules",
            "--format",
            "sales_navigator",
        ],
    );
    assert!(imported.status.success(), "{imported:?}");
    let first = report(&imported);
    assert_eq!(first["stored"], true);
    assert_eq!(first["imported"], 2);
    assert!(first["already_leads"].as_array().unwrap().is_empty());
    assert_eq!(leads_count(dir, database), 2);
    let log = salesdept(dir, database, &["log", "read", "--json", "--limit", "1000"]);
    let log = String::from_utf8_lossy(&log.stdout).into_owned();
    assert_eq!(log.matches("\"event_type\":\"lead_classified\"").count(), 2);
    assert_eq!(
        log.matches("\"event_type\":\"quality_score_calculated\"")
            .count(),
        2
    );
    assert!(
        log.contains("\"import_format\":\"sales_navigator\""),
        "{log}"
    );
    assert!(log.contains("\"source\":\"import\""), "{log}");

    // The same file again: recognised, nothing new.
    let again = report(&salesdept(
        dir,
        database,
        &["import", file, "--skip-invalid", "--json", "--rules"],
    ));
    assert_eq!(again["import_id"], first["import_id"]);
    assert_eq!(again["imported"], 2);
    assert_eq!(leads_count(dir, database), 2);

    // Another file naming one known person: a duplicate of a lead, not a new lead.
    let other = dir.join("other.csv");
    std::fs::write(
        &other,
        "Full Name;Job Title;Company Name;Person Linkedin Url\n\
         Tom Okafor;Head of Partnerships;Cloudnest;https://www.linkedin.com/in/tom-okafor\n\
         Lea Novak;Founder;Rustlab;https://www.linkedin.com/in/lea-novak\n",
    )
    .unwrap();
    let second = report(&salesdept(
        dir,
        database,
        &["import", other.to_str().unwrap(), "--json", "--rules"],
    ));
    assert_eq!(second["imported"], 1);
    assert_eq!(lines(&second["already_leads"]), [2]);
    assert_eq!(leads_count(dir, database), 3);

    // A file without a URL column imports nothing and says why.
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "Name,Title\nMaya,CTO\n").unwrap();
    let refused = salesdept(dir, database, &["import", bad.to_str().unwrap(), "--rules"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("no LinkedIn URL column"), "{stderr}");
    assert_eq!(leads_count(dir, database), 3);
}

#[test]
fn import_on_the_embedded_sqlite_default() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("import.sqlite").display());
    exercise_import(dir.path(), &database);
}

#[tokio::test]
async fn import_on_postgres() {
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin = sqlx::PgPool::connect(&server)
        .await
        .expect("the local PostgreSQL");
    let name = format!("salesdept_cli_import_{}", Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(&server).unwrap();
    url.set_path(&name);
    let dir = tempfile::tempdir().unwrap();
    let database = url.to_string();
    let path = dir.path().to_owned();
    tokio::task::spawn_blocking(move || exercise_import(&path, &database))
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .unwrap();
}
