//! Shared test helpers: an OpenAI-compatible mock LLM and an HTTP echo server on loopback, plus
//! fixture loading and a `run` helper that returns what the reference's tests look at.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use shared::workflow::{
    Engine, EngineConfig, Report, ReportHandle, RunOutcome, Snapshot, parse_schema,
};
use tokio_util::sync::CancellationToken;

/// The apiHost every reference fixture uses.
pub const FIXTURE_API_HOST: &str = "https://mock-ai-url/api/v3";

/// The reference mock's answer (spec 2.2).
pub fn mock_sentence(model: &str, temperature: &str, system: &str, prompt: &str) -> String {
    format!(
        "Hi, I am an AI model, my name is {model}, temperature is {temperature}, system prompt is \"{system}\", prompt is \"{prompt}\""
    )
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.ok();
    });
    format!("http://{addr}")
}

/// What the mock LLM has seen.
#[derive(Default)]
pub struct LlmStats {
    pub requests: AtomicUsize,
    pub finished: AtomicUsize,
    /// Set when a streamed response body was dropped before it ended (client went away).
    pub stream_dropped: AtomicBool,
}

/// An OpenAI-compatible `/chat/completions` server. The model name steers it:
/// `status-<code>` answers that status; `flaky-<n>` answers 503 to the first n requests;
/// `slow` waits 30 s; `slow-stream` streams 500 chunks 20 ms apart (`slow-stream-<n>`: n chunks);
/// `stall-stream` sends one chunk and then nothing for 30 s.
pub struct MockLlm {
    pub origin: String,
    pub stats: Arc<LlmStats>,
}

impl MockLlm {
    pub async fn start() -> MockLlm {
        let stats = Arc::new(LlmStats::default());
        let state = stats.clone();
        let router = Router::new().fallback(move |body: Bytes| {
            let stats = state.clone();
            async move { llm_answer(&stats, body).await }
        });
        MockLlm {
            origin: serve(router).await,
            stats,
        }
    }

    /// The base URL to use as `apiHost`.
    pub fn api_host(&self) -> String {
        format!("{}/api/v3", self.origin)
    }

    /// Point a fixture's LLM nodes at this server.
    pub fn rewrite(&self, schema: &str) -> String {
        schema.replace(FIXTURE_API_HOST, &self.api_host())
    }
}

struct DropFlag(Arc<LlmStats>, bool);

impl Drop for DropFlag {
    fn drop(&mut self) {
        if !self.1 {
            self.0.stream_dropped.store(true, Ordering::SeqCst);
        }
    }
}

async fn llm_answer(stats: &Arc<LlmStats>, body: Bytes) -> Response {
    let seen = stats.requests.fetch_add(1, Ordering::SeqCst);
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "bad json").into_response();
    };
    let model = request["model"].as_str().unwrap_or("").to_owned();
    if let Some(code) = model.strip_prefix("status-") {
        let status = StatusCode::from_u16(code.parse().unwrap_or(500)).unwrap();
        let error = json!({"error": {"message": format!("mock status {code}")}});
        return (status, axum::Json(error)).into_response();
    }
    if let Some(n) = model.strip_prefix("flaky-")
        && seen < n.parse::<usize>().unwrap_or(0)
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response();
    }
    if model == "slow" {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let content_of = |role: &str| {
        messages
            .iter()
            .find(|m| m["role"] == role)
            .and_then(|m| m["content"].as_str())
            .unwrap_or("undefined")
            .to_owned()
    };
    let temperature = match request.get("temperature") {
        Some(t) => shared::workflow::js::to_js_string(Some(t)).into_owned(),
        None => "undefined".to_owned(),
    };
    let sentence = mock_sentence(
        &model,
        &temperature,
        &content_of("system"),
        &content_of("user"),
    );
    let usage = json!({"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30});

    if request["stream"] == true {
        let slow = model
            .strip_prefix("slow-stream")
            .map(|n| n.trim_start_matches('-').parse::<usize>().unwrap_or(500));
        let words: Vec<String> = match slow {
            Some(n) => (0..n).map(|i| format!("w{i} ")).collect(),
            None => sentence.split_inclusive(' ').map(str::to_owned).collect(),
        };
        let delay = if slow.is_some() { 20 } else { 0 };
        let stall = model == "stall-stream";
        let stats = stats.clone();
        let events = futures::stream::unfold(
            (
                words.into_iter(),
                Some(usage),
                DropFlag(stats.clone(), false),
                0usize,
            ),
            move |(mut words, mut usage, mut flag, sent)| async move {
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                if stall && sent > 0 {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                let data = if let Some(word) = words.next() {
                    json!({"choices": [{"index": 0, "delta": {"content": word}}]}).to_string()
                } else if let Some(usage) = usage.take() {
                    json!({"choices": [], "usage": usage}).to_string()
                } else if !flag.1 {
                    flag.1 = true;
                    flag.0.finished.fetch_add(1, Ordering::SeqCst);
                    "[DONE]".to_owned()
                } else {
                    return None;
                };
                let frame = Bytes::from(format!("data: {data}\n\n"));
                Some((
                    Ok::<_, std::io::Error>(frame),
                    (words, usage, flag, sent + 1),
                ))
            },
        );
        return Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .body(Body::from_stream(events))
            .unwrap();
    }
    stats.finished.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": sentence}, "finish_reason": "stop"}],
        "usage": usage,
    }))
    .into_response()
}

