//! An HTTP echo server on loopback for the workflow http node: it answers with the request's
//! method, path, query, headers and body as JSON.

use axum::{Json, Router, body::Bytes, extract::Request, http::HeaderMap};
use serde_json::{Value, json};

pub struct Echo {
    /// `127.0.0.1:PORT`
    pub host: String,
}

impl Echo {
    pub async fn start() -> Self {
        let app = Router::new().fallback(echo);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind echo");
        let addr = listener.local_addr().expect("echo addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            host: addr.to_string(),
        }
    }
}

async fn echo(req: Request) -> Json<Value> {
    let (parts, body) = req.into_parts();
    let body: Bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let headers: HeaderMap = parts.headers;
    Json(json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers.iter().map(|(k, v)| (k.as_str().to_owned(), Value::String(v.to_str().unwrap_or("").to_owned()))).collect::<serde_json::Map<_, _>>(),
        "body": String::from_utf8_lossy(&body),
    }))
}
