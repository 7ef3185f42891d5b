//! The router: one module per resource, merged here with the docs UIs and the HTTP layers.

pub mod account;
pub mod apps;
pub mod auth;
pub mod health;
pub mod info;
pub mod metrics;
pub mod service;
pub mod tasks;

use axum::{Router, response::Redirect, routing::get};
use utoipa_axum::router::OpenApiRouter;

use crate::{docs, http, state::AppState};

/// Every documented route, with its OpenAPI description.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(docs::base())
        .merge(health::router())
        .merge(metrics::router())
        .merge(auth::router())
        .merge(account::router())
        .merge(info::router())
        .merge(tasks::router())
        .merge(apps::router())
        .merge(service::router())
}

/// The complete application router.
pub fn app(state: AppState) -> Router {
    let (router, openapi) = api_routes().split_for_parts();
    let config = state.config.clone();
    // Installed before the first request records anything; `GET /metrics` renders it.
    shared::metrics::install();
    let router = router
        .with_state(state)
        .merge(docs::ui(openapi))
        // Someone who opens the server in a browser finds the API's documentation.
        .route(
            "/",
            get(|| async { Redirect::temporary(docs::SWAGGER_PATH) }),
        );
    http::layers(router, &config)
}