/// An HTTP server that describes each request it gets. `/status/<code>` answers that status,
/// `/big` a 2 MB body, `/slow` after 30 s, `/redirect?to=<url>` a 302.
pub struct EchoServer {
    pub origin: String,
    pub requests: Arc<AtomicUsize>,
}

impl EchoServer {
    pub async fn start() -> EchoServer {
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let router = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    echo(method, uri, headers, body).await
                }
            },
        );
        EchoServer {
            origin: serve(router).await,
            requests,
        }
    }

    /// `host:port`, as the http fixture's `host` input expects.
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
    ([("x-echo", "1"), ("x-multi", "a")], axum::Json(description)).into_response()
}

/// The engine settings for tests: loopback allowed, short retry delays.
pub fn test_config() -> EngineConfig {
    EngineConfig {
        http_allow_private: true,
        http_retry_backoff: Duration::from_millis(10),
        llm_retry_backoff: Duration::from_millis(10),
        ..EngineConfig::default()
    }
}

pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

pub fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("expected an object, got {other}"),
    }
}

/// What a test looks at after a run.
pub struct Ran {
    pub outcome: RunOutcome,
    pub report: Report,
    /// Snapshots in creation order, reduced like the reference's `snapshotsToVOData`.
    pub snapshots: Vec<Value>,
    pub raw_snapshots: Vec<Snapshot>,
}

impl Ran {
    pub fn status_of(&self, node: &str) -> Option<&str> {
        self.report
            .reports
            .get(node)
            .map(|r| r.status.status.as_str())
    }

    pub fn snapshots_of(&self, node: &str) -> Vec<&Value> {
        self.snapshots
            .iter()
            .filter(|s| s["nodeID"] == node)
            .collect()
    }

    pub fn errors(&self) -> Vec<String> {
        self.report
            .messages
            .error
            .iter()
            .map(|m| m.message.clone())
            .collect()
    }
}

/// `snapshotsToVOData`: `{nodeID, inputs, outputs, data, branch?}`.
pub fn vo(snapshot: &Snapshot) -> Value {
    let mut value = json!({
        "nodeID": snapshot.node_id,
        "inputs": snapshot.inputs,
        "outputs": snapshot.outputs,
        "data": snapshot.data,
    });
    if let Some(branch) = &snapshot.branch {
        value["branch"] = json!(branch);
    }
    value
}

pub async fn run_with(engine: &Engine, schema: &str, inputs: Value) -> Ran {
    run_cancellable(engine, schema, inputs, CancellationToken::new()).await
}

pub async fn run_cancellable(
    engine: &Engine,
    schema: &str,
    inputs: Value,
    cancel: CancellationToken,
) -> Ran {
    let schema = Arc::new(parse_schema(schema).expect("fixture schema is valid"));
    let inputs = object(inputs);
    let handle = ReportHandle::new("task-1", inputs.clone());
    let outcome = engine.run(schema, inputs, cancel, handle.clone()).await;
    let raw_snapshots = handle.snapshots_in_order();
    Ran {
        outcome,
        report: handle.snapshot(),
        snapshots: raw_snapshots.iter().map(vo).collect(),
        raw_snapshots,
    }
}
