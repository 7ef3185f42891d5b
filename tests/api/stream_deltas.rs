//! An llm node's tokens on the task stream (`node_delta`): streamed only while someone
//! listens, the same result as the plain call, resumable mid-answer with `Last-Event-ID` (on
//! another api replica too), canceled mid-answer; and the event order of parallel branches.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    helpers::{
        MockLlm, Stack, both_deployments,
        runs::{fixture, report, result, run},
    },
    streams::{
        Events, Received, assert_ids_rise, basic_inputs, names, subscribe, two_api_replicas,
        without_deltas,
    },
};

/// `POST /api/task/run` with `Accept: text/event-stream` (listened from the start).
async fn run_streamed(stack: &Stack, base: &str, schema: &Value, inputs: Value) -> Events {
    let body = json!({"schema": schema.to_string(), "inputs": inputs});
    let r = stack
        .client
        .post(format!("{base}/api/task/run"))
        .header("accept", "text/event-stream")
        .json(&body)
        .send()
        .await
        .unwrap();
    Events::new(r)
}

/// The tokens of one node, joined.
fn tokens_of(events: &[Received], node: &str) -> String {
    events
        .iter()
        .filter(|e| e.1 == "node_delta" && e.2["nodeID"] == node)
        .map(|e| e.2["delta"].as_str().unwrap())
        .collect()
}

