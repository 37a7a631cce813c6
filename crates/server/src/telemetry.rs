//! Logs and traces. Logs: text on stderr (stdout is for the command's output), or with
//! `SALESDEPT_LOG_FORMAT=json` one JSON object per line on stdout, filtered by `RUST_LOG`.
//! Traces: when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set,
//! every span at info level and above also goes over OTLP/gRPC (what Jaeger and the
//! OpenTelemetry Collector take on port 4317) through a batch processor, whatever the log
//! filter says. Without an endpoint there is no OpenTelemetry layer at all: spans carry no
//! trace context and events no `traceparent`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter,
};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How long one export may take (the exporter retries within its own bounded policy).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Spans queued for export before new ones are dropped. The SDK's default (2,048) fills in a
/// second of a simulation; `OTEL_BSP_MAX_QUEUE_SIZE` overrides this.
const MAX_QUEUE_SIZE: usize = 65_536;

/// What the OpenTelemetry layer records unless `SALESDEPT_OTEL_FILTER` says otherwise: the
/// service's info spans, and never the exporter's own transport (whose spans would be exported
/// by the export they describe).
const DEFAULT_OTEL_FILTER: &str = "info,h2=off,hyper=off,hyper_util=off,tonic=off,tower=off,opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off";

/// The installed tracer provider, kept so the process can flush its spans before it exits.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes the spans still queued and stops the exporter (a no-op without an endpoint).
    /// The provider's shutdown blocks until the batch thread has exported, and the gRPC
    /// channel it exports through needs the runtime, so it runs on a blocking thread.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        let outcome = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "traces: flushing the last spans failed"),
            Err(error) => tracing::warn!(%error, "traces: the flush did not finish"),
        }
    }
}

/// Installs the global subscriber: the log layer, and the OTLP layer when an endpoint is
/// configured. An exporter that cannot be built is reported once and tracing goes on without.
pub fn init() -> Telemetry {
    let log_filter = EnvFilter::try_from_default_env()
        // A command's refusal (a duplicate URL, a lead already stopped) is an expected answer
        // that the caller handles; the handler's span logs it as an error, so it is hidden by
        // default.
        .unwrap_or_else(|_| EnvFilter::new("warn,salesdept_events::domain::handler=off"));
    let json = std::env::var("SALESDEPT_LOG_FORMAT").is_ok_and(|format| format == "json");
    let logs: Box<dyn Layer<Registry> + Send + Sync> = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_writer(std::io::stdout)
            .with_filter(log_filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(log_filter)
            .boxed()
    };

    let endpoint = otlp_endpoint();
    let (provider, build_error) = match endpoint.as_deref().map(build_provider) {
        Some(Ok(provider)) => (Some(provider), None),
        Some(Err(error)) => (None, Some(error)),
        None => (None, None),
    };
    let traces = provider.as_ref().map(|provider| {
        let filter = std::env::var("SALESDEPT_OTEL_FILTER")
            .ok()
            .and_then(|filter| EnvFilter::try_new(filter).ok())
            .unwrap_or_else(|| EnvFilter::new(DEFAULT_OTEL_FILTER));
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("salesdept"))
            // Entering a span does not start it: a command span may still be given the lead's
            // trace as its parent after it was created (see `salesdept_events::trace`).
            .with_context_activation(false)
            .with_filter(filter)
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .init();
    if let Some(error) = build_error {
        tracing::warn!(%error, "traces: no OTLP exporter, spans are not exported");
    } else if let Some(endpoint) = endpoint {
        tracing::info!(endpoint = %endpoint, "traces: exporting spans over OTLP");
    }
    Telemetry { provider }
}

/// The configured OTLP endpoint, if any (an empty value counts as none).
fn otlp_endpoint() -> Option<String> {
    [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .iter()
    .filter_map(|name| std::env::var(name).ok())
    .map(|value| value.trim().to_owned())
    .find(|value| !value.is_empty())
}

fn build_provider(endpoint: &str) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        // The error names the endpoint's problem, never a header's value.
        .map_err(|error| error.to_string())?;
    let mut batch = BatchConfigBuilder::default();
    if std::env::var_os("OTEL_BSP_MAX_QUEUE_SIZE").is_none() {
        batch = batch.with_max_queue_size(MAX_QUEUE_SIZE);
    }
    let processor = BatchSpanProcessor::builder(WarnOnce::new(exporter))
        .with_batch_config(batch.build())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource())
        .build())
}

/// `service.name` = salesdept (unless `OTEL_SERVICE_NAME` names it), the version, the host and
/// the process; `OTEL_RESOURCE_ATTRIBUTES` adds more.
fn resource() -> Resource {
    let mut builder = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        builder = builder.with_service_name("salesdept");
    }
    let mut attributes = vec![
        KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
        KeyValue::new("process.pid", i64::from(std::process::id())),
    ];
    if let Ok(host) = std::env::var("HOSTNAME") {
        attributes.push(KeyValue::new("host.name", host));
    }
    builder.with_attributes(attributes).build()
}

/// An exporter that reports its first failure at warn and the recovery after it, and stays
/// silent in between: a collector that is down never crashes the service nor fills its log.
#[derive(Debug)]
struct WarnOnce<E> {
    inner: E,
    failing: Arc<AtomicBool>,
}

impl<E> WarnOnce<E> {
    fn new(inner: E) -> Self {
        Self {
            inner,
            failing: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl<E: SpanExporter> SpanExporter for WarnOnce<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let outcome = self.inner.export(batch).await;
        match &outcome {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::warn!("traces: the OTLP endpoint takes spans again");
                }
            }
            Err(error) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        %error,
                        spans,
                        "traces: exporting spans failed; they are dropped until the endpoint answers (reported once)"
                    );
                }
            }
        }
        outcome
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
