//! Engine behaviour beyond the reference fixtures: cancellation, limits, the registry, egress,
//! sandbox limits, node errors and the report's wire format.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{Value, json};
use shared::workflow::{
    Engine, EngineConfig, NodeContext, NodeError, NodeExecutor, NodeOutput, NodeRegistry,
    ReportHandle, WorkflowStatus, parse_schema,
};
use support::*;
use tokio_util::sync::CancellationToken;

fn node(id: &str, ty: &str, data: Value) -> Value {
    json!({"id": id, "type": ty, "meta": {"position": {"x": 0, "y": 0}}, "data": data})
}

fn edge(from: &str, to: &str) -> Value {
    json!({"sourceNodeID": from, "targetNodeID": to})
}

fn schema(nodes: Vec<Value>, edges: Vec<Value>) -> String {
    json!({"nodes": nodes, "edges": edges}).to_string()
}

fn start(properties: Value) -> Value {
    node(
        "start_0",
        "start",
        json!({"outputs": {"type": "object", "properties": properties}}),
    )
}

/// An end node returning `refs` (`key -> [node, key...]`) declared with `types`.
fn end(refs: Value, types: Value) -> Value {
    let values: serde_json::Map<String, Value> = refs
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, path)| (k.clone(), json!({"type": "ref", "content": path})))
        .collect();
    node(
        "end_0",
        "end",
        json!({"inputsValues": values, "inputs": {"type": "object", "properties": types}}),
    )
}

fn llm_node(id: &str, api_host: &str, model: &str) -> Value {
    node(
        id,
        "llm",
        json!({
            "inputsValues": {
                "modelName": {"type": "constant", "content": model},
                "apiKey": {"type": "constant", "content": "sk-test"},
                "apiHost": {"type": "constant", "content": api_host},
                "temperature": {"type": "constant", "content": 0.5},
                "prompt": {"type": "constant", "content": "hi"}
            },
            "inputs": {"type": "object", "properties": {
                "modelName": {"type": "string"}, "apiKey": {"type": "string"}, "apiHost": {"type": "string"},
                "temperature": {"type": "number"}, "prompt": {"type": "string"}
            }},
            "outputs": {"type": "object", "properties": {"result": {"type": "string"}}}
        }),
    )
}

fn code_node(id: &str, script: &str) -> Value {
    node(
        id,
        "code",
        json!({"script": {"language": "javascript", "content": script}}),
    )
}

fn http_node(id: &str, url: &str, extra: Value) -> Value {
    let mut data = json!({
        "api": {"method": "GET", "url": {"type": "template", "content": url}},
        "body": {"bodyType": "none"},
        "timeout": {"timeout": 5000, "retryTimes": 0},
        "outputs": {"type": "object", "properties": {
            "body": {"type": "string"}, "headers": {"type": "object"}, "statusCode": {"type": "integer"}
        }}
    });
    for (k, v) in extra.as_object().unwrap() {
        data[k] = v.clone();
    }
    node(id, "http", data)
}

/// start -> middle -> end, where the end returns `middle.<key>` as `out`.
fn single(middle: Value, key: &str, ty: &str) -> String {
    let id = middle["id"].as_str().unwrap().to_owned();
    schema(
        vec![
            start(json!({})),
            middle,
            end(json!({"out": [id, key]}), json!({"out": {"type": ty}})),
        ],
        vec![edge("start_0", &id), edge(&id, "end_0")],
    )
}

fn engine_with(f: impl FnOnce(&mut EngineConfig)) -> Engine {
    let mut config = test_config();
    f(&mut config);
    Engine::new(config)
}

// ------------------------------------------------------------------ cancellation

