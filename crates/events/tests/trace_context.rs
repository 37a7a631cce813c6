//! Trace context through the log, on both stores: an append stamps the appending span's W3C
//! traceparent on each event, and a subscriber handles the event in a `handle_event` span that
//! is a child of the appending span, in the same trace. Spans go to the SDK's in-memory exporter.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::Utc;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use salesdept_events::domain::lead::{DiscoverLead, LeadSource};
use salesdept_events::domain::search::{SearchCommand, SearchCriteria};
use salesdept_events::domain::{
    Classification, CommandHandler, CommandMetadata, Confidence, LeadCommand, LeadState,
    LinkedInUrl, Pii, SearchState, lead_stream,
};
use salesdept_events::store::PostgresEventStore;
use salesdept_events::{
    Actor, EventStore, ExpectedVersion, Handler, HandlerContext, HandlerError, Metadata, NewEvent,
    RecordedEvent, Store, Subscription, Upcasters,
};
use serde_json::json;
use sqlx::PgPool;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<RecordedEvent>>,
}

#[async_trait]
impl Handler for Recorder {
    async fn handle(
        &self,
        event: &RecordedEvent,
        _context: &mut HandlerContext,
    ) -> Result<(), HandlerError> {
        self.seen.lock().unwrap().push(event.clone());
        Ok(())
    }
}

fn find<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|span| span.name == name)
        .unwrap_or_else(|| panic!("no {name} span in {:?}", names(spans)))
}

fn names(spans: &[SpanData]) -> Vec<&str> {
    spans.iter().map(|span| span.name.as_ref()).collect()
}

async fn appends_stamp_and_subscribers_continue_the_trace(store: &Store) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("test"))
        .with_context_activation(false);
    let subscriber = tracing_subscriber::registry().with(layer);
    let _guard = tracing::subscriber::set_default(subscriber);

    let command = tracing::info_span!("command");
    let event = NewEvent::new(
        "LeadFound",
        json!({"n": 1}),
        Metadata::new(Actor::system("test"), Utc::now()),
    );
    tracing::Instrument::instrument(
        store.append("lead-1", ExpectedVersion::NoStream, vec![event]),
        command.clone(),
    )
    .await
    .unwrap();
    // Read the command span's ids here: on SQLite the store's worker thread may still hold the
    // span when the test looks at the exporter, so it need not have finished by then.
    let command_context = command.context().span().span_context().clone();
    drop(command);

    let stored = store.read_stream("lead-1", 1, None).await.unwrap();
    let traceparent = stored[0]
        .metadata
        .traceparent
        .clone()
        .expect("the append stamped a traceparent");

    // On PostgreSQL the whole-log horizon is cluster-wide: a transaction of another test may
    // hold it back for a moment, so catch up until the event is in.
    let recorder = Arc::new(Recorder::default());
    let subscription = Subscription::new("traced", store.clone(), recorder.clone());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while recorder.seen.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the event never came");
        subscription.catch_up().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(recorder.seen.lock().unwrap().len(), 1);
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let append = find(&spans, "append");
    let handle = find(&spans, "handle_event");
    assert_eq!(
        traceparent,
        format!(
            "00-{}-{}-01",
            append.span_context.trace_id(),
            append.span_context.span_id()
        ),
        "the stored traceparent names the append span"
    );
    assert_eq!(append.parent_span_id, command_context.span_id());
    assert_eq!(
        handle.span_context.trace_id(),
        command_context.trace_id(),
        "the handler is in the command's trace"
    );
    assert_eq!(handle.parent_span_id, append.span_context.span_id());
    // The batch that delivered the event (earlier passes may have found nothing).
    let batches: Vec<_> = spans
        .iter()
        .filter(|span| span.name == "subscription_batch")
        .map(|span| span.span_context.span_id())
        .collect();
    assert!(
        !batches.is_empty(),
        "no subscription_batch span in {:?}",
        names(&spans)
    );
    assert!(
        handle
            .links
            .iter()
            .any(|link| batches.contains(&link.span_context.span_id())),
        "the handler span links its subscription batch"
    );
}

async fn untraced_appends_keep_the_given_traceparent(store: &Store) {
    let given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned();
    let event = NewEvent::new(
        "LeadFound",
        json!({"n": 2}),
        Metadata::new(Actor::system("test"), Utc::now()).with_traceparent(Some(given.clone())),
    );
    store
        .append("lead-2", ExpectedVersion::NoStream, vec![event])
        .await
        .unwrap();
    let stored = store.read_stream("lead-2", 1, None).await.unwrap();
    assert_eq!(stored[0].metadata.traceparent, Some(given));
}

