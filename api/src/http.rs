//! HTTP layers shared by every route (tower-http): request ids, tracing, CORS, compression,
//! the body limit (answered as JSON), and JSON answers for unknown routes and methods.

use axum::{
    Json, Router,
    body::Body,
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use serde_json::json;
use shared::config::Config;
use tower::ServiceBuilder;
use tower_http::{
    compression::{
        CompressionLayer,
        predicate::{NotForContentType, Predicate, SizeAbove},
    },
    cors::{AllowOrigin, Any, CorsLayer},
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Bodies smaller than this go out uncompressed. Most answers (a task's result, an envelope, a
/// poll's `null`) are a few dozen bytes, which gzip makes larger (43 → 66 bytes for a result)
/// for about 20 % more server CPU per request (`docs/benchmarks.md`, session 8).
pub const COMPRESS_FROM_BYTES: u16 = 1024;

/// Wraps the router in the common layers.
pub fn layers(router: Router, config: &Config) -> Router {
    let limit = config.body_limit.0;
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(RequestBodyLimitLayer::new(limit))
        // Outside the limit layer, so it sees (and rewrites) the 413 that layer answers.
        .layer(middleware::from_fn(move |req, next| json_body_limit(req, next, limit)))
        .layer(middleware::from_fn(record_request))
        .layer(CompressionLayer::new().compress_when(
            // tower-http's default predicate with a larger minimum size.
            SizeAbove::new(COMPRESS_FROM_BYTES)
                .and(NotForContentType::GRPC)
                .and(NotForContentType::IMAGES)
                .and(NotForContentType::SSE),
        ))
        .layer(cors(&config.cors_origins))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<Body>| {
                    let id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-");
                    tracing::info_span!("http", method = %req.method(), path = %req.uri().path(), request_id = %id)
                }))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
        )
}

fn cors(origins: &str) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
        ])
        .allow_headers(Any)
        .expose_headers([REQUEST_ID]);
    if origins.trim() == "*" {
        layer.allow_origin(Any)
    } else {
        let list: Vec<HeaderValue> = origins
            .split(',')
            .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
            .collect();
        layer.allow_origin(AllowOrigin::list(list))
    }
}

/// Whether the client takes a gzip-compressed body (`Accept-Encoding` names `gzip` or `*`
/// without `q=0`), for routes that keep their answers compressed (the CompressionLayer leaves
/// a body that has a `Content-Encoding` alone).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|param| {
                param
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// An error body that fits both API families: `{code, message}` for the task routes and the
/// `{code, message, data}` envelope for the app routes.
pub fn error_body(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"code": code, "message": message.into(), "data": {}})),
    )
        .into_response()
}

async fn not_found(req: Request) -> Response {
    error_body(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {} {}", req.method(), req.uri().path()),
    )
}

async fn method_not_allowed(req: Request) -> Response {
    error_body(
        StatusCode::METHOD_NOT_ALLOWED,
        "fail",
        format!(
            "method {} is not allowed on {}",
            req.method(),
            req.uri().path()
        ),
    )
}

/// tower-http and axum answer an oversize body with plain text; answer JSON instead.
async fn json_body_limit(req: Request, next: Next, limit: usize) -> Response {
    let response = next.run(req).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return error_body(
            StatusCode::PAYLOAD_TOO_LARGE,
            "validate_error",
            format!("request body is larger than the limit of {limit} bytes (LLMOPS_BODY_LIMIT)"),
        );
    }
    response
}

/// Counts each request by route template (never the raw path), method and status, and records
/// its duration. Unrouted requests share the route label `unmatched`.
async fn record_request(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let start = std::time::Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!(shared::metrics::HTTP_DURATION, "route" => route.clone(), "method" => method.clone())
        .record(start.elapsed().as_secs_f64());
    metrics::counter!(shared::metrics::HTTP_REQUESTS, "route" => route, "method" => method, "status" => status)
        .increment(1);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepts(values: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
        }
        accepts_gzip(&headers)
    }

    #[test]
    fn gzip_is_taken_when_named_or_starred_and_not_refused() {
        assert!(accepts(&["gzip, deflate, br, zstd"]), "a browser's");
        assert!(
            accepts(&["br", "GZIP;q=0.5"]),
            "in a second header, any case"
        );
        assert!(accepts(&["*"]));
        assert!(!accepts(&[]), "none asked");
        assert!(!accepts(&["br, deflate"]));
        assert!(!accepts(&["gzip;q=0, br"]), "refused");
        assert!(!accepts(&["gzip; q=0.0"]));
        assert!(!accepts(&["xgzip"]));
    }
}
