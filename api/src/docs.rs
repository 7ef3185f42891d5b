//! OpenAPI (utoipa): Swagger UI at `/api/docs`, ReDoc at `/api/redoc`, the spec at
//! `/api/openapi.json`. All assets are compiled in; nothing is fetched from a CDN.

use axum::{Router, http::header, routing::get};
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_redoc::{Redoc, Servable};
use utoipa_swagger_ui::SwaggerUi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "llmops",
        description = "LLMOps backend: a FlowGram workflow runtime (bare JSON, `/api/task/*`) and \
                       LLM apps with configs, memory and debug chat (`{code, message, data}` envelope).",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "auth", description = "Register and sign in (access tokens)"),
        (name = "account", description = "The signed-in account"),
        (name = "task", description = "FlowGram workflow runtime: bare JSON bodies, as the FlowGram editor's client expects"),
        (name = "apps", description = "LLM apps: CRUD, draft and published configs, long-term memory, debug chat (through the `chat` queue)"),
        (name = "messages", description = "The debug conversation's messages: list, soft delete, stop a generation"),
        (name = "service", description = "The service API of published apps (`/v1/…`, `Authorization: Bearer <app key>`, Dify's shapes, errors `{code, message, status}`), its OpenAI-compatible endpoint, and the console's app keys"),
    )
)]
struct ApiDoc;

/// Declares the `bearer` (JWT) security scheme routes refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_default()
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .build(),
                ),
            );
        openapi
            .components
            .get_or_insert_default()
            .add_security_scheme(
                "app_key",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("app-…")
                        .build(),
                ),
            );
    }
}

/// The base document that the routers add their paths to.
/// Where Swagger UI is served (and where `/` sends a browser).
pub const SWAGGER_PATH: &str = "/api/docs";

pub fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

static REDOC_JS: &[u8] = include_bytes!("../assets/redoc.standalone.js");
const REDOC_HTML: &str = r#"<!DOCTYPE html><html><head><title>llmops API</title><meta charset="utf-8"/>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><div id="redoc-container"></div><script src="/api/redoc/redoc.standalone.js"></script>
<script>Redoc.init($spec, $config, document.getElementById("redoc-container"));</script></body></html>"#;

/// The documentation UIs for the given spec.
pub fn ui(openapi: utoipa::openapi::OpenApi) -> Router {
    Router::new()
        .merge(SwaggerUi::new(SWAGGER_PATH).url("/api/openapi.json", openapi.clone()))
        .merge(Redoc::with_url("/api/redoc", openapi).custom_html(REDOC_HTML))
        .route(
            "/api/redoc/redoc.standalone.js",
            get(|| async { ([(header::CONTENT_TYPE, "application/javascript")], REDOC_JS) }),
        )
}