async fn sqlite_store(dir: &tempfile::TempDir) -> Store {
    let url = format!("sqlite://{}", dir.path().join("log.sqlite").display());
    let store = Store::connect(&url, Upcasters::new()).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// A command on a lead from a span of another trace (a scheduled job) becomes a child of the
/// span that appended the lead's latest event, linked to the job's span; a command already in
/// the lead's trace keeps its caller as parent; a command on a stream that does not continue
/// traces stays in the job's trace.
///
/// On PostgreSQL only: the rule is the command handler's, the same on both stores, and on
/// SQLite sqlx's connection worker threads release the spans of finished statements at a time
/// of their own, so which of the commands' spans have finished when the test looks is not
/// deterministic there.
async fn commands_on_a_lead_continue_the_lead_trace(store: Arc<Store>) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("test"))
        .with_context_activation(false);
    let subscriber = tracing_subscriber::registry().with(layer);
    let _guard = tracing::subscriber::set_default(subscriber);

    let handler = CommandHandler::new(store.clone());
    let lead_id = uuid::Uuid::now_v7();
    let stream = lead_stream(lead_id);
    let metadata = CommandMetadata::new(Actor::agent("test"), Utc::now());
    let discover = LeadCommand::Discover(DiscoverLead {
        lead_id,
        url: LinkedInUrl::parse("https://www.linkedin.com/in/ada-trace/").unwrap(),
        name: "Ada Trace".into(),
        position: "CTO".into(),
        company: "Spans Ltd".into(),
        company_size: None,
        industry: None,
        is_connection: true,
        source: LeadSource::Search,
        search_id: None,
        import_format: None,
        profile: Pii::default(),
    });
    let classify = |confidence: f64| LeadCommand::Classify {
        classification: Classification::Speaker,
        confidence: Confidence::parse(confidence).unwrap(),
        rationale: None,
    };

    // The search that finds the lead: trace A.
    let search = tracing::info_span!("search");
    tracing::Instrument::instrument(
        handler.execute::<LeadState>(&stream, &discover, &metadata),
        search.clone(),
    )
    .await
    .unwrap();
    let search_context = search.context().span().span_context().clone();
    // A job, a root of its own (trace B), classifies the lead.
    let job = tracing::info_span!(parent: None, "job");
    tracing::Instrument::instrument(
        handler.execute::<LeadState>(&stream, &classify(0.8), &metadata),
        job.clone(),
    )
    .await
    .unwrap();
    let job_context = job.context().span().span_context().clone();
    assert_ne!(job_context.trace_id(), search_context.trace_id());
    // The same job runs a command on a stream of many journeys (a search's).
    let search_stream = format!("search-{}", uuid::Uuid::now_v7());
    let request = SearchCommand::Request {
        search_id: uuid::Uuid::now_v7(),
        criteria: SearchCriteria {
            keywords: vec!["rust".into()],
            limit: 10,
            ..SearchCriteria::default()
        },
        reason: "test".into(),
    };
    tracing::Instrument::instrument(
        handler.execute::<SearchState>(&search_stream, &request, &metadata),
        job.clone(),
    )
    .await
    .unwrap();
    // Back in the lead's trace (a subscriber handling one of its events): no re-parenting.
    let inside = tracing::info_span!(parent: &search, "inside");
    tracing::Instrument::instrument(
        handler.execute::<LeadState>(&stream, &classify(0.9), &metadata),
        inside.clone(),
    )
    .await
    .unwrap();
    let inside_context = inside.context().span().span_context().clone();
    drop((search, job, inside));
    drop(handler);
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let executes: Vec<&SpanData> = spans.iter().filter(|span| span.name == "execute").collect();
    let appends: Vec<&SpanData> = spans.iter().filter(|span| span.name == "append").collect();
    assert!(executes.len() >= 3, "execute spans: {:?}", names(&spans));
    let append_under = |execute: &SpanData| {
        appends
            .iter()
            .find(|append| append.parent_span_id == execute.span_context.span_id())
            .copied()
    };
    let discovery = executes
        .iter()
        .find(|span| span.parent_span_id == search_context.span_id())
        .expect("the discovery runs under the search");
    let discovered = append_under(discovery).expect("the discovery's append");
    let classified_by_job = executes
        .iter()
        .find(|span| span.parent_span_id == discovered.span_context.span_id())
        .expect("the job's command is a child of the lead's latest append");
    assert_eq!(
        classified_by_job.span_context.trace_id(),
        search_context.trace_id(),
        "the job's command is in the lead's trace"
    );
    assert!(
        classified_by_job
            .links
            .iter()
            .any(|link| link.span_context.span_id() == job_context.span_id()),
        "the job's command links the job"
    );
    let on_search_stream = executes
        .iter()
        .find(|span| span.parent_span_id == job_context.span_id())
        .expect("the search stream's command stays under the job");
    assert_eq!(
        on_search_stream.span_context.trace_id(),
        job_context.trace_id()
    );
    let classified_inside = executes
        .iter()
        .find(|span| span.parent_span_id == inside_context.span_id())
        .expect("a command already in the lead's trace keeps its caller as parent");
    assert!(classified_inside.links.is_empty());
}

#[tokio::test]
async fn sqlite_appends_stamp_and_subscribers_continue_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    appends_stamp_and_subscribers_continue_the_trace(&sqlite_store(&dir).await).await;
}

#[tokio::test]
async fn sqlite_untraced_appends_keep_the_given_traceparent() {
    let dir = tempfile::tempdir().unwrap();
    untraced_appends_keep_the_given_traceparent(&sqlite_store(&dir).await).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_appends_stamp_and_subscribers_continue_the_trace(pool: PgPool) {
    let store = Store::Postgres(PostgresEventStore::from_pool(pool, Upcasters::new()));
    appends_stamp_and_subscribers_continue_the_trace(&store).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_untraced_appends_keep_the_given_traceparent(pool: PgPool) {
    let store = Store::Postgres(PostgresEventStore::from_pool(pool, Upcasters::new()));
    untraced_appends_keep_the_given_traceparent(&store).await;
}

#[sqlx::test(migrations = "../../migrations/postgres")]
async fn postgres_commands_on_a_lead_continue_the_lead_trace(pool: PgPool) {
    let store = Store::Postgres(PostgresEventStore::from_pool(pool, Upcasters::new()));
    commands_on_a_lead_continue_the_lead_trace(Arc::new(store)).await;
}
