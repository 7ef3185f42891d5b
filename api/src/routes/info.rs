//! ServerInfo (`GET /api/info`, also `/info` as the reference serves it).

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(server_info))
        .routes(routes!(server_info_root))
}

#[derive(Serialize, ToSchema)]
pub struct ServerInfo {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    runtime: &'static str,
    version: &'static str,
    /// Server time, ISO 8601.
    time: String,
}

fn info() -> ServerInfo {
    ServerInfo {
        name: "llmops",
        title: "llmops FlowGram runtime",
        description: "FlowGram workflow runtime on a job queue",
        runtime: "rust",
        version: env!("CARGO_PKG_VERSION"),
        time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    }
}

/// Server information (ServerInfo).
#[utoipa::path(get, path = "/api/info", tag = "task", responses((status = 200, body = ServerInfo)))]
async fn server_info() -> Json<ServerInfo> {
    Json(info())
}

/// Server information, at the path the reference server also answers.
#[utoipa::path(get, path = "/info", tag = "task", responses((status = 200, body = ServerInfo)))]
async fn server_info_root() -> Json<ServerInfo> {
    Json(info())
}
