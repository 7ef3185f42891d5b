//! An HTTP echo server on loopback, the target of workflow http nodes in the tests: it answers
//! with the request's method, path, query, headers and body as JSON (with `x-echo: 1` and
//! `x-multi: a` headers), and counts requests. `/status/<code>` answers that status, `/big` a
//! 2 MB body, `/slow` after 30 s, `/redirect?to=<url>` a 302.
//!
//! The one echo server of the project: the black-box suites (`tests/`) and the engine's tests
//! (`shared/tests/`) both use it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    body::Bytes,
    http::{HeaderMap, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

pub struct Echo {
    /// `http://127.0.0.1:PORT`
    pub origin: String,
    /// Requests received so far.
    pub requests: Arc<AtomicUsize>,
}

impl Echo {
    pub async fn start() -> Self {
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    echo(method, uri, headers, body).await
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind echo");
        let addr = listener.local_addr().expect("echo addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            origin: format!("http://{addr}"),
            requests,
        }
    }

    /// `127.0.0.1:PORT`, as the http fixture's `host` input expects.
    pub fn host(&self) -> &str {
        self.origin.trim_start_matches("http://")
    }
}

async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path();
    if let Some(code) = path.strip_prefix("/status/") {
        let status = StatusCode::from_u16(code.parse().unwrap_or(500)).unwrap();
        return (status, format!("status {code}")).into_response();
    }
    match path {
        "/big" => return "x".repeat(2 * 1024 * 1024).into_response(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            return "late".into_response();
        }
        "/redirect" => {
            let to = uri
                .query()
                .and_then(|q| q.strip_prefix("to="))
                .unwrap_or("/")
                .to_owned();
            return (StatusCode::FOUND, [(header::LOCATION, to)]).into_response();
        }
        _ => {}
    }
    let headers: Map<String, Value> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                Value::String(v.to_str().unwrap_or("").to_owned()),
            )
        })
        .collect();
    let description = json!({
        "method": method.as_str(),
        "path": path,
        "query": uri.query().unwrap_or(""),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    ([("x-echo", "1"), ("x-multi", "a")], Json(description)).into_response()
}
