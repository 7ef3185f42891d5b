//! The router: one module per resource, merged here with the docs UIs and the HTTP layers.

pub mod health;

use axum::Router;
use utoipa_axum::router::OpenApiRouter;

use crate::{docs, http, state::AppState};

/// Every documented route, with its OpenAPI description.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(docs::base()).merge(health::router())
}

/// The complete application router.
pub fn app(state: AppState) -> Router {
    let (router, openapi) = api_routes().split_for_parts();
    let config = state.config.clone();
    let router = router.with_state(state).merge(docs::ui(openapi));
    http::layers(router, &config)
}
