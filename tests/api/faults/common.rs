//! Helpers the fault tests share.

use std::time::{Duration, Instant};

use crate::helpers::{
    MockLlm, Stack,
    runs::{fixture, get_ok, post_run, report, result_within},
};
use futures::StreamExt;
use serde_json::{Value, json};

/// Inputs of the `basic` fixture (start → llm → end).
pub fn basic_inputs(task: &str) -> Value {
    json!({"model_name": "m", "llm_settings": {"temperature": 0.5}, "work": {"role": "r", "task": task}})
}

/// Submits `count` runs of the basic flow, `concurrency` at a time; answers the accepted ones'
/// ids with their task names, and the statuses of the refused ones.
pub async fn submit_basic(
    stack: &Stack,
    llm: &MockLlm,
    prefix: &str,
    count: usize,
    concurrency: usize,
) -> (Vec<(String, String)>, Vec<u16>) {
    let schema = fixture("basic", llm);
    let answers: Vec<(String, Result<String, u16>)> = futures::stream::iter(0..count)
        .map(|i| {
            let schema = &schema;
            async move {
                let task = format!("{prefix}-{i}");
                let r = post_run(stack, schema, &basic_inputs(&task)).await;
                let status = r.status().as_u16();
                if status == 200 {
                    let body: Value = r.json().await.unwrap();
                    (task, Ok(body["taskID"].as_str().unwrap().to_owned()))
                } else {
                    (task, Err(status))
                }
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for (task, answer) in answers {
        match answer {
            Ok(id) => accepted.push((id, task)),
            Err(status) => refused.push(status),
        }
    }
    (accepted, refused)
}

/// The task's status and result, read without waiting.
pub async fn status_of(stack: &Stack, id: &str) -> (String, Value) {
    let report = report(stack, id).await;
    let result = result_within(stack, id, 0).await;
    let status = report["workflowStatus"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (status, result)
}

/// Waits until every run is terminal (or `within` passes) and asserts each one succeeded
/// with its own result; answers when the last one was seen finished.
pub async fn assert_all_succeed(stack: &Stack, runs: &[(String, String)], within: Duration) {
    let deadline = Instant::now() + within;
    let mut left: Vec<&(String, String)> = runs.iter().collect();
    while !left.is_empty() {
        let mut still = Vec::new();
        for run in left {
            let (status, result) = status_of(stack, &run.0).await;
            match status.as_str() {
                "succeeded" => assert_eq!(result["llm_task"], run.1, "task {}", run.0),
                "failed" | "canceled" => {
                    panic!("run {} ended {status}: {result}\n{}", run.0, stack.logs())
                }
                _ => still.push(run),
            }
        }
        left = still;
        if !left.is_empty() {
            assert!(
                Instant::now() < deadline,
                "{} of {} runs never finished (first: {}):\n{}",
                left.len(),
                runs.len(),
                left[0].0,
                stack.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// start (`input`: string) → code (`script`, given `params.input`) → end (`answer`).
pub fn code_schema(script: &str) -> Value {
    let string = json!({"type": "string"});
    json!({
        "nodes": [
            {"id": "start_0", "type": "start", "meta": {"position": {"x": 0, "y": 0}},
             "data": {"title": "Start", "outputs": {"type": "object", "properties": {"input": string}}}},
            {"id": "code_0", "type": "code", "meta": {"position": {"x": 400, "y": 0}},
             "data": {"title": "Code",
                      "inputsValues": {"input": {"type": "ref", "content": ["start_0", "input"]}},
                      "inputs": {"type": "object", "properties": {"input": string}},
                      "outputs": {"type": "object", "properties": {"answer": string}},
                      "script": {"language": "javascript", "content": script}}},
            {"id": "end_0", "type": "end", "meta": {"position": {"x": 800, "y": 0}},
             "data": {"title": "End",
                      "inputsValues": {"answer": {"type": "ref", "content": ["code_0", "answer"]}},
                      "inputs": {"type": "object", "properties": {"answer": string}}}}
        ],
        "edges": [
            {"sourceNodeID": "start_0", "targetNodeID": "code_0"},
            {"sourceNodeID": "code_0", "targetNodeID": "end_0"}
        ]
    })
}

/// Waits until the run is terminal; returns its result and report.
pub async fn finished(stack: &Stack, id: &str) -> (Value, Value) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let result = get_ok(stack, &format!("/api/task/result?taskID={id}&wait=10000")).await;
        let report = get_ok(stack, &format!("/api/task/report?taskID={id}")).await;
        if report["workflowStatus"]["terminated"] == true {
            // The result read after the terminal report is the stored one.
            let result = get_ok(stack, &format!("/api/task/result?taskID={id}")).await;
            return (result, report);
        }
        assert!(
            Instant::now() < deadline,
            "run {id} never finished: {result} {report}"
        );
    }
}

/// The error messages of a finished run's report.
pub fn errors(report: &Value) -> Vec<String> {
    let mut errors: Vec<String> = report["messages"]["error"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["message"].as_str().map(str::to_owned))
        .collect();
    for node in report["reports"].as_object().into_iter().flatten() {
        for snapshot in node.1["snapshots"].as_array().into_iter().flatten() {
            if let Some(error) = snapshot["error"].as_str() {
                errors.push(error.to_owned());
            }
        }
    }
    errors
}
