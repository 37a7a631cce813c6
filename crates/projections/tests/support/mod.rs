//! Shared by the sheet tests: the fake Sheets server, stores on both backends, and a few leads.

#![allow(dead_code)]

pub mod fake_sheets;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use salesdept_events::domain::lead::{DiscoverLead, LeadSource};
use salesdept_events::domain::{
    CommandHandler, CommandMetadata, LeadCommand, LeadEvent, LeadState, LinkedInUrl, Pii,
    lead_stream, upcasters,
};
use salesdept_events::store::{PostgresEventStore, SqliteEventStore};
use salesdept_events::{Actor, Checkpoint, EventStore, RecordedEvent, Store};
use salesdept_projections::sheet::{
    GoogleSheetConfig, GoogleSheetSink, RetryPolicy, SheetSink, SheetSync, SyncReport,
};
use sqlx::PgPool;
use uuid::Uuid;

pub use fake_sheets::FakeSheets;

pub const SPREADSHEET_ID: &str = "1TestSpreadsheetId";
pub const TAB: &str = "Leads";

/// Short waits so retry tests stay fast.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        timeout: Duration::from_secs(10),
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
    }
}

pub fn pg_store(pool: PgPool) -> Store {
    Store::Postgres(PostgresEventStore::from_pool(pool, upcasters()))
}

pub async fn sqlite_store(dir: &Path) -> Store {
    let store = Store::Sqlite(
        SqliteEventStore::open(&dir.join("log.sqlite"), upcasters())
            .await
            .unwrap(),
    );
    store.migrate().await.unwrap();
    store
}

/// The Google adapter pointed at the fake.
pub async fn google_sink(fake: &FakeSheets, dir: &Path) -> Arc<dyn SheetSink> {
    google_sink_with(fake, dir, fast_retry(), fake.base_url()).await
}

/// The Google adapter with this retry policy and API base URL (tokens from the fake).
pub async fn google_sink_with(
    fake: &FakeSheets,
    dir: &Path,
    retry: RetryPolicy,
    base_url: String,
) -> Arc<dyn SheetSink> {
    let config = GoogleSheetConfig {
        spreadsheet_id: SPREADSHEET_ID.into(),
        sheet_name: TAB.into(),
        service_account_key_file: fake.write_key_file(dir),
        base_url: Some(base_url),
        retry,
    };
    Arc::new(GoogleSheetSink::connect(&config).await.unwrap())
}

pub fn handler(store: &Store) -> CommandHandler<Store> {
    CommandHandler::new(Arc::new(store.clone()))
}

/// A new lead named `name`.
pub async fn discover(store: &Store, name: &str) -> Uuid {
    let lead_id = Uuid::now_v7();
    let slug: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let url = LinkedInUrl::parse(&format!(
        "https://www.linkedin.com/in/{slug}-{}",
        lead_id.simple()
    ))
    .unwrap();
    run(
        store,
        lead_id,
        LeadCommand::Discover(DiscoverLead {
            lead_id,
            url,
            name: name.into(),
            position: "CTO".into(),
            company: "Fjordbyte".into(),
            company_size: None,
            industry: None,
            is_connection: true,
            source: LeadSource::Search,
            search_id: None,
            import_format: None,
            profile: Pii::default(),
        }),
        Actor::agent("lead_finder"),
    )
    .await;
    lead_id
}

pub async fn run(store: &Store, lead_id: Uuid, command: LeadCommand, actor: Actor) {
    handler(store)
        .execute::<LeadState>(
            &lead_stream(lead_id),
            &command,
            &CommandMetadata::new(actor, Utc::now()),
        )
        .await
        .unwrap();
}

pub async fn events_of(store: &Store, lead_id: Uuid) -> Vec<RecordedEvent> {
    store
        .read_stream(&lead_stream(lead_id), 1, None)
        .await
        .unwrap()
}

pub async fn typed_events_of(store: &Store, lead_id: Uuid) -> Vec<(LeadEvent, RecordedEvent)> {
    use salesdept_events::domain::DomainEvent;
    events_of(store, lead_id)
        .await
        .into_iter()
        .map(|event| (LeadEvent::from_recorded(&event).unwrap(), event))
        .collect()
}

/// Waits until every committed event is readable through `read_all`. PostgreSQL's visibility
/// horizon is cluster-wide: a test running in parallel in another database may hold readers
/// back for a moment, and a sync that ran then would count its calls differently.
pub async fn settle(store: &Store) {
    let head: Option<i64> = match store {
        Store::Postgres(store) => sqlx::query_scalar("SELECT max(global_position) FROM events")
            .fetch_one(store.pool())
            .await
            .unwrap(),
        Store::Sqlite(store) => sqlx::query_scalar("SELECT max(global_position) FROM events")
            .fetch_one(store.read_pool())
            .await
            .unwrap(),
    };
    let Some(head) = head else { return };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut after = Checkpoint::START;
        let mut last = 0;
        loop {
            let batch = store.read_all(after, 10_000).await.unwrap();
            let Some(event) = batch.last() else { break };
            after = event.checkpoint();
            last = last.max(batch.iter().map(|e| e.global_position).max().unwrap_or(0));
        }
        if last >= head || tokio::time::Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One tick once the log is settled.
pub async fn sync(sync: &SheetSync, store: &Store) -> SyncReport {
    settle(store).await;
    sync.sync().await.unwrap()
}
