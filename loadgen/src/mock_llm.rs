//! An OpenAI-compatible mock LLM on loopback. It answers `POST …/chat/completions`, blocking or
//! streaming (SSE), records every request body, can be slowed down, and counts requests whose
//! client went away before the answer was complete (so tests can prove a cancel closed the
//! provider connection).
//!
//! Its default answer is the FlowGram reference's mock sentence, built from the request. The
//! model name can steer one request: `status-<code>` answers that status; `flaky-<n>` answers
//! 503 while fewer than n requests came before it; `slow` waits 30 s before answering;
//! `slow-stream` streams 500 chunks 20 ms apart (`slow-stream-<n>`: n chunks); `stall-stream`
//! streams one chunk and then nothing for 30 s.
//!
//! The one mock LLM of the project: the load generator, the black-box suites (`tests/`) and the
//! engine's tests (`shared/tests/`) all use it.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::StatusCode,
    response::{
        IntoResponse, Response,
        sse::{Event, Sse},
    },
    routing::post,
    serve::ListenerExt,
};
use futures::stream;
use serde_json::{Value, json};

#[derive(Default)]
struct MockState {
    requests: Mutex<Vec<Value>>,
    /// Set by a load generator: a long run would keep every body for nothing.
    forget_requests: AtomicBool,
    latency_ms: AtomicU64,
    chunk_delay_ms: AtomicU64,
    dropped: AtomicUsize,
    completed: AtomicUsize,
    reply: Mutex<Option<String>>,
    fail_status: Mutex<Option<u16>>,
    /// Requests received, failed ones included (what `flaky-<n>` counts).
    received: AtomicUsize,
    /// `(prompt, completion)` tokens to report instead of 10 and the answer's word count.
    fixed_usage: Mutex<Option<(u64, u64)>>,
}

#[derive(Clone)]
pub struct MockLlm {
    /// Base URL to give clients, e.g. `http://127.0.0.1:PORT/v1`.
    pub base_url: String,
    state: Arc<MockState>,
}

impl MockLlm {
    pub async fn start() -> Self {
        Self::start_on(0).await.expect("bind mock llm")
    }

    /// Starts on a given loopback port (0 picks a free one), so that a server can be pointed
    /// at it before it runs (`llmops-loadgen chat --mock-port`).
    pub async fn start_on(port: u16) -> std::io::Result<Self> {
        let state = Arc::new(MockState::default());
        let app = Router::new()
            .route("/{*path}", post(chat_completions))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr().expect("mock llm addr");
        // Without TCP_NODELAY every streamed chunk after the first waits for the client's
        // delayed ACK (~40 ms on Linux): the mock would not be "answering at once".
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            base_url: format!("http://{addr}/v1"),
            state,
        })
    }

    /// Delay before the first byte of every answer.
    pub fn set_latency(&self, latency: Duration) {
        self.state
            .latency_ms
            .store(latency.as_millis() as u64, Ordering::SeqCst);
    }
    /// Delay between streamed chunks.
    pub fn set_chunk_delay(&self, delay: Duration) {
        self.state
            .chunk_delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }
    /// A fixed answer instead of the mock sentence (`None` restores the sentence).
    pub fn set_reply(&self, reply: Option<&str>) {
        *self.state.reply.lock().unwrap() = reply.map(str::to_owned);
    }
    /// Answer every request with this HTTP status (`None` restores success).
    pub fn set_failure(&self, status: Option<u16>) {
        *self.state.fail_status.lock().unwrap() = status;
    }
    /// Reports these token counts in every answer's usage, whatever the answer.
    pub fn set_fixed_usage(&self, prompt_tokens: u64, completion_tokens: u64) {
        *self.state.fixed_usage.lock().unwrap() = Some((prompt_tokens, completion_tokens));
    }
    /// The base URL without the `/v1` (any path ending in `chat/completions` is answered).
    pub fn origin(&self) -> &str {
        self.base_url.trim_end_matches("/v1")
    }
    /// Stops recording request bodies ([`MockLlm::requests`] stays as it is).
    pub fn forget_requests(&self) {
        self.state.forget_requests.store(true, Ordering::SeqCst);
    }
    /// Every request body received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.state.requests.lock().unwrap().clone()
    }
    /// Requests whose client disconnected before the answer was complete.
    pub fn dropped(&self) -> usize {
        self.state.dropped.load(Ordering::SeqCst)
    }
    /// Requests answered to the end.
    pub fn completed(&self) -> usize {
        self.state.completed.load(Ordering::SeqCst)
    }
}

/// Counts a request as dropped unless it is marked complete before it goes away.
struct CompletionGuard {
    state: Arc<MockState>,
    done: bool,
}

