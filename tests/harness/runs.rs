//! Running workflows through the task API, as a FlowGram client does: the spec's fixtures,
//! submit, wait for the result, read the report.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{MockLlm, Stack};

/// The provider host the fixtures name; replaced by the mock's address.
const MOCK_HOST: &str = "https://mock-ai-url/api/v3";
/// A spec fixture (`shared/tests/fixtures/<name>.json`) whose LLM nodes call `llm`.
pub fn fixture(name: &str, llm: &MockLlm) -> Value {
    let path = format!(
        "{}/../shared/tests/fixtures/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text.replace(MOCK_HOST, &llm.base_url)).unwrap()
}

pub async fn post_run(stack: &Stack, schema: &Value, inputs: &Value) -> reqwest::Response {
    stack
        .client
        .post(stack.url("/api/task/run"))
        .json(&json!({"schema": schema.to_string(), "inputs": inputs}))
        .send()
        .await
        .unwrap()
}

/// Submits a run; it must be accepted. Answers its task id.
pub async fn run(stack: &Stack, schema: &Value, inputs: Value) -> String {
    let r = post_run(stack, schema, &inputs).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    body["taskID"].as_str().expect("taskID").to_owned()
}

pub async fn result(stack: &Stack, id: &str) -> Value {
    result_within(stack, id, 20_000).await
}

/// The task's result, waiting up to `wait_ms` for it to finish (`0`: not at all).
pub async fn result_within(stack: &Stack, id: &str, wait_ms: u64) -> Value {
    get_ok(
        stack,
        &format!("/api/task/result?taskID={id}&wait={wait_ms}"),
    )
    .await
}

pub async fn report(stack: &Stack, id: &str) -> Value {
    get_ok(stack, &format!("/api/task/report?taskID={id}")).await
}

/// `GET path`, which must answer 200 with JSON.
pub async fn get_ok(stack: &Stack, path: &str) -> Value {
    let r = stack.client.get(stack.url(path)).send().await.unwrap();
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Runs a schema to the end and returns (result, report).
pub async fn run_to_end(stack: &Stack, schema: &Value, inputs: Value) -> (Value, Value) {
    let id = run(stack, schema, inputs).await;
    let out = result(stack, &id).await;
    let rep = report(stack, &id).await;
    assert_eq!(rep["id"], id, "report.id is the taskID");
    assert_eq!(rep["workflowStatus"]["terminated"], true, "finished: {rep}");
    (out, rep)
}

/// Waits until the provider holds the run's LLM call.
pub async fn provider_holds_a_call(llm: &MockLlm) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while llm.requests().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the run never reached the provider"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
