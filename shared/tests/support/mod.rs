//! Shared test helpers: the project's mock LLM and echo server (`llmops-loadgen`'s, seen through
//! the names these tests use), fixture loading and a `run` helper that returns what the
//! reference's tests look at.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub type EchoServer = loadgen::echo::Echo;
use serde_json::{Map, Value, json};
use shared::workflow::{
    Engine, EngineConfig, Report, ReportHandle, RunOutcome, Snapshot, parse_schema,
};
use tokio_util::sync::CancellationToken;

/// The apiHost every reference fixture uses.
pub const FIXTURE_API_HOST: &str = "https://mock-ai-url/api/v3";

/// The reference mock's answer (spec 2.2).
pub fn mock_sentence(model: &str, temperature: &str, system: &str, prompt: &str) -> String {
    loadgen::mock_llm::sentence(model, temperature, system, prompt)
}

/// The project's mock LLM (`loadgen::mock_llm`), steered by the model name (`status-<code>`,
/// `flaky-<n>`, `slow`, `slow-stream[-<n>]`, `stall-stream`), reporting the reference's usage
/// (10 prompt and 20 completion tokens).
pub struct MockLlm {
    pub origin: String,
    pub stats: LlmStats,
}

impl MockLlm {
    pub async fn start() -> MockLlm {
        let llm = loadgen::mock_llm::MockLlm::start().await;
        llm.set_fixed_usage(10, 20);
        MockLlm {
            origin: llm.origin().to_owned(),
            stats: LlmStats {
                requests: Reading(llm.clone(), |llm| llm.requests().len()),
                finished: Reading(llm.clone(), |llm| llm.completed()),
                stream_dropped: Reading(llm, |llm| llm.dropped() > 0),
            },
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

/// What the mock LLM has seen, read like atomics: `stats.requests.load(Ordering::SeqCst)`.
#[derive(Clone)]
pub struct LlmStats {
    pub requests: Reading<usize>,
    /// Answers given to the end.
    pub finished: Reading<usize>,
    /// Whether a client went away before its answer was complete.
    pub stream_dropped: Reading<bool>,
}

/// One reading of the mock, taken when loaded.
#[derive(Clone)]
pub struct Reading<T>(
    loadgen::mock_llm::MockLlm,
    fn(&loadgen::mock_llm::MockLlm) -> T,
);

impl<T> Reading<T> {
    pub fn load(&self, _: Ordering) -> T {
        (self.1)(&self.0)
    }
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
