//! OpenTelemetry traces: the real binaries export over OTLP/HTTP (JSON) to a collector on
//! loopback, and one trace follows a run from the API's request through the job to the
//! worker's run span and its node spans; a debug chat likewise.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, routing::post};
use serde_json::{Value, json};

use crate::helpers::{
    Mode, both_deployments,
    runs::{fixture, report, result, run},
};

/// One exported span, flattened out of OTLP's resource/scope nesting.
#[derive(Clone, Debug)]
struct SpanRecord {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: Value,
}

impl SpanRecord {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .as_array()?
            .iter()
            .find(|a| a["key"] == key)?["value"]["stringValue"]
            .as_str()
    }
}

/// A collector: accepts `POST /v1/traces` in OTLP JSON and keeps every span.
struct Collector {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<SpanRecord>>>,
}

impl Collector {
    async fn start() -> Self {
        let spans: Arc<Mutex<Vec<SpanRecord>>> = Arc::default();
        let kept = spans.clone();
        let app = Router::new().route(
            "/v1/traces",
            post(move |body: Bytes| {
                let kept = kept.clone();
                async move {
                    let export: Value = serde_json::from_slice(&body).expect("OTLP JSON");
                    kept.lock().unwrap().extend(flatten(&export));
                    axum::Json(json!({}))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, spans }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until a span matches `find`, then returns it.
    async fn wait_for(&self, what: &str, find: impl Fn(&SpanRecord) -> bool) -> SpanRecord {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let spans = self.spans.lock().unwrap().clone();
            if let Some(span) = spans.iter().find(|s| find(s)) {
                return span.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {what} span exported: {spans:#?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `count` spans match `find`.
    async fn wait_for_all(
        &self,
        what: &str,
        count: usize,
        find: impl Fn(&SpanRecord) -> bool,
    ) -> Vec<SpanRecord> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found: Vec<SpanRecord> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| find(s))
                .cloned()
                .collect();
            if found.len() >= count {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {count} {what} spans exported: {found:#?}",
                found.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn flatten(export: &Value) -> Vec<SpanRecord> {
    let mut out = Vec::new();
    for resource in export["resourceSpans"].as_array().into_iter().flatten() {
        let service = resource["resource"]["attributes"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["key"] == "service.name"))
            .and_then(|a| a["value"]["stringValue"].as_str())
            .unwrap_or_default()
            .to_owned();
        for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
            for span in scope["spans"].as_array().into_iter().flatten() {
                let text = |k: &str| span[k].as_str().unwrap_or_default().to_owned();
                out.push(SpanRecord {
                    service: service.clone(),
                    name: text("name"),
                    trace_id: text("traceId"),
                    span_id: text("spanId"),
                    parent_span_id: text("parentSpanId"),
                    attributes: span["attributes"].clone(),
                });
            }
        }
    }
    out
}

/// The collector lives for the whole test, so it is started before the stack (whose
/// processes need its address in their environment).
fn collector() -> &'static Collector {
    static COLLECTOR: std::sync::OnceLock<Collector> = std::sync::OnceLock::new();
    COLLECTOR.get_or_init(|| {
        // A runtime of its own: the collector outlives each test's runtime.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async {
                tx.send(Collector::start().await).unwrap();
                std::future::pending::<()>().await
            });
        });
        rx.recv().unwrap()
    })
}

both_deployments! {
    options = |o| o
        .processes()
        .mock_llm()
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", collector().endpoint())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    async fn a_run_and_a_chat_are_each_one_trace_from_request_to_nodes(stack: Stack) {
        let collector = collector();
        let llm = stack.llm();
        let schema = fixture("basic", llm);
        let inputs = json!({"model_name": "m", "llm_settings": {"temperature": 0.5}, "work": {"role": "Chat", "task": "t"}});
        let id = run(&stack, &schema, inputs).await;
        result(&stack, &id).await;
        assert_eq!(report(&stack, &id).await["workflowStatus"]["status"], "succeeded");

        let run_span = collector.wait_for("run", |s| s.name == "run" && s.attribute("task_id") == Some(id.as_str())).await;
        // The worker's span continues the trace of the API's request that submitted the run
        // (its parent is the request's span or the handler's span inside it).
        let request = collector
            .wait_for("http request", |s| s.name == "http" && s.trace_id == run_span.trace_id)
            .await;
        assert!(!run_span.parent_span_id.is_empty());
        assert_eq!(request.service, "llmops-api");
        assert_eq!(request.attribute("path"), Some("/api/task/run"));
        let worker = if matches!(stack.mode, Mode::Distributed { .. }) { "llmops-worker" } else { "llmops-api" };
        assert_eq!(run_span.service, worker);
        // One span per node (start, llm, end), children of the run's.
        let nodes = collector
            .wait_for_all("node", 3, |s| s.name == "node" && s.parent_span_id == run_span.span_id)
            .await;
        let mut types: Vec<&str> = nodes.iter().filter_map(|s| s.attribute("node_type")).collect();
        types.sort_unstable();
        assert_eq!(types, ["end", "llm", "start"]);
        assert!(nodes.iter().all(|s| s.trace_id == run_span.trace_id));

        // A debug chat: the worker's chat span continues the asking request's trace.
        let token = stack.sign_up(&format!("t-{}@example.com", uuid::Uuid::new_v4().simple()), "a-long-password-1").await;
        let app: Value = stack.client.post(stack.url("/api/apps")).bearer_auth(&token)
            .json(&json!({"name": "Bot", "icon": "https://a.com/111.png", "description": "d"})).send().await.unwrap().json().await.unwrap();
        let app = app["data"]["id"].as_str().expect("app id").to_owned();
        let r = stack.client.post(stack.url(&format!("/api/apps/{app}/debug"))).bearer_auth(&token)
            .json(&json!({"query": "hi"})).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let answer: Value = r.json().await.unwrap();
        let message_id = answer["data"]["id"].as_str().expect("message id").to_owned();
        let chat = collector.wait_for("chat", |s| s.name == "chat" && s.attribute("message_id") == Some(message_id.as_str())).await;
        let asking = collector
            .wait_for("http request", |s| s.name == "http" && s.trace_id == chat.trace_id)
            .await;
        assert_eq!(asking.attribute("path"), Some(format!("/api/apps/{app}/debug").as_str()));
        assert!(!chat.parent_span_id.is_empty());
    }
}