#[tokio::test]
async fn cancel_drops_an_inflight_llm_request_and_cancels_the_run() {
    let llm = MockLlm::start().await;
    let schema = single(
        llm_node("llm_0", &llm.api_host(), "slow"),
        "result",
        "string",
    );
    let cancel = CancellationToken::new();
    let canceller = {
        let (cancel, stats) = (cancel.clone(), llm.stats.clone());
        tokio::spawn(async move {
            while stats.requests.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            cancel.cancel();
            Instant::now()
        })
    };
    let ran = run_cancellable(&Engine::new(test_config()), &schema, json!({}), cancel).await;
    let canceled_at = canceller.await.unwrap();

    assert!(canceled_at.elapsed() < Duration::from_secs(1));
    assert_eq!(ran.outcome.status, WorkflowStatus::Canceled);
    assert!(ran.outcome.outputs.is_empty());
    assert_eq!(ran.report.workflow_status.status, WorkflowStatus::Canceled);
    assert!(ran.report.workflow_status.terminated);
    assert_eq!(ran.status_of("start_0"), Some("succeeded"));
    assert_eq!(ran.status_of("llm_0"), Some("canceled"));
    assert!(ran.report.reports.get("end_0").is_none());
    assert_eq!(llm.stats.finished.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn cancel_interrupts_a_running_script() {
    let schema = single(
        code_node("code_0", "function main() { while (true) {} }"),
        "result",
        "string",
    );
    let cancel = CancellationToken::new();
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            cancel.cancel();
        });
    }
    let started = Instant::now();
    let ran = run_cancellable(&Engine::new(test_config()), &schema, json!({}), cancel).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(ran.outcome.status, WorkflowStatus::Canceled);
    assert_eq!(ran.status_of("code_0"), Some("canceled"));
    // The blocking thread was interrupted too: a fresh script runs right away.
    let ran = run_with(
        &Engine::new(test_config()),
        &single(
            code_node("code_0", "function main() { return 1; }"),
            "result",
            "integer",
        ),
        json!({}),
    )
    .await;
    assert_eq!(ran.outcome.status, WorkflowStatus::Succeeded);
}

#[tokio::test]
async fn cancel_before_the_run_starts_cancels_it_at_once() {
    let cancel = CancellationToken::new();
    cancel.cancel();
    let ran = run_cancellable(
        &Engine::new(test_config()),
        &fixture("end-constant"),
        json!({}),
        cancel,
    )
    .await;
    assert_eq!(ran.outcome.status, WorkflowStatus::Canceled);
}

// ------------------------------------------------------------------ limits

#[tokio::test]
async fn the_node_limit_fails_the_run_and_names_the_limit() {
    // start, loop, then two nodes per iteration: the sixth execution is one too many.
    let engine = engine_with(|c| c.max_nodes_per_run = 5);
    let inputs = json!({"taskMap": {"a": "1", "b": "2", "c": "3"}});
    let ran = run_with(&engine, &fixture("loop-object"), inputs).await;
    assert_eq!(ran.outcome.status, WorkflowStatus::Failed);
    assert_eq!(
        ran.errors(),
        vec![
            "Run exceeded the limit of 5 node executions (max_nodes_per_run)",
            "Loop block execute error"
        ]
    );
    assert_eq!(ran.status_of("loop_0"), Some("failed"));
}

#[tokio::test]
async fn the_loop_iteration_limit_fails_the_loop_node() {
    let engine = engine_with(|c| c.max_loop_iterations = 2);
    let ran = run_with(
        &engine,
        &fixture("loop-object"),
        json!({"taskMap": {"a": "1", "b": "2", "c": "3"}}),
    )
    .await;
    assert_eq!(ran.outcome.status, WorkflowStatus::Failed);
    assert_eq!(ran.status_of("loop_0"), Some("failed"));
    assert_eq!(
        ran.errors(),
        vec![
            "Loop \"loopFor\" has 3 items, more than the limit of 2 iterations (max_loop_iterations)"
        ]
    );
}

#[tokio::test]
async fn a_node_output_over_the_cap_fails_the_node_and_names_the_setting() {
    let engine = engine_with(|c| c.max_node_output_bytes = 100);
    // The start node outputs the run's inputs: 212 bytes of JSON.
    let ran = run_with(&engine, &fixture("code"), json!({"input": "x".repeat(200)})).await;
    assert_eq!(ran.outcome.status, WorkflowStatus::Failed);
    assert_eq!(ran.status_of("start_0"), Some("failed"));
    assert_eq!(
        ran.errors(),
        vec!["Node output is larger than 100 bytes (LLMOPS_MAX_NODE_OUTPUT_BYTES)"]
    );
    assert_eq!(ran.status_of("code_0"), None, "nothing ran after it");
    // The code node's result is refused inside the script, with the same message.
    let ran = run_with(&engine, &fixture("code"), json!({"input": "x".repeat(40)})).await;
    assert_eq!(ran.status_of("start_0"), Some("succeeded"));
    assert_eq!(ran.status_of("code_0"), Some("failed"));
    assert_eq!(
        ran.errors(),
        vec!["Node output is larger than 100 bytes (LLMOPS_MAX_NODE_OUTPUT_BYTES)"]
    );
}

