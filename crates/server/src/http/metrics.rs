//! `GET /metrics`: Prometheus text. Counters and histograms come from the `metrics` facade,
//! recorded where the work happens (agents' jobs, sends per account, LLM tokens and cost,
//! Sheets API calls); subscription lag is read from the store at each scrape. Unauthenticated
//! like any scrape target: it holds counts, never a lead's data or a secret.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use salesdept_events::{Store, subscription_lags};

/// The process's Prometheus recorder: installed once, shared by every router built later.
pub fn recorder() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only when another recorder is already global (a test harness): the
            // handle then renders this recorder's (empty) view, which is still valid output.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            handle
        })
        .clone()
}

#[derive(Clone)]
struct MetricsState {
    store: Store,
    handle: PrometheusHandle,
}

/// The `/metrics` route.
pub fn router(store: Store, handle: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(MetricsState { store, handle })
}

async fn scrape(State(state): State<MetricsState>) -> Response {
    match subscription_lags(&state.store).await {
        Ok(lags) => {
            for (name, lag) in lags {
                metrics::gauge!("salesdept_subscription_lag_events", "subscription" => name)
                    .set(lag as f64);
            }
        }
        Err(error) => {
            tracing::warn!(%error, "cannot read subscription lag for /metrics");
            metrics::counter!("salesdept_metrics_store_errors_total").increment(1);
        }
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.handle.render(),
    )
        .into_response()
}
