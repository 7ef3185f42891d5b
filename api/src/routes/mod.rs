//! The router: one module per resource, merged here with the docs UIs and the HTTP layers.

pub mod account;
pub mod apps;
pub mod auth;
pub mod health;
pub mod info;
pub mod service;
pub mod tasks;

use axum::{Router, response::Redirect, routing::get};
use utoipa_axum::router::OpenApiRouter;

use crate::{docs, http, state::AppState};

/// Every documented route, with its OpenAPI description.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(docs::base())
        .merge(health::router())
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
    let metrics = shared::metrics::install();
    let queues = state.queues.clone();
    let db = state.db.clone();
    let router = router
        .with_state(state)
        .merge(docs::ui(openapi))
        // Someone who opens the server in a browser finds the API's documentation.
        .route(
            "/",
            get(|| async { Redirect::temporary(docs::SWAGGER_PATH) }),
        )
        // Prometheus text format; in the embedded mode it covers the in-process workers too.
        .route(
            "/metrics",
            get(move || async move {
                db.record_pool();
                // Read at each scrape: a couple of cheap reads per queue.
                match queues.depths().await {
                    Ok(depths) => depths.iter().for_each(|(queue, d)| d.record(queue)),
                    Err(e) => tracing::warn!(error = %e, "could not read the queue depth"),
                }
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        shared::metrics::CONTENT_TYPE,
                    )],
                    metrics.render(),
                )
            }),
        );
    http::layers(router, &config)
}
