//! Measures the Google Sheet projection's API calls at the fake, at the sizes of DESIGN.md's
//! targets: a full rewrite of 10,000 leads (≤ 3 API calls) and an incremental sync of 500
//! changed leads (1 write call; the read-back of people's edits is one more call, counted
//! apart). Prints the figures and fails if a target is missed.
//!
//! Run: `cargo nextest run -p salesdept-projections --test sheet_measure --no-capture`
//! (or `cargo test -p salesdept-projections --test sheet_measure -- --nocapture`).

mod support;

use std::time::Instant;

use salesdept_events::domain::lead::{LeadDiscovered, LeadEvent, LeadSource, NoteAdded};
use salesdept_events::domain::{DomainEvent, LinkedInUrl, Pii, lead_stream};
use salesdept_events::{Actor, EventStore, ExpectedVersion, Metadata};
use salesdept_projections::sheet::SheetSync;
use support::FakeSheets;
use uuid::Uuid;

const FULL_REWRITE_LEADS: usize = 10_000;
const CHANGED_LEADS: usize = 500;

fn discovered(lead_id: Uuid, n: usize) -> LeadEvent {
    let url = LinkedInUrl::parse(&format!("https://www.linkedin.com/in/person-{n}")).unwrap();
    LeadEvent::LeadDiscovered(LeadDiscovered {
        lead_id,
        position: "VP Engineering".into(),
        company: format!("Company {n}"),
        company_size: None,
        industry: None,
        is_connection: false,
        source: LeadSource::Search,
        search_id: None,
        import_format: None,
        url_hash: url.hash(),
        pii: Pii {
            name: Some(format!("Person {n}")),
            linkedin_url: Some(url),
            ..Pii::default()
        },
    })
}

fn metadata() -> Metadata {
    Metadata::new(Actor::agent("lead_finder"), chrono::Utc::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sheet_api_calls_for_a_full_rewrite_and_an_incremental_sync() {
    let dir = tempfile::tempdir().unwrap();
    let store = support::sqlite_store(dir.path()).await;
    let fake = FakeSheets::start(support::SPREADSHEET_ID, support::TAB).await;
    let sink = support::google_sink(&fake, dir.path()).await;
    let sync = SheetSync::new(store.clone(), sink);

    let started = Instant::now();
    let mut leads = Vec::with_capacity(FULL_REWRITE_LEADS);
    for n in 0..FULL_REWRITE_LEADS {
        let lead_id = Uuid::now_v7();
        store
            .append(
                &lead_stream(lead_id),
                ExpectedVersion::NoStream,
                vec![discovered(lead_id, n).to_new_event(metadata())],
            )
            .await
            .unwrap();
        leads.push(lead_id);
    }
    let seeded = started.elapsed();

    let started = Instant::now();
    let report = sync.replay().await.unwrap();
    let rewrite_time = started.elapsed();
    assert_eq!(report.rows, FULL_REWRITE_LEADS);
    let rewrite = fake.counts();
    let rewrite_calls = fake.api_calls();
    assert_eq!(fake.last_row() as usize, FULL_REWRITE_LEADS + 1);
    assert_eq!(
        fake.cell(10_001, 1),
        format!("Person {}", FULL_REWRITE_LEADS - 1)
    );

    // 500 leads change (a note each).
    for lead_id in leads.iter().step_by(FULL_REWRITE_LEADS / CHANGED_LEADS) {
        let note = NoteAdded {
            pii: Pii::note("asked for the agenda"),
        };
        store
            .append(
                &lead_stream(*lead_id),
                ExpectedVersion::Exact(1),
                vec![LeadEvent::NoteAdded(note).to_new_event(metadata())],
            )
            .await
            .unwrap();
    }
    fake.reset_counts();
    let started = Instant::now();
    let report = sync.sync().await.unwrap();
    let incremental_time = started.elapsed();
    assert_eq!(report.rows_updated, CHANGED_LEADS);
    let incremental = fake.counts();
    assert_eq!(fake.cell(2, 14), "asked for the agenda");

    // A rewrite once rows are mapped: people's edits are read back first.
    fake.reset_counts();
    let started = Instant::now();
    sync.replay().await.unwrap();
    let second_rewrite_time = started.elapsed();
    let second_rewrite = fake.counts();
    let second_rewrite_calls = fake.api_calls();

    let count = |counts: &std::collections::BTreeMap<String, usize>, endpoint: &str| {
        counts.get(endpoint).copied().unwrap_or(0)
    };
    println!("sheet API calls at the fake (seeded {FULL_REWRITE_LEADS} leads in {seeded:?}):");
    println!(
        "  full rewrite, {FULL_REWRITE_LEADS} leads, first: {rewrite_calls} API calls (batchUpdate {}, batchClear {}, batchGet {}), token {} — {rewrite_time:?}",
        count(&rewrite, "batchUpdate"),
        count(&rewrite, "batchClear"),
        count(&rewrite, "batchGet"),
        count(&rewrite, "token"),
    );
    println!(
        "  incremental sync, {CHANGED_LEADS} changed leads: batchUpdate {} (write), batchGet {} (read-back of edits), token {} — {incremental_time:?}",
        count(&incremental, "batchUpdate"),
        count(&incremental, "batchGet"),
        count(&incremental, "token"),
    );
    println!(
        "  full rewrite, {FULL_REWRITE_LEADS} leads, with rows mapped: {second_rewrite_calls} API calls (batchGet {}, batchUpdate {}, batchClear {}) — {second_rewrite_time:?}",
        count(&second_rewrite, "batchGet"),
        count(&second_rewrite, "batchUpdate"),
        count(&second_rewrite, "batchClear"),
    );
    assert!(rewrite_calls <= 3, "{rewrite:?}");
    assert!(second_rewrite_calls <= 3, "{second_rewrite:?}");
    assert_eq!(count(&incremental, "batchUpdate"), 1, "{incremental:?}");
    assert_eq!(count(&incremental, "batchGet"), 1, "{incremental:?}");
    assert_eq!(count(&incremental, "batchClear"), 0, "{incremental:?}");
}
