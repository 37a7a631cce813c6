//! Traces over OTLP, end to end: the real `salesdept` binary runs a simulated department with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` pointed at an OTLP/gRPC receiver in this test (the collector's
//! `TraceService`, from `opentelemetry-proto`), and the spans it receives are checked against
//! the event log the run left:
//! - spans arrive, from the service `salesdept`;
//! - every subscriber's `handle_event` span is a child of the `append` span that stored the
//!   event it handles (parent span ids), in the same trace;
//! - each lead's events, appended by the Lead Finder, the Sales Manager and Outreach in
//!   different jobs, all carry one trace id, the one of the search that found the lead, and a
//!   scheduled job's command on a lead links back to the job's span.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::Value;
use sqlx::Row;
use sqlx::sqlite::SqliteConnectOptions;

/// The spans received, with the `service.name` of the resource each came with.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .as_ref()
                .and_then(|resource| string_attribute(&resource.attributes, "service.name"))
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                for span in scope_spans.spans {
                    spans.push((service.clone(), span));
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|attribute| attribute.key == key)
        .and_then(|attribute| attribute.value.as_ref())
        .and_then(|value| match &value.value {
            Some(any_value::Value::StringValue(text)) => Some(text.clone()),
            _ => None,
        })
}

/// `00-<trace>-<span>-<flags>` → (trace id, span id), lower-case hex.
fn split_traceparent(traceparent: &str) -> (String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "not a traceparent: {traceparent}");
    (parts[1].to_owned(), parts[2].to_owned())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// One stored event, as the trace test needs it.
struct StoredEvent {
    stream_id: String,
    event_type: String,
    actor: String,
    traceparent: Option<String>,
}

