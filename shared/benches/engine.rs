//! Engine overhead: the llm executor is replaced through the registry by an in-process one that
//! answers at once, so what is left is parsing inputs, templates, snapshots, the report and the
//! scheduler.
//!
//! Run with `cargo bench -p llmops-shared --bench engine`.

use std::sync::Arc;

use async_trait::async_trait;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use shared::workflow::{
    Engine, EngineConfig, NodeContext, NodeError, NodeExecutor, NodeOutput, NodeRegistry,
    ReportHandle, WorkflowSchema, WorkflowStatus, js, parse_schema,
};
use tokio_util::sync::CancellationToken;

/// Answers with the reference mock sentence, without I/O.
struct InstantLlm;

#[async_trait]
impl NodeExecutor for InstantLlm {
    async fn execute(&self, ctx: NodeContext<'_>) -> Result<NodeOutput, NodeError> {
        let i = ctx.inputs();
        let text = |k: &str| js::to_js_string(i.get(k));
        let mut outputs = Map::new();
        outputs.insert(
            "result".into(),
            Value::String(format!(
                "Hi, I am an AI model, my name is {}, temperature is {}, system prompt is \"{}\", prompt is \"{}\"",
                text("modelName"),
                text("temperature"),
                text("systemPrompt"),
                text("prompt")
            )),
        );
        Ok(NodeOutput::new(outputs))
    }
}

fn engine() -> Engine {
    Engine::with_registry(
        EngineConfig::default(),
        NodeRegistry::default_nodes().with("llm", Arc::new(InstantLlm)),
    )
}

/// start -> `n - 2` llm nodes in a chain -> end.
fn chain(n: usize) -> String {
    let llm = |i: usize| {
        json!({
            "id": format!("llm_{i}"), "type": "llm", "meta": {"position": {"x": 0, "y": 0}},
            "data": {
                "inputsValues": {
                    "modelName": {"type": "constant", "content": "AI_MODEL"},
                    "apiKey": {"type": "constant", "content": "sk-x"},
                    "apiHost": {"type": "constant", "content": "https://mock-ai-url/api/v3"},
                    "temperature": {"type": "constant", "content": 0.5},
                    "systemPrompt": {"type": "template", "content": "step {{start_0.step}}"},
                    "prompt": {"type": "template", "content": "{{start_0.question}}"}
                },
                "inputs": {"type": "object", "properties": {
                    "modelName": {"type": "string"}, "apiKey": {"type": "string"}, "apiHost": {"type": "string"},
                    "temperature": {"type": "number"}, "systemPrompt": {"type": "string"}, "prompt": {"type": "string"}
                }},
                "outputs": {"type": "object", "properties": {"result": {"type": "string"}}}
            }
        })
    };
    let count = n - 2;
    let mut nodes = vec![json!({
        "id": "start_0", "type": "start", "meta": {"position": {"x": 0, "y": 0}},
        "data": {"outputs": {"type": "object", "properties": {"question": {"type": "string"}, "step": {"type": "integer"}}}}
    })];
    let mut edges = vec![json!({"sourceNodeID": "start_0", "targetNodeID": "llm_0"})];
    for i in 0..count {
        nodes.push(llm(i));
        let next = if i + 1 < count {
            format!("llm_{}", i + 1)
        } else {
            "end_0".to_owned()
        };
        edges.push(json!({"sourceNodeID": format!("llm_{i}"), "targetNodeID": next}));
    }
    nodes.push(json!({
        "id": "end_0", "type": "end", "meta": {"position": {"x": 0, "y": 0}},
        "data": {
            "inputsValues": {"answer": {"type": "ref", "content": [format!("llm_{}", count - 1), "result"]}},
            "inputs": {"type": "object", "properties": {"answer": {"type": "string"}}}
        }
    }));
    json!({"nodes": nodes, "edges": edges}).to_string()
}

async fn run_once(engine: &Engine, schema: &Arc<WorkflowSchema>, inputs: &Map<String, Value>) {
    let report = ReportHandle::new("bench", inputs.clone());
    let outcome = engine
        .run(
            schema.clone(),
            inputs.clone(),
            CancellationToken::new(),
            report,
        )
        .await;
    assert_eq!(outcome.status, WorkflowStatus::Succeeded);
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let engine = engine();

    let basic = Arc::new(parse_schema(include_str!("../tests/fixtures/basic.json")).unwrap());
    let basic_inputs = object(json!({
        "model_name": "ai-model",
        "llm_settings": {"temperature": 0.5},
        "work": {"role": "Chat", "task": "Tell me a story about love"}
    }));
    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(3));
    group.bench_function(BenchmarkId::new("basic_3_nodes", 3), |b| {
        b.to_async(&runtime)
            .iter(|| run_once(&engine, &basic, &basic_inputs));
    });

    let chain = Arc::new(parse_schema(&chain(100)).unwrap());
    let chain_inputs = object(json!({"question": "What is the answer?", "step": 1}));
    group.throughput(Throughput::Elements(100));
    group.bench_function(BenchmarkId::new("chain", 100), |b| {
        b.to_async(&runtime)
            .iter(|| run_once(&engine, &chain, &chain_inputs));
    });

    let lp = Arc::new(parse_schema(include_str!("../tests/fixtures/loop.json")).unwrap());
    let tasks: Vec<String> = (0..1000).map(|i| format!("TASK - {i}")).collect();
    let loop_inputs = object(json!({ "tasks": tasks }));
    group.throughput(Throughput::Elements(1000));
    group.sample_size(30);
    group.bench_function(BenchmarkId::new("loop_iterations", 1000), |b| {
        b.to_async(&runtime)
            .iter(|| run_once(&engine, &lp, &loop_inputs));
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
