//! `GET /metrics`: the process's Prometheus metrics (`shared::metrics`). In the embedded mode
//! they cover the in-process workers too; a distributed worker serves its own on
//! `LLMOPS_METRICS_LISTEN`.

use axum::{extract::State, http::header, response::IntoResponse};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Prometheus metrics in the text exposition format: runs, nodes, LLM calls and tokens, chats,
/// HTTP requests by route template, queue depths (read from the queue backend at each scrape),
/// store pool connections. Every metric is described in `docs/operations.md`.
#[utoipa::path(get, path = "/metrics", tag = "health", responses(
    (status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4", body = String)))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.db.record_pool();
    // Read at each scrape: a couple of cheap reads per queue.
    match state.queues.depths().await {
        Ok(depths) => depths.iter().for_each(|(queue, d)| d.record(queue)),
        Err(e) => tracing::warn!(error = %e, "could not read the queue depth"),
    }
    (
        [(header::CONTENT_TYPE, shared::metrics::CONTENT_TYPE)],
        shared::metrics::install().render(),
    )
}
