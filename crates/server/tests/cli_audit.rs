//! `salesdept audit` and `salesdept replay leads` through the built binary, on the embedded
//! SQLite default and on the real PostgreSQL (a scratch database created and dropped).

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use salesdept_events::domain::lead::{
    LeadAllocation, LeadClassified, LeadDiscovered, LeadEvent, LeadSource, MessageDrafted,
    MessageKind, MessageSent, Priority, QualityScoreCalculated, ResponseAnalysed, ResponseReceived,
};
use salesdept_events::domain::url::{UrlReservationEvent, UrlReserved};
use salesdept_events::domain::{
    AccountId, Classification, Confidence, DomainEvent, Intent, LinkedInUrl, Pii, QualityScore,
    Sentiment, lead_stream, url_stream,
};
use salesdept_events::pii_vault::{MasterKey, PiiVault};
use salesdept_events::{Actor, EventStore, ExpectedVersion, Metadata, Store, domain};
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

fn at(hour: i64) -> DateTime<Utc> {
    "2026-11-02T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + TimeDelta::hours(hour)
}

/// One lead's journey, an event an hour from 09:00, with its URL reserved first.
async fn seed(database: &str, n: usize, start_hour: i64) -> (Uuid, LinkedInUrl) {
    seed_named(database, n, start_hour, &format!("Maya Lindqvist {n}")).await
}

/// [`seed`] for a lead with this name.
async fn seed_named(database: &str, n: usize, start_hour: i64, name: &str) -> (Uuid, LinkedInUrl) {
    let store = Store::connect(database, domain::upcasters()).await.unwrap();
    store.migrate().await.unwrap();
    store.enable_pii_vault(Arc::new(PiiVault::new(
        MasterKey::from_base64(MASTER_KEY).unwrap(),
    )));
    let lead_id = Uuid::new_v4();
    let url = LinkedInUrl::parse(&format!("https://www.linkedin.com/in/maya-{n}")).unwrap();
    let finder = Actor::agent("lead_finder");
    let reservation = UrlReservationEvent::UrlReserved(UrlReserved::new(lead_id, &url));
    store
        .append(
            &url_stream(&url),
            ExpectedVersion::NoStream,
            vec![reservation.to_new_event(Metadata::new(finder.clone(), at(start_hour)))],
        )
        .await
        .unwrap();
    let draft_id = Uuid::new_v4();
    let events = vec![
        (
            LeadEvent::LeadDiscovered(LeadDiscovered {
                lead_id,
                position: "CTO".into(),
                company: "Fjordbyte".into(),
                company_size: None,
                industry: None,
                is_connection: true,
                source: LeadSource::Search,
                search_id: None,
                import_format: None,
                url_hash: url.hash(),
                pii: Pii {
                    name: Some(name.to_owned()),
                    linkedin_url: Some(url.clone()),
                    ..Pii::default()
                },
            }),
            finder.clone(),
        ),
        (
            LeadEvent::LeadClassified(LeadClassified {
                classification: Classification::Speaker,
                confidence: Confidence::parse(0.9).unwrap(),
                manual: false,
                pii: Pii::default(),
            }),
            finder.clone(),
        ),
        (
            LeadEvent::QualityScoreCalculated(QualityScoreCalculated {
                score: QualityScore::parse(8.0).unwrap(),
                factors: Default::default(),
                manual: false,
                pii: Pii::default(),
            }),
            finder,
        ),
        (
            LeadEvent::LeadAllocation(LeadAllocation {
                assigned_to: "outreach".into(),
                priority: Priority::High,
                reason: "high quality speaker".into(),
            }),
            Actor::agent("sales_manager"),
        ),
        (
            LeadEvent::MessageDrafted(MessageDrafted {
                draft_id,
                kind: MessageKind::Initial,
                follow_up_number: None,
                variant: None,
                pii: Pii::message("Hi Maya"),
            }),
            Actor::agent("outreach"),
        ),
        (
            LeadEvent::MessageSent(MessageSent {
                account_id: AccountId::parse("primary").unwrap(),
                kind: MessageKind::Initial,
                provider_message_id: "m-1".into(),
                draft_id,
                slot_id: Uuid::new_v4(),
                follow_up_number: None,
                variant: None,
                sent_at: at(start_hour + 5),
                pii: Pii::message("Hi Maya"),
            }),
            Actor::agent("outreach"),
        ),
        (
            LeadEvent::ResponseReceived(ResponseReceived {
                response_number: 1,
                provider_message_id: None,
                received_at: at(start_hour + 6),
                pii: Pii::reply("Sounds great"),
            }),
            Actor::system("webhook"),
        ),
        (
            LeadEvent::ResponseAnalysed(ResponseAnalysed {
                response_number: 1,
                sentiment: Sentiment::Positive,
                intent: Intent::Interested,
                confidence: Confidence::parse(0.8).unwrap(),
                pii: Pii::default(),
            }),
            Actor::agent("sales_manager"),
        ),
    ];
    for (hour, (event, actor)) in events.into_iter().enumerate() {
        let metadata = Metadata::new(actor, at(start_hour + hour as i64)).with_correlation(lead_id);
        store
            .append(
                &lead_stream(lead_id),
                ExpectedVersion::Any,
                vec![event.to_new_event(metadata)],
            )
            .await
            .unwrap();
    }
    store.close().await;
    (lead_id, url)
}