async fn read_log(database: &Path) -> Vec<StoredEvent> {
    let options = SqliteConnectOptions::new()
        .filename(database)
        .read_only(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    let rows =
        sqlx::query("SELECT stream_id, event_type, metadata FROM events ORDER BY global_position")
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    rows.iter()
        .map(|row| {
            let metadata: String = row.get(2);
            let metadata: Value = serde_json::from_str(&metadata).unwrap();
            StoredEvent {
                stream_id: row.get(0),
                event_type: row.get(1),
                actor: metadata["actor"]["name"].as_str().unwrap_or("").to_owned(),
                traceparent: metadata["traceparent"].as_str().map(str::to_owned),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_department_exports_connected_traces_over_otlp() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let receiver = Receiver::default();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let dir = tempfile::TempDir::new().unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_salesdept"))
        .current_dir(dir.path())
        .args([
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
        ])
        .env_remove("DATABASE_URL")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("SALESDEPT_OTEL_FILTER")
        .env("SALESDEPT_MASTER_KEY_FILE", dir.path().join("master.key"))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
        // The log filter stays at its quiet default: the traces must not depend on it.
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("run salesdept");
    assert!(
        output.status.success(),
        "simulate failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The binary flushed its spans before it exited: what arrived is all there is.
    server.abort();
    let received = receiver.spans.lock().unwrap().clone();
    assert!(!received.is_empty(), "no span arrived over OTLP");
    assert!(
        received.iter().all(|(service, _)| service == "salesdept"),
        "every span comes from the service salesdept"
    );
    let spans: HashMap<String, &Span> = received
        .iter()
        .map(|(_, span)| (hex(&span.span_id), span))
        .collect();
    let names: BTreeSet<&str> = spans.values().map(|span| span.name.as_str()).collect();
    for expected in ["job", "execute", "append", "handle_event", "send"] {
        assert!(names.contains(expected), "no {expected} span in {names:?}");
    }

    // A subscriber handles each traced event in a child of the span that appended it.
    let handled: Vec<&&Span> = spans
        .values()
        .filter(|span| span.name == "handle_event")
        .collect();
    assert!(
        handled.len() > 100,
        "only {} handle_event spans",
        handled.len()
    );
    for handle in &handled {
        let parent = spans
            .get(&hex(&handle.parent_span_id))
            .unwrap_or_else(|| panic!("the parent of a handle_event span was not exported"));
        assert_eq!(parent.name, "append", "a handle_event span's parent");
        assert_eq!(parent.trace_id, handle.trace_id);
    }

    // Every lead's journey is one trace: its events, appended by several agents in several
    // jobs, carry one trace id, and each names an exported append span of that trace.
    let events = read_log(&dir.path().join("run/salesdept.sqlite")).await;
    let mut leads: HashMap<&str, Vec<&StoredEvent>> = HashMap::new();
    for event in &events {
        if event.stream_id.starts_with("lead-") {
            leads.entry(&event.stream_id).or_default().push(event);
        }
    }
    assert!(leads.len() > 100, "only {} leads", leads.len());
    let mut journeys_checked = 0;
    for (lead, journey) in &leads {
        let traces: BTreeSet<String> = journey
            .iter()
            .map(|event| {
                let traceparent = event
                    .traceparent
                    .as_deref()
                    .unwrap_or_else(|| panic!("{} of {lead} has no traceparent", event.event_type));
                let (trace_id, span_id) = split_traceparent(traceparent);
                let append = spans.get(&span_id).unwrap_or_else(|| {
                    panic!(
                        "the span that appended {} was not exported",
                        event.event_type
                    )
                });
                assert_eq!(append.name, "append");
                assert_eq!(hex(&append.trace_id), trace_id);
                trace_id
            })
            .collect();
        let types: Vec<&str> = journey
            .iter()
            .map(|event| event.event_type.as_str())
            .collect();
        assert_eq!(
            traces.len(),
            1,
            "{lead}'s events are in {} traces: {types:?}",
            traces.len()
        );
        let actors: BTreeSet<&str> = journey.iter().map(|event| event.actor.as_str()).collect();
        if actors.len() >= 3 {
            journeys_checked += 1;
        }
    }
    assert!(
        journeys_checked > 10,
        "only {journeys_checked} leads went through three agents"
    );

    // The longest journey — found by a search, classified, allocated, drafted, sent, answered
    // and analysed — in one trace, rooted in the search the Lead Finder ran.
    let (lead, journey) = leads
        .iter()
        .find(|(_, journey)| {
            journey
                .iter()
                .any(|event| event.event_type == "response_analysed")
        })
        .expect("a lead whose reply was analysed in three days");
    let types: BTreeSet<&str> = journey
        .iter()
        .map(|event| event.event_type.as_str())
        .collect();
    for step in [
        "lead_discovered",
        "lead_classified",
        "lead_allocation",
        "message_drafted",
        "response_received",
        "response_analysed",
    ] {
        assert!(types.contains(step), "{lead} has no {step}: {types:?}");
    }
    assert!(
        types.contains("message_sent") || types.contains("invitation_sent"),
        "{lead} was never contacted: {types:?}"
    );
    let span_of = |event_type: &str| {
        let event = journey
            .iter()
            .find(|event| event.event_type == event_type)
            .unwrap();
        let (_, span_id) = split_traceparent(event.traceparent.as_deref().unwrap());
        spans[&span_id]
    };
    // Walking up from the discovery's append span reaches the Lead Finder handling the search.
    let mut ancestor = span_of("lead_discovered");
    let mut reached_search = false;
    while let Some(parent) = spans.get(&hex(&ancestor.parent_span_id)) {
        if parent.name == "handle_event"
            && string_attribute(&parent.attributes, "event_type").as_deref()
                == Some("search_request")
        {
            reached_search = true;
            break;
        }
        ancestor = parent;
    }
    assert!(reached_search, "{lead}'s discovery is not under its search");
    // A lead found on an earlier day is allocated by a later coordination job, a trace of its
    // own: the allocation's command continued the lead's trace and links back to that job.
    let relinked = events
        .iter()
        .filter(|event| event.event_type == "lead_allocation")
        .filter(|event| {
            let (_, span_id) = split_traceparent(event.traceparent.as_deref().unwrap());
            let Some(command) = spans
                .get(&span_id)
                .and_then(|append| spans.get(&hex(&append.parent_span_id)))
            else {
                return false;
            };
            command.name == "execute"
                && command.links.iter().any(|link| {
                    spans.get(&hex(&link.span_id)).is_some_and(|linked| {
                        linked.trace_id != command.trace_id && under_a_job(&spans, linked)
                    })
                })
        })
        .count();
    assert!(
        relinked > 0,
        "no allocation's command continued its lead's trace with a link to a later job"
    );
}

/// Whether `span` or one of its exported ancestors is a scheduled job's span.
fn under_a_job<'a>(spans: &HashMap<String, &'a Span>, mut span: &'a Span) -> bool {
    loop {
        if span.name == "job" {
            return true;
        }
        match spans.get(&hex(&span.parent_span_id)) {
            Some(parent) => span = parent,
            None => return false,
        }
    }
}