#[tokio::test]
async fn the_run_time_limit_fails_the_run_and_cancels_running_nodes() {
    let llm = MockLlm::start().await;
    let engine = engine_with(|c| c.max_run_time = Duration::from_millis(300));
    let started = Instant::now();
    let ran = run_with(
        &engine,
        &single(
            llm_node("llm_0", &llm.api_host(), "slow"),
            "result",
            "string",
        ),
        json!({}),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(ran.outcome.status, WorkflowStatus::Failed);
    assert_eq!(
        ran.errors(),
        vec!["Run exceeded the time limit of 300ms (max_run_time)"]
    );
    assert_eq!(ran.status_of("llm_0"), Some("canceled"));
}

// ------------------------------------------------------------------ registry

/// An in-process LLM stand-in: answers at once with the reference mock sentence.
struct InstantLlm;

#[async_trait]
impl NodeExecutor for InstantLlm {
    async fn execute(&self, ctx: NodeContext<'_>) -> Result<NodeOutput, NodeError> {
        let i = ctx.inputs();
        let text = |k: &str| shared::workflow::js::to_js_string(i.get(k)).into_owned();
        let mut outputs = serde_json::Map::new();
        outputs.insert(
            "result".into(),
            json!(mock_sentence(
                &text("modelName"),
                &text("temperature"),
                &text("systemPrompt"),
                &text("prompt")
            )),
        );
        Ok(NodeOutput::new(outputs))
    }
}

/// A new node type: one executor plus one registration line.
struct Shout;

#[async_trait]
impl NodeExecutor for Shout {
    async fn execute(&self, ctx: NodeContext<'_>) -> Result<NodeOutput, NodeError> {
        let text = ctx
            .inputs()
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut outputs = serde_json::Map::new();
        outputs.insert("loud".into(), json!(text.to_uppercase()));
        Ok(NodeOutput::new(outputs))
    }
}

#[tokio::test]
async fn a_registered_executor_replaces_the_built_in_llm_node() {
    let registry = NodeRegistry::default_nodes().with("llm", Arc::new(InstantLlm));
    let engine = Engine::with_registry(test_config(), registry);
    let ran = run_with(&engine, &fixture("loop"), json!({"tasks": ["TASK - A"]})).await;
    assert_eq!(ran.outcome.status, WorkflowStatus::Succeeded);
    assert_eq!(
        ran.outcome.outputs["outputs"],
        json!([mock_sentence(
            "AI_MODEL_1",
            "0.6",
            "You are a helpful assistant No.0",
            "TASK - A"
        )])
    );
}

#[tokio::test]
async fn a_new_node_type_is_one_executor_and_one_registration() {
    let mut registry = NodeRegistry::default_nodes();
    registry.register("shout", Arc::new(Shout));
    let engine = Engine::with_registry(test_config(), registry);
    let shout = node(
        "shout_0",
        "shout",
        json!({
            "inputsValues": {"text": {"type": "template", "content": "hey {{start_0.name}}"}},
            "inputs": {"type": "object", "properties": {"text": {"type": "string"}}},
            "outputs": {"type": "object", "properties": {"loud": {"type": "string"}}}
        }),
    );
    let schema = schema(
        vec![
            start(json!({"name": {"type": "string"}})),
            shout,
            end(
                json!({"out": ["shout_0", "loud"]}),
                json!({"out": {"type": "string"}}),
            ),
        ],
        vec![edge("start_0", "shout_0"), edge("shout_0", "end_0")],
    );
    let ran = run_with(&engine, &schema, json!({"name": "bob"})).await;
    assert_eq!(
        Value::Object(ran.outcome.outputs),
        json!({"out": "HEY BOB"})
    );
}

#[tokio::test]
async fn reaching_a_node_without_an_executor_fails_it() {
    let schema = schema(
        vec![
            start(json!({})),
            node("note", "comment", json!({})),
            node("end_0", "end", json!({})),
        ],
        vec![edge("start_0", "note"), edge("note", "end_0")],
    );
    let ran = run_with(&Engine::new(test_config()), &schema, json!({})).await;
    assert_eq!(ran.outcome.status, WorkflowStatus::Failed);
    assert_eq!(
        ran.errors(),
        vec!["No executor found for node type comment"]
    );
}

#[tokio::test]
async fn comment_and_group_nodes_are_accepted_and_never_run() {
    let schema = schema(
        vec![
            start(json!({})),
            node("note", "comment", json!({})),
            node("g", "group", json!({})),
            node("end_0", "end", json!({})),
        ],
        vec![edge("start_0", "end_0")],
    );
    let ran = run_with(&Engine::new(test_config()), &schema, json!({})).await;
    assert_eq!(ran.outcome.status, WorkflowStatus::Succeeded);
    assert!(ran.report.reports.get("note").is_none());
    assert!(ran.report.reports.get("g").is_none());
}

// ------------------------------------------------------------------ execution

/// Sleeps for `data.ms`, then outputs `{done: true}`.
struct Sleep;

#[async_trait]
impl NodeExecutor for Sleep {
    async fn execute(&self, ctx: NodeContext<'_>) -> Result<NodeOutput, NodeError> {
        let ms = ctx.data().get("ms").and_then(Value::as_u64).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        if ctx.data().get("fail") == Some(&json!(true)) {
            return Err("sleep failed".into());
        }
        let mut outputs = serde_json::Map::new();
        outputs.insert("done".into(), json!(ms));
        Ok(NodeOutput::new(outputs))
    }
}

fn sleep_engine() -> Engine {
    Engine::with_registry(
        test_config(),
        NodeRegistry::default_nodes().with("sleep", Arc::new(Sleep)),
    )
}

fn sleep_node(id: &str, ms: u64, fail: bool) -> Value {
    let mut n = node(id, "sleep", json!({"ms": ms, "fail": fail}));
    n["data"]["outputs"] = json!({"type": "object", "properties": {"done": {"type": "integer"}}});
    n
}

#[tokio::test]
async fn parallel_branches_run_concurrently_and_the_join_waits_for_both() {
    let schema = schema(
        vec![
            start(json!({})),
            sleep_node("a", 300, false),
            sleep_node("b", 300, false),
            end(
                json!({"a": ["a", "done"], "b": ["b", "done"]}),
                json!({"a": {"type": "integer"}, "b": {"type": "integer"}}),
            ),
        ],
        vec![
            edge("start_0", "a"),
            edge("start_0", "b"),
            edge("a", "end_0"),
            edge("b", "end_0"),
        ],
    );
    let started = Instant::now();
    let ran = run_with(&sleep_engine(), &schema, json!({})).await;
    assert!(
        started.elapsed() < Duration::from_millis(550),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        Value::Object(ran.outcome.outputs),
        json!({"a": 300, "b": 300})
    );
    assert_eq!(ran.report.reports["end_0"].snapshots.len(), 1);
}

#[tokio::test]
async fn a_failing_branch_fails_the_run_and_cancels_its_siblings() {
    let schema = schema(
        vec![
            start(json!({})),
            sleep_node("bad", 10, true),
            sleep_node("slow", 5_000, false),
            node("end_0", "end", json!({})),
        ],
        vec![
            edge("start_0", "bad"),
            edge("start_0", "slow"),
            edge("bad", "end_0"),
            edge("slow", "end_0"),
        ],
    );
    let started = Instant::now();
    let ran = run_with(&sleep_engine(), &schema, json!({})).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(ran.outcome.status, WorkflowStatus::Failed);
    assert_eq!(ran.status_of("bad"), Some("failed"));
    assert_eq!(ran.status_of("slow"), Some("canceled"));
    assert_eq!(ran.errors(), vec!["sleep failed"]);
    assert_eq!(ran.report.messages.error[0].node_id.as_deref(), Some("bad"));
    assert_eq!(ran.raw_snapshots[1].error.as_deref(), Some("sleep failed"));
}

#[tokio::test]
async fn a_node_without_next_nodes_fails_the_run_without_a_message() {
    let schema = schema(
        vec![
            start(json!({})),
            sleep_node("dead_end", 0, false),
            node("end_0", "end", json!({})),
        ],
        vec![edge("start_0", "dead_end")],
    );
    let ran = run_with(&sleep_engine(), &schema, json!({})).await;
    assert_eq!(ran.outcome.status, WorkflowStatus::Failed);
    assert_eq!(ran.status_of("dead_end"), Some("succeeded"));
    assert!(ran.errors().is_empty());
}

#[tokio::test]
async fn expression_values_fail_with_the_reference_error() {
    let middle = node(
        "end_0",
        "end",
        json!({
            "inputsValues": {"x": {"type": "expression", "content": "1 + 1"}},
            "inputs": {"type": "object", "properties": {"x": {"type": "number"}}}
        }),
    );
    let ran = run_with(
        &Engine::new(test_config()),
        &schema(
            vec![start(json!({})), middle],
            vec![edge("start_0", "end_0")],
        ),
        json!({}),
    )
    .await;
    assert_eq!(ran.outcome.status, WorkflowStatus::Failed);
    assert_eq!(ran.errors(), vec!["Unknown flow value type: expression"]);
    assert_eq!(ran.raw_snapshots[1].inputs, serde_json::Map::new());
}

#[tokio::test]
async fn a_failing_loop_body_fails_the_loop_with_the_reference_message() {
    let mut schema: Value = serde_json::from_str(&fixture("loop")).unwrap();
    schema["nodes"][2]["blocks"][2]["data"]["inputsValues"]["apiHost"]["content"] =
        json!("ftp://nowhere");
    let ran = run_with(
        &Engine::new(test_config()),
        &schema.to_string(),
        json!({"tasks": ["a"]}),
    )
    .await;
    assert_eq!(ran.outcome.status, WorkflowStatus::Failed);
    assert_eq!(
        ran.errors(),
        vec![
            "Invalid API host protocol - ftp:",
            "Loop block execute error"
        ]
    );
    assert_eq!(ran.status_of("llm_0"), Some("failed"));
    assert_eq!(ran.status_of("loop_0"), Some("failed"));
}

#[tokio::test]
async fn loop_input_errors_use_the_reference_messages() {
    let loop_schema = |start_type: Value| {
        let mut s: Value = serde_json::from_str(&fixture("loop-object")).unwrap();
        s["nodes"][0]["data"]["outputs"]["properties"]["taskMap"] = start_type;
        s["nodes"][0]["data"]["outputs"]["required"] = json!([]);
        s.to_string()
    };
    let engine = Engine::new(test_config());
    let cases = [
        (
            json!({"type": "object"}),
            json!({}),
            "Loop \"loopFor\" is required",
        ),
        (
            json!({"type": "string"}),
            json!({"taskMap": "abc"}),
            "Loop \"loopFor\" must be an array or object",
        ),
        (
            json!({"type": "array"}),
            json!({"taskMap": [1]}),
            "Loop \"loopFor.items\" must be array items",
        ),
    ];
    for (declared, inputs, message) in cases {
        let ran = run_with(&engine, &loop_schema(declared), inputs).await;
        assert_eq!(ran.errors(), vec![message.to_string()]);
    }
    // Mixed item types cannot form one output array.
    let ran = run_with(
        &engine,
        &loop_schema(json!({"type": "object"})),
        json!({"taskMap": {"a": "x", "b": 1}}),
    )
    .await;
    assert_eq!(
        ran.errors(),
        vec!["Array items type must be same, expect string, but got integer"]
    );
}

#[tokio::test]
async fn the_variable_node_declares_and_assigns_variables() {
    let variable = node(
        "variable_0",
        "variable",
        json!({"assign": [
            {"operator": "declare", "left": "sum", "right": {"type": "constant", "content": 1, "schema": {"type": "integer"}}},
            {"operator": "declare", "left": "greeting", "right": {"type": "template", "content": "hi {{start_0.name}}"}},
            {"operator": "assign", "left": {"type": "ref", "content": ["variable_0", "sum"]}, "right": {"type": "constant", "content": 5}},
            {"operator": "assign", "left": {"type": "ref", "content": ["start_0", "profile", "age"]}, "right": {"type": "ref", "content": ["variable_0", "sum"]}}
        ]}),
    );
    let schema = schema(
        vec![
            start(json!({"name": {"type": "string"}, "profile": {"type": "object"}})),
            variable,
            end(
                json!({"sum": ["variable_0", "sum"], "greeting": ["variable_0", "greeting"], "profile": ["start_0", "profile"]}),
                json!({"sum": {"type": "integer"}, "greeting": {"type": "string"}, "profile": {"type": "object"}}),
            ),
        ],
        vec![edge("start_0", "variable_0"), edge("variable_0", "end_0")],
    );
    let ran = run_with(
        &Engine::new(test_config()),
        &schema,
        json!({"name": "ann", "profile": {"age": 1}}),
    )
    .await;
    assert_eq!(
        ran.outcome.status,
        WorkflowStatus::Succeeded,
        "{:?}",
        ran.errors()
    );
    assert_eq!(
        Value::Object(ran.outcome.outputs.clone()),
        json!({"sum": 5, "greeting": "hi ann", "profile": {"age": 5}})
    );
    assert_eq!(
        ran.snapshots_of("variable_0")[0]["outputs"],
        json!({"sum": 1, "greeting": "hi ann"})
    );
}

// ------------------------------------------------------------------ llm node

#[tokio::test]
async fn llm_retries_server_errors_then_succeeds() {
    let llm = MockLlm::start().await;
    let ran = run_with(
        &Engine::new(test_config()),
        &single(
            llm_node("llm_0", &llm.api_host(), "flaky-2"),
            "result",
            "string",
        ),
        json!({}),
    )
    .await;
    assert_eq!(
        ran.outcome.status,
        WorkflowStatus::Succeeded,
        "{:?}",
        ran.errors()
    );
    assert_eq!(llm.stats.requests.load(Ordering::SeqCst), 3);
    assert_eq!(
        ran.outcome.outputs["out"],
        json!(mock_sentence("flaky-2", "0.5", "undefined", "hi"))
    );
}

#[tokio::test]
async fn llm_client_errors_are_not_retried_and_fail_the_node() {
    let llm = MockLlm::start().await;
    let ran = run_with(
        &Engine::new(test_config()),
        &single(
            llm_node("llm_0", &llm.api_host(), "status-401"),
            "result",
            "string",
        ),
        json!({}),
    )
    .await;
    assert_eq!(ran.outcome.status, WorkflowStatus::Failed);
    assert_eq!(ran.errors(), vec!["401 mock status 401"]);
    assert_eq!(llm.stats.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unreachable_llm_host_reports_a_network_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("http://127.0.0.1:{port}/v1");
    let ran = run_with(
        &Engine::new(test_config()),
        &single(llm_node("llm_0", &host, "m"), "result", "string"),
        json!({}),
    )
    .await;
    assert_eq!(
        ran.errors(),
        vec![format!("Network error: unreachable api \"{host}\"")]
    );
}

#[tokio::test]
async fn llm_missing_inputs_are_listed() {
    let mut n = llm_node("llm_0", "http://x", "");
    n["data"]["inputsValues"]["apiKey"]["content"] = json!("");
    let ran = run_with(
        &Engine::new(test_config()),
        &single(n, "result", "string"),
        json!({}),
    )
    .await;
    assert_eq!(
        ran.errors(),
        vec!["LLM node missing required inputs: \"modelName\", \"apiKey\""]
    );
}

// ------------------------------------------------------------------ http node

#[tokio::test]
async fn the_egress_policy_refuses_loopback_by_default() {
    let echo = EchoServer::start().await;
    let engine = engine_with(|c| c.http_allow_private = false);
    for host in [
        echo.origin.clone(),
        echo.origin.replace("127.0.0.1", "localhost"),
    ] {
        let ran = run_with(
            &engine,
            &single(
                http_node("http_0", &format!("{host}/x"), json!({})),
                "statusCode",
                "integer",
            ),
            json!({}),
        )
        .await;
        assert_eq!(ran.outcome.status, WorkflowStatus::Failed);
        let error = &ran.errors()[0];
        assert!(
            error.contains("refused") && error.contains("http_allow_private"),
            "{error}"
        );
    }
    let metadata = run_with(
        &engine,
        &single(
            http_node(
                "http_0",
                "http://169.254.169.254/latest/meta-data",
                json!({}),
            ),
            "statusCode",
            "integer",
        ),
        json!({}),
    )
    .await;
    assert!(
        metadata.errors()[0].contains("169.254.169.254"),
        "{:?}",
        metadata.errors()
    );
    assert_eq!(echo.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn http_sends_params_headers_and_each_body_type() {
    let echo = EchoServer::start().await;
    let engine = Engine::new(test_config());
    let constant = |v: Value| json!({"type": "constant", "content": v});
    let base = json!({
        "api": {"method": "POST", "url": {"type": "template", "content": format!("{}/echo?keep=1", echo.origin)}},
        "params": {"type": "object", "properties": {"q": {"type": "string"}, "n": {"type": "integer"}, "empty": {"type": "string"}}},
        "paramsValues": {"q": constant(json!("a b")), "n": constant(json!(3)), "empty": constant(json!(""))},
        "headers": {"type": "object", "properties": {"X-Token": {"type": "string"}}},
        "headersValues": {"X-Token": constant(json!("secret"))}
    });
    let form_fields = json!({
        "formData": {"type": "object", "properties": {"a": {"type": "string"}, "n": {"type": "integer"}}},
        "formDataValues": {"a": constant(json!("x y")), "n": constant(json!(2))},
        "xWwwFormUrlencoded": {"type": "object", "properties": {"a": {"type": "string"}, "n": {"type": "integer"}}},
        "xWwwFormUrlencodedValues": {"a": constant(json!("x y")), "n": constant(json!(2))}
    });
    let template = |s: &str| json!({"type": "template", "content": s});
    let cases = [
        (
            json!({"bodyType": "JSON", "json": template("{\"a\": 1}")}),
            "application/json",
            "{\"a\": 1}",
        ),
        (
            json!({"bodyType": "raw-text", "rawText": template("plain text")}),
            "text/plain",
            "plain text",
        ),
        (
            json!({"bodyType": "binary", "binary": template("bytes")}),
            "application/octet-stream",
            "bytes",
        ),
        (
            json!({"bodyType": "x-www-form-urlencoded"}),
            "application/x-www-form-urlencoded",
            "a=x+y&n=2",
        ),
        (json!({"bodyType": "none"}), "", ""),
    ];
    for (body, content_type, expected_body) in cases {
        let mut body = body;
        for (k, v) in form_fields.as_object().unwrap() {
            body[k] = v.clone();
        }
        let mut extra = base.clone();
        extra["body"] = body;
        let ran = run_with(
            &engine,
            &single(http_node("http_0", "", extra), "body", "string"),
            json!({}),
        )
        .await;
        assert_eq!(
            ran.outcome.status,
            WorkflowStatus::Succeeded,
            "{:?}",
            ran.errors()
        );
        let echoed: Value =
            serde_json::from_str(ran.outcome.outputs["out"].as_str().unwrap()).unwrap();
        assert_eq!(echoed["query"], "keep=1&q=a+b&n=3");
        assert_eq!(echoed["headers"]["x-token"], "secret");
        assert_eq!(
            echoed["headers"]["content-type"].as_str().unwrap_or(""),
            content_type
        );
        assert_eq!(echoed["body"], expected_body);
        let inputs = &ran.snapshots_of("http_0")[0]["inputs"];
        assert_eq!(inputs["url"], format!("{}/echo?keep=1", echo.origin));
        assert_eq!(inputs["params"], json!({"q": "a b", "n": 3, "empty": ""}));
    }
    // form-data goes out as multipart with its boundary.
    let mut extra = base.clone();
    let mut body = json!({"bodyType": "form-data"});
    for (k, v) in form_fields.as_object().unwrap() {
        body[k] = v.clone();
    }
    extra["body"] = body;
    let ran = run_with(
        &engine,
        &single(http_node("http_0", "", extra), "body", "string"),
        json!({}),
    )
    .await;
    let echoed: Value = serde_json::from_str(ran.outcome.outputs["out"].as_str().unwrap()).unwrap();
    assert!(
        echoed["headers"]["content-type"]
            .as_str()
            .unwrap()
            .starts_with("multipart/form-data; boundary=")
    );
    assert!(
        echoed["body"]
            .as_str()
            .unwrap()
            .contains("name=\"a\"\r\n\r\nx y\r\n")
    );
}

#[tokio::test]
async fn http_caps_the_response_body() {
    let echo = EchoServer::start().await;
    let engine = engine_with(|c| c.http_max_response_bytes = 1024 * 1024);
    let ran = run_with(
        &engine,
        &single(
            http_node("http_0", &format!("{}/big", echo.origin), json!({})),
            "body",
            "string",
        ),
        json!({}),
    )
    .await;
    assert_eq!(ran.outcome.status, WorkflowStatus::Failed);
    assert_eq!(
        ran.errors(),
        vec!["HTTP response body is larger than 1048576 bytes (http_max_response_bytes)"]
    );
}

#[tokio::test]
async fn http_times_out_and_retries_the_configured_number_of_times() {
    let echo = EchoServer::start().await;
    let extra = json!({"timeout": {"timeout": 100, "retryTimes": 2}});
    let started = Instant::now();
    let ran = run_with(
        &Engine::new(test_config()),
        &single(
            http_node("http_0", &format!("{}/slow", echo.origin), extra),
            "body",
            "string",
        ),
        json!({}),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(ran.errors(), vec!["HTTP request timed out after 100ms"]);
    assert_eq!(echo.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn http_input_errors_use_the_reference_messages() {
    let engine = Engine::new(test_config());
    let cases = [
        (
            json!({"api": {"method": "GET", "url": {"type": "template", "content": ""}}}),
            "HTTP url is required",
        ),
        (
            json!({"body": {"bodyType": "JSON"}}),
            "HTTP json body is required",
        ),
        (
            json!({"body": {"bodyType": "form-data"}}),
            "HTTP form-data body is required",
        ),
        (
            json!({"body": {"bodyType": "xml"}}),
            "HTTP invalid body type \"xml\"",
        ),
        (
            json!({"api": {"method": "GET", "url": {"type": "template", "content": "not a url"}}}),
            "Invalid URL",
        ),
    ];
    for (extra, message) in cases {
        let ran = run_with(
            &engine,
            &single(
                http_node("http_0", "http://127.0.0.1:9/", extra),
                "body",
                "string",
            ),
            json!({}),
        )
        .await;
        assert_eq!(ran.errors(), vec![message.to_string()]);
    }
}

// ------------------------------------------------------------------ code node

#[tokio::test]
async fn an_infinite_loop_fails_the_code_node_at_its_time_limit() {
    let engine = engine_with(|c| c.code_timeout = Duration::from_millis(200));
    let started = Instant::now();
    let ran = run_with(
        &engine,
        &single(
            code_node("code_0", "function main() { while (true) {} }"),
            "result",
            "string",
        ),
        json!({}),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(ran.outcome.status, WorkflowStatus::Failed);
    assert_eq!(
        ran.errors(),
        vec!["Code execution failed: the script ran longer than 200ms (code_timeout)"]
    );
}

#[tokio::test]
async fn a_memory_bomb_fails_the_code_node_and_the_process_stays_healthy() {
    let engine = engine_with(|c| c.code_memory_bytes = 16 * 1024 * 1024);
    let bomb =
        "function main() { const a = []; for (;;) { a.push(new Array(100000).fill(a.length)); } }";
    let ran = run_with(
        &engine,
        &single(code_node("code_0", bomb), "result", "string"),
        json!({}),
    )
    .await;
    assert_eq!(ran.outcome.status, WorkflowStatus::Failed);
    assert_eq!(
        ran.errors(),
        vec![
            "Code execution failed: out of memory: the script exceeded its 16 MB memory limit (code_memory_bytes)"
        ]
    );
    let ran = run_with(&engine, &fixture("code"), json!({"input": "ok"})).await;
    assert_eq!(ran.outcome.status, WorkflowStatus::Succeeded);
}

#[tokio::test]
async fn code_input_errors_use_the_reference_messages() {
    let engine = Engine::new(test_config());
    let cases = [
        (
            node(
                "code_0",
                "code",
                json!({"script": {"language": "javascript", "content": ""}}),
            ),
            "Code content is required",
        ),
        (
            node(
                "code_0",
                "code",
                json!({"script": {"language": "python", "content": "x"}}),
            ),
            "Unsupported code language \"python\"",
        ),
        (
            code_node("code_0", "const x = 1;"),
            "Code execution failed: main function is required in the script",
        ),
    ];
    for (n, message) in cases {
        let ran = run_with(&engine, &single(n, "result", "string"), json!({})).await;
        assert_eq!(ran.errors(), vec![message.to_string()]);
    }
}

// ------------------------------------------------------------------ report format

#[tokio::test]
async fn the_report_serializes_with_the_reference_keys() {
    let schema = Arc::new(parse_schema(&fixture("end-constant")).unwrap());
    let handle = ReportHandle::new("task-42", serde_json::Map::new());
    let engine = Engine::new(test_config());
    engine
        .run(
            schema,
            serde_json::Map::new(),
            CancellationToken::new(),
            handle.clone(),
        )
        .await;
    let value = serde_json::to_value(handle.snapshot()).unwrap();
    assert_eq!(value["id"], "task-42");
    let keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "inputs",
            "outputs",
            "workflowStatus",
            "reports",
            "messages"
        ]
    );
    let status = &value["workflowStatus"];
    assert_eq!(status["status"], "succeeded");
    assert_eq!(status["terminated"], true);
    assert_eq!(
        status["timeCost"].as_i64().unwrap(),
        status["endTime"].as_i64().unwrap() - status["startTime"].as_i64().unwrap()
    );
    let start = &value["reports"]["start_0"];
    let keys: Vec<&str> = start
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "status",
            "terminated",
            "startTime",
            "endTime",
            "timeCost",
            "snapshots"
        ]
    );
    let snapshot = &start["snapshots"][0];
    assert!(snapshot["id"].as_str().unwrap().len() == 36);
    assert_eq!(snapshot["nodeID"], "start_0");
    assert_eq!(snapshot["inputs"], json!({}));
    for key in ["log", "info", "debug", "error", "warning"] {
        assert_eq!(value["messages"][key], json!([]), "{key}");
    }
}