/// Every token of `node` lies between its `node_started` and `node_finished`, and the tokens
/// joined are its output. Answers the output.
#[track_caller]
fn assert_tokens_make_the_output(events: &[Received], node: &str) -> String {
    let order = names(events);
    let started = order
        .iter()
        .position(|n| *n == format!("node_started:{node}"))
        .unwrap();
    let finished = order
        .iter()
        .position(|n| *n == format!("node_finished:{node}"))
        .unwrap();
    for (at, name) in order.iter().enumerate() {
        if *name == format!("node_delta:{node}") {
            assert!(started < at && at < finished, "{node}: {order:?}");
        }
    }
    let output = events[finished].2["outputs"]["result"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(tokens_of(events, node), output, "{node}: {order:?}");
    output
}

fn deltas(events: &[Received]) -> usize {
    events.iter().filter(|e| e.1 == "node_delta").count()
}

both_deployments! {
    async fn a_listened_llm_node_streams_its_tokens_and_an_unwatched_one_does_not(stack: Stack) {
        let llm = MockLlm::start().await;
        llm.set_chunk_delay(Duration::from_millis(10));
        let schema = fixture("basic", &llm);
        let events = run_streamed(&stack, &stack.base, &schema, basic_inputs()).await.rest().await;
        assert_ids_rise(&events);
        assert!(deltas(&events) >= 2, "{:?}", names(&events));
        let output = assert_tokens_make_the_output(&events, "llm_0");
        let id = events[0].2["taskID"].as_str().unwrap().to_owned();
        assert_eq!(result(&stack, &id).await["llm_res"], output.as_str());
        assert_eq!(llm.requests()[0]["stream"], true, "a listened run asks for a stream");

        // The same run with nobody watching: the plain call, the same result and report.
        let quiet = run(&stack, &schema, basic_inputs()).await;
        let out = result(&stack, &quiet).await;
        assert_eq!(out["llm_res"], output.as_str(), "the same result as the streamed run");
        let requests = llm.requests();
        assert_eq!(requests.len(), 2);
        assert!(requests[1].get("stream").is_none(), "no stream asked: {}", requests[1]);
        assert!(requests[1].get("stream_options").is_none(), "{}", requests[1]);
        let rep = report(&stack, &quiet).await;
        assert_eq!(rep["reports"]["llm_0"]["snapshots"][0]["outputs"]["result"], output.as_str());
        let late = subscribe(&stack, &quiet, None).await.rest().await;
        assert_eq!(deltas(&late), 0, "{:?}", names(&late));
        assert_eq!(names(&late).len(), 8, "{:?}", names(&late));
        // A late subscriber to the listened run gets its tokens again, with the same ids.
        let again = subscribe(&stack, &id, None).await.rest().await;
        assert_eq!(again, events);
    }
}

both_deployments! {
    async fn last_event_id_mid_answer_resumes_the_tokens_without_loss_or_repeats(stack: Stack) {
        let llm = MockLlm::start().await;
        llm.set_chunk_delay(Duration::from_millis(40));
        let mut first = run_streamed(&stack, &stack.base, &fixture("basic", &llm), basic_inputs()).await;
        let mut seen = Vec::new();
        while deltas(&seen) < 3 {
            seen.push(first.next().await.unwrap());
        }
        drop(first);
        let id = seen[0].2["taskID"].as_str().unwrap().to_owned();
        let rest = subscribe(&stack, &id, Some(seen.last().unwrap().0)).await.rest().await;
        assert!(deltas(&rest) >= 1, "the answer was still streaming: {:?}", names(&rest));
        seen.extend(rest);
        assert_ids_rise(&seen);
        assert_tokens_make_the_output(&seen, "llm_0");
        assert_eq!(names(&without_deltas(&seen)).len(), 8, "{:?}", names(&seen));
        let late = subscribe(&stack, &id, None).await.rest().await;
        assert_eq!(seen, late, "a late subscriber gets the same events and ids");
    }
}

both_deployments! {
    async fn cancel_mid_answer_ends_the_stream_canceled_and_closes_the_provider_call(stack: Stack) {
        let llm = MockLlm::start().await;
        // `slow-stream`: 500 words 20 ms apart, far longer than the test.
        let mut inputs = basic_inputs();
        inputs["model_name"] = json!("slow-stream");
        let mut events = run_streamed(&stack, &stack.base, &fixture("basic", &llm), inputs).await;
        let mut seen = Vec::new();
        while deltas(&seen) < 3 {
            seen.push(events.next().await.unwrap());
        }
        let id = seen[0].2["taskID"].as_str().unwrap().to_owned();
        let r = stack.client.put(stack.url("/api/task/cancel")).json(&json!({"taskID": id})).send().await.unwrap();
        assert_eq!(r.json::<Value>().await.unwrap(), json!({"success": true}));
        let rest = tokio::time::timeout(Duration::from_secs(5), events.rest()).await.expect("the stream ended after the cancel");
        seen.extend(rest);
        assert_ids_rise(&seen);
        let last = seen.last().unwrap();
        assert_eq!((last.1.as_str(), &last.2["status"]), ("workflow_finished", &json!("canceled")), "{:?}", names(&seen));
        assert!(deltas(&seen) < 500, "the answer stopped: {}", deltas(&seen));
        // The provider's connection was closed, not left streaming.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while llm.dropped() == 0 {
            assert!(std::time::Instant::now() < deadline, "the provider call was not dropped");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Start, two llm nodes side by side, an end that joins them.
fn parallel(llm: &MockLlm) -> Value {
    let mut schema = fixture("basic", llm);
    let nodes = schema["nodes"].as_array_mut().unwrap();
    let at = nodes.iter().position(|n| n["id"] == "llm_0").unwrap();
    let mut a = nodes.remove(at);
    let mut b = a.clone();
    a["id"] = json!("llm_a");
    b["id"] = json!("llm_b");
    b["data"]["inputsValues"]["prompt"] =
        json!({"type": "constant", "content": "the other branch"});
    nodes.push(a);
    nodes.push(b);
    let end = nodes.iter_mut().find(|n| n["id"] == "end_0").unwrap();
    end["data"]["inputsValues"] = json!({
        "a": {"type": "ref", "content": ["llm_a", "result"]},
        "b": {"type": "ref", "content": ["llm_b", "result"]},
    });
    end["data"]["inputs"] =
        json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}});
    schema["edges"] = json!([
        {"sourceNodeID": "start_0", "targetNodeID": "llm_a"},
        {"sourceNodeID": "start_0", "targetNodeID": "llm_b"},
        {"sourceNodeID": "llm_a", "targetNodeID": "end_0"},
        {"sourceNodeID": "llm_b", "targetNodeID": "end_0"},
    ]);
    schema
}

