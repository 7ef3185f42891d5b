//! Bounded outputs: a node whose output passes `LLMOPS_MAX_NODE_OUTPUT_BYTES` (1 MB) fails,
//! and so does its run, with a message naming the setting; the node that would take the
//! report past `LLMOPS_MAX_REPORT_BYTES` fails the same way; a run just under both succeeds.
//! The case that failed: 16 concurrent runs whose code node returned 8 MB each took the
//! embedded API from 80 MB to 3.86 GB; its peak must now stay under 1 GB.

use crate::helpers::{Mode, Stack, StackOptions, both_deployments};
use serde_json::json;

use super::common::{code_schema, errors, finished};
use crate::helpers::runs::run;

const EIGHT_MB: &str = "function main() { return {answer: 'x'.repeat(8 * 1024 * 1024)}; }";
/// `{"answer": "x…"}` of 1,000,013 bytes: under the 1 MB (1,048,576 bytes) node cap.
const UNDER_1_MB: &str = "function main() { return {answer: 'x'.repeat(1000 * 1000)}; }";

const GB: u64 = 1024 * 1024 * 1024;

/// A process's peak resident set (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kb * 1024
}

/// The process that runs the workflows: the API when embedded, the worker otherwise.
fn runner_pid(stack: &Stack) -> u32 {
    match stack.mode {
        Mode::Embedded => stack.api.pid(),
        Mode::Distributed { .. } => stack.workers[0].child.id(),
    }
}

both_deployments! {
    options = |o| o.processes();
    async fn sixteen_eight_mb_outputs_fail_within_bounded_memory(stack: Stack) {
        let pid = runner_pid(&stack);
        let before = peak_rss(pid);
        let schema = code_schema(EIGHT_MB);
        let ids = futures::future::join_all(
            (0..16).map(|i| run(&stack, &schema, json!({"input": format!("run {i}")}))),
        )
        .await;
        for (result, report) in
            futures::future::join_all(ids.iter().map(|id| finished(&stack, id))).await
        {
            assert_eq!(report["workflowStatus"]["status"], "failed", "{report}");
            assert_eq!(result, json!({}));
            assert_eq!(
                report["reports"]["code_0"]["snapshots"][0]["error"],
                "Node output is larger than 1 MB (LLMOPS_MAX_NODE_OUTPUT_BYTES)",
                "{:?}",
                errors(&report)
            );
        }
        let peak = peak_rss(pid);
        eprintln!(
            "{:?}: peak RSS of the process running 16 concurrent 8 MB outputs: {} MB (before: {} MB)",
            stack.mode,
            peak / (1024 * 1024),
            before / (1024 * 1024)
        );
        assert!(peak < GB, "peak RSS {peak} bytes");

        // Just under the cap: the output is kept, whole.
        let id = run(&stack, &code_schema(UNDER_1_MB), json!({"input": "x"})).await;
        let (result, report) = finished(&stack, &id).await;
        assert_eq!(
            report["workflowStatus"]["status"],
            "succeeded",
            "{:?}",
            errors(&report)
        );
        assert_eq!(result["answer"].as_str().unwrap().len(), 1000 * 1000);
    }
}

/// With a 1.5 MB report cap, the end node, whose inputs would add a second 1 MB copy, fails
/// naming the setting; a small run on the same server succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_that_would_pass_the_report_cap_fails() {
    let options = StackOptions::new(Mode::Embedded).env("LLMOPS_MAX_REPORT_BYTES", "1500000");
    let Some(stack) = Stack::start_with(options).await else {
        return;
    };
    let id = run(&stack, &code_schema(UNDER_1_MB), json!({"input": "x"})).await;
    let (result, report) = finished(&stack, &id).await;
    assert_eq!(report["workflowStatus"]["status"], "failed", "{report}");
    assert_eq!(result, json!({}));
    assert_eq!(report["reports"]["code_0"]["status"], "succeeded");
    assert_eq!(
        report["reports"]["end_0"]["snapshots"][0]["error"],
        "Run report would be larger than 1500000 bytes (LLMOPS_MAX_REPORT_BYTES)",
        "{:?}",
        errors(&report)
    );
    assert_eq!(
        report["reports"]["end_0"]["snapshots"][0]["inputs"],
        json!({}),
        "inputs over the cap are not copied into the report"
    );

    let small = code_schema("function main({params}) { return {answer: params.input}; }");
    let id = run(&stack, &small, json!({"input": "fits"})).await;
    let (result, _) = finished(&stack, &id).await;
    assert_eq!(result, json!({"answer": "fits"}));
}
