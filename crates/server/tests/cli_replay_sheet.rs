//! `salesdept replay sheet`: the embedded default rewrites the CSV file from the log.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use chrono::Utc;
use salesdept_events::domain::lead::{DiscoverLead, LeadSource};
use salesdept_events::domain::{
    CommandHandler, CommandMetadata, LeadCommand, LeadState, LinkedInUrl, Pii, lead_stream,
};
use salesdept_events::pii_vault::{MasterKey, PiiVault};
use salesdept_events::{Actor, Store, domain};
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

async fn discover(dir: &Path, names: &[&str]) -> Vec<Uuid> {
    let database = format!("sqlite://{}", dir.join("data/salesdept.sqlite").display());
    let store = Store::connect(&database, domain::upcasters())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    store.enable_pii_vault(Arc::new(PiiVault::new(
        MasterKey::from_base64(MASTER_KEY).unwrap(),
    )));
    let handler = CommandHandler::new(Arc::new(store.clone()));
    let mut leads = Vec::new();
    for (n, name) in names.iter().enumerate() {
        let lead_id = Uuid::now_v7();
        let discover = LeadCommand::Discover(DiscoverLead {
            lead_id,
            url: LinkedInUrl::parse(&format!("https://www.linkedin.com/in/person-{n}")).unwrap(),
            name: (*name).into(),
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
            .execute::<LeadState>(
                &lead_stream(lead_id),
                &discover,
                &CommandMetadata::new(Actor::agent("lead_finder"), Utc::now()),
            )
            .await
            .unwrap();
        leads.push(lead_id);
    }
    store.close().await;
    leads
}

#[tokio::test]
async fn replay_sheet_rewrites_the_csv_file_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/agents.yaml"),
        "sheet:\n  provider: csv\n  csv_path: out/team-leads.csv\n",
    )
    .unwrap();
    let leads = discover(dir.path(), &["Maya Lindqvist", "Ada Byron"]).await;
    let output = salesdept(dir.path(), &["replay", "sheet"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("2 lead row(s)"), "{stdout}");
    let text = std::fs::read_to_string(dir.path().join("out/team-leads.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("Lead ID,Name,Position,Company,LinkedIn URL"));
    assert!(
        lines[1].starts_with(&format!("{},Maya Lindqvist,CTO", leads[0])),
        "{text}"
    );
    assert!(lines[2].contains("Ada Byron"), "{text}");
}

#[test]
fn a_bad_sheet_configuration_names_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/agents.yaml"),
        "sheet:\n  provider: google\n  spreadsheet_id: 1AbC\n",
    )
    .unwrap();
    let output = salesdept(dir.path(), &["replay", "sheet"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("sheet.service_account_key_file") && stderr.contains("agents.yaml"),
        "{stderr}"
    );
}