impl CompletionGuard {
    fn finish(mut self) {
        self.done = true;
        self.state.completed.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for CompletionGuard {
    fn drop(&mut self) {
        if !self.done {
            self.state.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// JavaScript's `String(number)` for the values the mock sees.
pub fn js_number(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{}", f as i64),
        Some(f) => format!("{f}"),
        None => "undefined".into(),
    }
}

/// The FlowGram reference mock sentence (spec 2.2) from its four parts.
pub fn sentence(model: &str, temperature: &str, system: &str, prompt: &str) -> String {
    format!(
        "Hi, I am an AI model, my name is {model}, temperature is {temperature}, system prompt is \"{system}\", prompt is \"{prompt}\""
    )
}

/// The FlowGram reference mock sentence for a chat request.
pub fn mock_sentence(body: &Value) -> String {
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let find = |role: &str| {
        messages
            .iter()
            .rev()
            .find(|m| m["role"] == role)
            .and_then(|m| m["content"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "undefined".into())
    };
    sentence(
        body["model"].as_str().unwrap_or("undefined"),
        &js_number(&body["temperature"]),
        &find("system"),
        &find("user"),
    )
}

async fn chat_completions(
    State(state): State<Arc<MockState>>,
    Path(path): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    if !path.ends_with("chat/completions") {
        return (StatusCode::NOT_FOUND, "unknown path").into_response();
    }
    let seen = state.received.fetch_add(1, Ordering::SeqCst);
    if !state.forget_requests.load(Ordering::Relaxed) {
        state.requests.lock().unwrap().push(body.clone());
    }
    let guard = CompletionGuard {
        state: state.clone(),
        done: false,
    };
    let latency = state.latency_ms.load(Ordering::SeqCst);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let model = body["model"].as_str().unwrap_or("mock").to_owned();
    let steered_failure = match model.split_once('-') {
        Some(("status", code)) => Some(code.parse().unwrap_or(500)),
        Some(("flaky", n)) if seen < n.parse().unwrap_or(0) => Some(503),
        _ => None,
    };
    let failure = match steered_failure {
        Some(code) => Some((code, format!("mock status {code}"))),
        None => state
            .fail_status
            .lock()
            .unwrap()
            .map(|code| (code, "mock failure".to_owned())),
    };
    if let Some((status, message)) = failure {
        guard.finish();
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (
            status,
            Json(json!({"error": {"message": message, "type": "server_error"}})),
        )
            .into_response();
    }
    if model == "slow" {
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    let reply = state
        .reply
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_else(|| mock_sentence(&body));
    let (prompt_tokens, completion_tokens) = state
        .fixed_usage
        .lock()
        .unwrap()
        .unwrap_or((10, reply.split_whitespace().count() as u64));
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens});
    if body["stream"] != json!(true) {
        guard.finish();
        return Json(json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
            "usage": usage
        }))
        .into_response();
    }
    // Stream word by word; the guard travels with the stream so a client that hangs up midway
    // is counted as dropped.
    let slow_stream = model
        .strip_prefix("slow-stream")
        .map(|n| n.trim_start_matches('-').parse::<usize>().unwrap_or(500));
    let pieces: Vec<String> = match slow_stream {
        Some(n) => (0..n).map(|i| format!("w{i} ")).collect(),
        None => reply.split_inclusive(' ').map(str::to_owned).collect(),
    };
    let delay = match slow_stream {
        Some(_) => Duration::from_millis(20),
        None => Duration::from_millis(state.chunk_delay_ms.load(Ordering::SeqCst)),
    };
    let stall = model == "stall-stream";
    let events = stream::unfold(
        (pieces.into_iter(), Some(guard), 0usize),
        move |(mut pieces, guard, stage)| {
            let model = model.clone();
            let usage = usage.clone();
            async move {
                if let Some(piece) = pieces.next() {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    if stall && stage > 0 {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    let data = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": model,
                        "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": null}]});
                    return Some((
                        Ok::<_, std::convert::Infallible>(Event::default().data(data.to_string())),
                        (pieces, guard, stage + 1),
                    ));
                }
                match guard {
                    Some(guard) if stage != usize::MAX => {
                        let data = json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": model, "choices": [],
                            "usage": usage});
                        Some((
                            Ok(Event::default().data(data.to_string())),
                            (pieces, Some(guard), usize::MAX),
                        ))
                    }
                    Some(guard) => {
                        guard.finish();
                        Some((
                            Ok(Event::default().data("[DONE]")),
                            (pieces, None, usize::MAX),
                        ))
                    }
                    None => None,
                }
            }
        },
    );
    Sse::new(events).into_response()
}
