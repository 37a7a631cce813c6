//! `salesdept forget`: a person's data is shredded, their events stay, the audit shows it.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use chrono::Utc;
use salesdept_events::domain::lead::DiscoverLead;
use salesdept_events::domain::lead::LeadSource;
use salesdept_events::domain::url::ReserveUrl;
use salesdept_events::domain::{
    CommandHandler, CommandMetadata, LeadCommand, LeadState, LinkedInUrl, Pii, UrlReservation,
    lead_stream, url_stream,
};
use salesdept_events::pii_vault::{MasterKey, PiiVault};
use salesdept_events::{Actor, Store, domain};
use serde_json::Value;
use uuid::Uuid;

const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn salesdept(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_salesdept"))
        .current_dir(dir)
        .args(args)
        .env_remove("DATABASE_URL")
        .env("SALESDEPT_MASTER_KEY", MASTER_KEY)
        .output()
        .expect("run salesdept")
}

async fn discover_lead(dir: &Path, url: &LinkedInUrl) -> Uuid {
    let database = format!("sqlite://{}", dir.join("data/salesdept.sqlite").display());
    let store = Store::connect(&database, domain::upcasters())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store.enable_pii_vault(Arc::new(PiiVault::new(
        MasterKey::from_base64(MASTER_KEY).unwrap(),
    )));
    let handler = CommandHandler::new(Arc::new(store.clone()));
    let lead_id = Uuid::new_v4();
    let metadata = CommandMetadata::new(Actor::agent("lead_finder"), Utc::now());
    handler
        .execute::<UrlReservation>(
            &url_stream(url),
            &ReserveUrl {
                lead_id,
                url: url.clone(),
            },
            &metadata,
        )
        .await
        .unwrap();
    let discover = LeadCommand::Discover(DiscoverLead {
        lead_id,
        url: url.clone(),
        name: "Maya Lindqvist".into(),
        position: "CTO".into(),
        company: "Fjordbyte".into(),
        company_size: None,
        industry: None,
        is_connection: true,
        source: LeadSource::Search,
        search_id: None,
        import_format: None,
        profile: Pii::default(),
    });
    handler
        .execute::<LeadState>(&lead_stream(lead_id), &discover, &metadata)
        .await
        .unwrap();
    store.close().await;
    lead_id
}

fn stream_json(dir: &Path, stream: &str) -> Vec<Value> {
    let output = salesdept(dir, &["log", "read", "--stream", stream, "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn forgetting_by_url_shreds_the_data_and_keeps_the_events() {
    let dir = tempfile::tempdir().unwrap();
    let url = LinkedInUrl::parse("https://www.linkedin.com/in/maya-lindqvist-d1").unwrap();
    let lead_id = discover_lead(dir.path(), &url).await;
    let stream = lead_stream(lead_id);

    let before = stream_json(dir.path(), &stream);
    assert_eq!(before[0]["data"]["pii"]["name"], "Maya Lindqvist");
    let at_rest = std::fs::read(dir.path().join("data/salesdept.sqlite")).unwrap();
    assert!(
        !String::from_utf8_lossy(&at_rest).contains("Maya Lindqvist"),
        "the name is encrypted at rest"
    );

    let output = salesdept(
        dir.path(),
        &[
            "forget",
            "http://linkedin.com/in/Maya-Lindqvist-D1/",
            "--actor",
            "human:dpo",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let after = stream_json(dir.path(), &stream);
    assert_eq!(
        after.len(),
        2,
        "the events stay and lead_forgotten is recorded"
    );
    assert_eq!(
        after[0]["data"]["pii"],
        serde_json::json!({ "forgotten": true })
    );
    assert_eq!(after[0]["data"]["position"], "CTO");
    assert_eq!(after[1]["event_type"], "lead_forgotten");
    assert_eq!(after[1]["metadata"]["actor"]["name"], "dpo");
    let claim = stream_json(dir.path(), &url_stream(&url));
    assert_eq!(
        claim[0]["data"]["pii"],
        serde_json::json!({ "forgotten": true })
    );

    // Forgetting again is harmless; an unknown person is a clear error.
    assert!(
        salesdept(dir.path(), &["forget", &lead_id.to_string()])
            .status
            .success()
    );
    let unknown = salesdept(
        dir.path(),
        &["forget", "https://www.linkedin.com/in/nobody-here"],
    );
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no lead has the LinkedIn URL"));
    let garbage = salesdept(dir.path(), &["forget", "not a lead"]);
    assert!(String::from_utf8_lossy(&garbage.stderr).contains("lead id or a LinkedIn profile URL"));
}