async fn exercise_audit(dir: &Path, database: &str) {
    let (maya, url) = seed(database, 1, 9).await;
    let (other, _) = seed(database, 2, 33).await;

    // History by id, in text.
    let text = ok(salesdept(
        dir,
        database,
        &["audit", "lead", &maya.to_string()],
    ));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 8, "{text}");
    assert!(
        lines[0].starts_with("2026-11-02T09:00:00Z  lead_discovered"),
        "{text}"
    );
    assert!(lines[0].contains("agent:lead_finder"), "{text}");
    assert!(
        lines[0].contains("discovered Maya Lindqvist 1, CTO at Fjordbyte"),
        "{text}"
    );
    assert!(
        lines[1].contains("classified Speaker (confidence 0.90)"),
        "{text}"
    );
    assert!(
        lines[5].contains("message sent via primary (initial)"),
        "{text}"
    );
    assert!(
        lines[7].contains("reply analysed: Positive / Interested"),
        "{text}"
    );
    assert!(lines[7].contains(&format!("correlation {maya}")), "{text}");

    // By URL, as JSON: exactly the events of the stream, as `log read --json` shows them.
    let audit = json_lines(&ok(salesdept(
        dir,
        database,
        &["audit", "lead", "http://LinkedIn.com/in/Maya-1/", "--json"],
    )));
    let stream = json_lines(&ok(salesdept(
        dir,
        database,
        &["log", "read", "--stream", &lead_stream(maya), "--json"],
    )));
    assert_eq!(audit.len(), stream.len());
    for (audited, logged) in audit.iter().zip(&stream) {
        let mut without_summary = audited.clone();
        let summary = without_summary.as_object_mut().unwrap().remove("summary");
        assert!(summary.unwrap().as_str().is_some_and(|s| !s.is_empty()));
        assert_eq!(&without_summary, logged);
    }
    let unknown = salesdept(
        dir,
        database,
        &["audit", "lead", "https://linkedin.com/in/nobody"],
    );
    assert!(!unknown.status.success());

    // Across the log: a time range, an actor, a type.
    let day_one = json_lines(&ok(salesdept(
        dir,
        database,
        &[
            "audit",
            "--from",
            "2026-11-02",
            "--to",
            "2026-11-02",
            "--json",
        ],
    )));
    assert_eq!(
        day_one.len(),
        9,
        "maya's url and 8 events; the other lead starts the next day"
    );
    assert!(day_one.iter().all(|event| {
        event["metadata"]["occurred_at"]
            .as_str()
            .unwrap()
            .starts_with("2026-11-02")
    }));
    let window = json_lines(&ok(salesdept(
        dir,
        database,
        &[
            "audit",
            "--from",
            "2026-11-02T10:00:00Z",
            "--to",
            "2026-11-02T11:00:00Z",
            "--json",
        ],
    )));
    let types: Vec<&str> = window
        .iter()
        .map(|event| event["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["lead_classified", "quality_score_calculated"]);
    let by_manager = json_lines(&ok(salesdept(
        dir,
        database,
        &["audit", "--actor", "agent:sales_manager", "--json"],
    )));
    assert_eq!(by_manager.len(), 4);
    let sends = ok(salesdept(
        dir,
        database,
        &["audit", "--type", "message_sent"],
    ));
    assert_eq!(sends.lines().count(), 2, "{sends}");
    assert!(
        sends
            .lines()
            .all(|line| line.contains("message sent via primary"))
    );
    let bad = salesdept(dir, database, &["audit", "--from", "tomorrow"]);
    assert!(!bad.status.success());
    let both = salesdept(
        dir,
        database,
        &["audit", "--type", "x", "lead", &maya.to_string()],
    );
    assert!(
        !both.status.success(),
        "filters belong to the range form only"
    );

    // Time travel: one lead's row, and the table.
    let then = json_lines(&ok(salesdept(
        dir,
        database,
        &[
            "audit",
            "lead",
            &maya.to_string(),
            "--at",
            "2026-11-02T12:30:00Z",
            "--json",
        ],
    )));
    assert_eq!(then[0]["contact_status"], "Allocated");
    assert_eq!(then[0]["version"], 4);
    let text = ok(salesdept(
        dir,
        database,
        &[
            "audit",
            "lead",
            &maya.to_string(),
            "--at",
            "2026-11-02T10:00:00Z",
        ],
    ));
    assert!(text.contains("Classification      Speaker"), "{text}");
    let table = ok(salesdept(
        dir,
        database,
        &["audit", "table", "--at", "2026-11-02"],
    ));
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(
        rows[0],
        "Lead ID,Name,Position,Company,LinkedIn URL,Classification,Quality Score,Contact Status,Last Contacted,Message Sent,Response,Response Sentiment,Response Intent,Assigned To,Notes"
    );
    assert_eq!(rows.len(), 2, "only maya existed on day one: {table}");
    assert!(
        rows[1].starts_with(&format!("{maya},Maya Lindqvist 1,CTO,Fjordbyte,")),
        "{table}"
    );
    assert!(rows[1].contains(",Responded,"), "{table}");
    let later = json_lines(&ok(salesdept(
        dir,
        database,
        &["audit", "table", "--at", "2026-11-30", "--json"],
    )));
    assert_eq!(later.len(), 2);
    let mut ids = [maya.to_string(), other.to_string()];
    ids.sort();
    assert_eq!(
        later
            .iter()
            .map(|row| row["lead_id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>(),
        ids
    );

    // Replay, then forget: the rebuilt table blanks the person, the audit says "forgotten".
    let replayed = ok(salesdept(dir, database, &["replay", "leads"]));
    assert!(
        replayed.starts_with("lead table rebuilt: 2 leads from 18 events"),
        "{replayed}"
    );
    ok(salesdept(
        dir,
        database,
        &["forget", url.as_str(), "--actor", "human:dpo"],
    ));
    let replayed = ok(salesdept(dir, database, &["replay", "leads"]));
    assert!(
        replayed.starts_with("lead table rebuilt: 2 leads from 19 events"),
        "{replayed}"
    );
    let text = ok(salesdept(dir, database, &["audit", "lead", url.as_str()]));
    assert!(
        text.contains("discovered forgotten, CTO at Fjordbyte"),
        "{text}"
    );
    assert!(text.contains("reply 1 received: forgotten"), "{text}");
    assert!(!text.contains("Maya"), "{text}");
    assert!(
        text.lines().last().unwrap().contains("lead_forgotten"),
        "{text}"
    );
    let now = json_lines(&ok(salesdept(
        dir,
        database,
        &["audit", "table", "--at", "2026-12-31", "--json"],
    )));
    let forgotten = now
        .iter()
        .find(|row| row["lead_id"] == maya.to_string())
        .unwrap();
    assert_eq!(forgotten["name"], "");
    assert_eq!(forgotten["forgotten"], true);
}

#[tokio::test]
async fn audit_and_replay_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("audit.sqlite").display());
    exercise_audit(dir.path(), &database).await;
    // The rebuilt table is the one the subscription would have written: check it directly.
    let store = Store::connect(&database, domain::upcasters())
        .await
        .unwrap();
    let rows: i64 = match &store {
        Store::Sqlite(lite) => {
            sqlx::query_scalar("SELECT COUNT(*) FROM leads WHERE forgotten = 1 AND name = ''")
                .fetch_one(lite.read_pool())
                .await
                .unwrap()
        }
        Store::Postgres(_) => unreachable!(),
    };
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn audit_and_replay_on_postgres() {
    let server = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin = sqlx::PgPool::connect(&server)
        .await
        .expect("the local PostgreSQL");
    let name = format!("salesdept_cli_audit_{}", Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let mut url = url::Url::parse(&server).unwrap();
    url.set_path(&name);
    let dir = tempfile::tempdir().unwrap();
    exercise_audit(dir.path(), url.as_str()).await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .unwrap();
}

/// A name from a profile that starts like a formula is exported as text: the CSV cell gets the
/// escaping apostrophe (the JSON export keeps the name as it is), and no cell of the export
/// starts with a formula trigger.
#[tokio::test]
async fn the_csv_export_keeps_formula_like_names_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("formula.sqlite").display());
    let name = "=HYPERLINK(\"https://evil.example/x\",\"Maya\")";
    seed_named(&database, 1, 9, name).await;
    seed_named(&database, 2, 10, "@SUM(A1:A9)").await;
    let table = ok(salesdept(
        dir.path(),
        &database,
        &["audit", "table", "--at", "2026-12-31"],
    ));
    let mut reader = csv::Reader::from_reader(table.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let column = headers.iter().position(|header| header == "Name").unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2, "{table}");
    let names: Vec<&str> = rows.iter().map(|row| &row[column]).collect();
    assert!(names.contains(&format!("'{name}").as_str()), "{table}");
    assert!(names.contains(&"'@SUM(A1:A9)"), "{table}");
    for row in &rows {
        for cell in row {
            assert!(
                !cell.starts_with(['=', '+', '@']),
                "a cell that a spreadsheet would run: {cell:?} in {table}"
            );
        }
    }
    let json = ok(salesdept(
        dir.path(),
        &database,
        &["audit", "table", "--at", "2026-12-31", "--json"],
    ));
    assert!(
        json_lines(&json).iter().any(|row| row["name"] == name),
        "{json}"
    );
}
