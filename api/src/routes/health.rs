//! Liveness and readiness.

use std::time::Duration;

use axum::{Json, extract::State, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `ready` or `unavailable`.
    status: &'static str,
    /// Whether the store answered (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    store: Option<bool>,
    /// Whether the queue backend and the signal bus answered (readiness only).
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<bool>,
}

/// Liveness: the process serves HTTP.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        store: None,
        queue: None,
    })
}

/// How long readiness waits for each backend: an outage must answer 503 promptly (a
/// connection attempt to a host that is down can otherwise take seconds).
const PING_TIMEOUT: Duration = Duration::from_millis(800);

/// Whether `ping` succeeded within [`PING_TIMEOUT`].
async fn answers<E>(ping: impl Future<Output = Result<(), E>>) -> bool {
    matches!(tokio::time::timeout(PING_TIMEOUT, ping).await, Ok(Ok(())))
}

/// Readiness: the store and the queue are reachable (else 503). Answers within a second.
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, body = Health, description = "store and queue reachable"),
    (status = 503, body = Health, description = "store or queue unreachable")))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let (store, queue, signals) = tokio::join!(
        answers(state.db.ping()),
        answers(state.queues.ping()),
        answers(state.signals.ping())
    );
    let queue = queue && signals;
    let ready = store && queue;
    (
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(Health {
            status: if ready { "ready" } else { "unavailable" },
            store: Some(store),
            queue: Some(queue),
        }),
    )
}