/// The order every run of [`parallel`] keeps, whatever the interleaving of its branches.
#[track_caller]
fn assert_parallel_order(events: &[Received]) {
    assert_ids_rise(events);
    let order = names(&without_deltas(events));
    assert_eq!(order.first().unwrap(), "workflow_started", "{order:?}");
    assert_eq!(order.last().unwrap(), "workflow_finished", "{order:?}");
    assert_eq!(order.len(), 10, "{order:?}");
    let at = |name: &str| {
        let found: Vec<usize> = order
            .iter()
            .enumerate()
            .filter(|(_, n)| *n == name)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(found.len(), 1, "{name} once: {order:?}");
        found[0]
    };
    for node in ["start_0", "llm_a", "llm_b", "end_0"] {
        assert!(
            at(&format!("node_started:{node}")) < at(&format!("node_finished:{node}")),
            "{order:?}"
        );
    }
    for branch in ["llm_a", "llm_b"] {
        assert!(
            at("node_finished:start_0") < at(&format!("node_started:{branch}")),
            "{order:?}"
        );
        assert!(
            at(&format!("node_finished:{branch}")) < at("node_started:end_0"),
            "{order:?}"
        );
    }
}

both_deployments! {
    async fn parallel_branches_stream_in_execution_order(stack: Stack) {
        let llm = MockLlm::start().await;
        llm.set_chunk_delay(Duration::from_millis(10));
        let schema = parallel(&llm);
        // Watched from the start: both branches' tokens interleave with the other's events.
        let events = run_streamed(&stack, &stack.base, &schema, basic_inputs()).await.rest().await;
        assert_parallel_order(&events);
        let a = assert_tokens_make_the_output(&events, "llm_a");
        let b = assert_tokens_make_the_output(&events, "llm_b");
        assert_ne!(a, b);
        assert_eq!(events.last().unwrap().2["outputs"], json!({"a": a, "b": b}));
        // Nobody watching: the same order, rebuilt from the store after the run.
        let id = run(&stack, &schema, basic_inputs()).await;
        result(&stack, &id).await;
        let late = subscribe(&stack, &id, None).await.rest().await;
        assert_parallel_order(&late);
        assert_eq!(deltas(&late), 0);
    }
}

/// Tokens resumed on another api replica (real processes, distributed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_resume_on_another_api_replica() {
    let Some((stack, _replica, replica_base)) = two_api_replicas().await else {
        return;
    };
    let llm = MockLlm::start().await;
    llm.set_chunk_delay(Duration::from_millis(40));
    let mut first =
        run_streamed(&stack, &stack.base, &fixture("basic", &llm), basic_inputs()).await;
    let mut seen = Vec::new();
    while deltas(&seen) < 3 {
        seen.push(first.next().await.unwrap());
    }
    drop(first);
    let id = seen[0].2["taskID"].as_str().unwrap().to_owned();
    let r = stack
        .client
        .get(format!("{replica_base}/api/task/stream?taskID={id}"))
        .header("last-event-id", seen.last().unwrap().0.to_string())
        .send()
        .await
        .unwrap();
    let rest = Events::new(r).rest().await;
    assert!(deltas(&rest) >= 1, "{:?}", names(&rest));
    seen.extend(rest);
    assert_ids_rise(&seen);
    assert_tokens_make_the_output(&seen, "llm_0");
    let late = subscribe(&stack, &id, None).await.rest().await;
    assert_eq!(
        seen, late,
        "both replicas send the same events with the same ids"
    );
}
