//! The task stream (`GET /api/task/stream`, `POST /api/task/run` with
//! `Accept: text/event-stream`): event order for a linear flow, a condition and a loop,
//! resuming with `Last-Event-ID` mid-run, a late subscriber, cancel mid-stream, unknown tasks.

use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{
    MockLlm, Stack, both_deployments,
    runs::{fixture, provider_holds_a_call, result, run},
};

/// One received event: (id, name, data).
pub(crate) type Received = (u64, String, Value);

/// An open event stream, read frame by frame.
pub(crate) struct Events {
    body: futures::stream::BoxStream<'static, reqwest::Result<axum::body::Bytes>>,
    buffer: String,
}

impl Events {
    pub(crate) fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200);
        let kind = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(kind.starts_with("text/event-stream"), "{kind}");
        Self {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), or `None` when the server ended the stream.
    pub(crate) async fn next(&mut self) -> Option<Received> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut name, mut data) = (None, String::new(), String::new());
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse::<u64>().unwrap());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if let Some(id) = id {
                    return Some((id, name, serde_json::from_str(&data).unwrap()));
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.body.next())
                .await
                .expect("no event within 20 s")?
                .unwrap();
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Every event until the server ends the stream.
    pub(crate) async fn rest(&mut self) -> Vec<Received> {
        let mut all = Vec::new();
        while let Some(event) = self.next().await {
            all.push(event);
        }
        all
    }
}

pub(crate) async fn subscribe(stack: &Stack, id: &str, last: Option<u64>) -> Events {
    let mut request = stack
        .client
        .get(stack.url(&format!("/api/task/stream?taskID={id}")));
    if let Some(last) = last {
        request = request.header("last-event-id", last.to_string());
    }
    Events::new(request.send().await.unwrap())
}

/// `name` or `name:nodeID` per event, for comparing orders.
pub(crate) fn names(events: &[Received]) -> Vec<String> {
    events
        .iter()
        .map(|(_, name, data)| match data["nodeID"].as_str() {
            Some(node) => format!("{name}:{node}"),
            None => name.clone(),
        })
        .collect()
}

#[track_caller]
pub(crate) fn assert_ids_rise(events: &[Received]) {
    for pair in events.windows(2) {
        assert!(
            pair[0].0 < pair[1].0,
            "ids not increasing: {:?}",
            names(events)
        );
    }
}

/// The events without the llm nodes' tokens (`node_delta`), which come only when someone
/// listened as the node started.
pub(crate) fn without_deltas(events: &[Received]) -> Vec<Received> {
    events
        .iter()
        .filter(|e| e.1 != "node_delta")
        .cloned()
        .collect()
}

pub(crate) fn basic_inputs() -> Value {
    json!({"model_name": "m", "llm_settings": {"temperature": 0.5}, "work": {"role": "r", "task": "t"}})
}

both_deployments! {
    async fn run_with_accept_event_stream_streams_a_linear_flow(stack: Stack) {
        let llm = MockLlm::start().await;
        let body = json!({"schema": fixture("basic", &llm).to_string(), "inputs": basic_inputs()});
        let r = stack.client.post(stack.url("/api/task/run"))
            .header("accept", "text/event-stream").json(&body).send().await.unwrap();
        let all = Events::new(r).rest().await;
        assert_ids_rise(&all);
        let events = without_deltas(&all);
        assert_eq!(names(&events), [
            "workflow_started",
            "node_started:start_0", "node_finished:start_0",
            "node_started:llm_0", "node_finished:llm_0",
            "node_started:end_0", "node_finished:end_0",
            "workflow_finished",
        ]);
        assert_ids_rise(&events);
        let id = events[0].2["taskID"].as_str().unwrap().to_owned();
        assert!(events.iter().all(|e| e.2["taskID"] == id.as_str()), "every event names the task");
        let out = result(&stack, &id).await;
        let last = &events.last().unwrap().2;
        assert_eq!(last["status"], "succeeded");
        assert_eq!(last["outputs"], out, "workflow_finished carries the result");
        let llm_done = &events[4].2;
        assert_eq!(llm_done["status"], "succeeded");
        assert!(llm_done["outputs"]["result"].is_string(), "{llm_done}");
        assert!(llm_done["timeCost"].is_number(), "{llm_done}");
        assert_eq!(events[3].2["type"], "llm", "{}", events[3].2);
        assert_eq!(events[1].2["type"], "start", "{}", events[1].2);
        assert_eq!(events[3].2["inputs"]["modelName"], "m", "node_started carries the inputs: {}", events[3].2);
    }
}

both_deployments! {
    async fn a_condition_and_a_loop_stream_in_execution_order(stack: Stack) {
        let llm = MockLlm::start().await;
        let id = run(&stack, &fixture("branch", &llm), json!({"model_id": 1, "prompt": "p"})).await;
        let events = subscribe(&stack, &id, None).await.rest().await;
        let order = names(&without_deltas(&events));
        assert_eq!(order.first().unwrap(), "workflow_started");
        assert_eq!(order.last().unwrap(), "workflow_finished");
        assert_ids_rise(&events);
        let report = crate::helpers::runs::report(&stack, &id).await;
        // Exactly the nodes the report says ran, each started before it finished, once.
        let ran: Vec<&String> = report["reports"].as_object().unwrap().keys().collect();
        for node in &ran {
            let started = order.iter().position(|n| n == &format!("node_started:{node}")).unwrap();
            let finished = order.iter().position(|n| n == &format!("node_finished:{node}")).unwrap();
            assert!(started < finished, "{node}: {order:?}");
        }
        assert_eq!(order.len(), 2 + 2 * ran.len(), "{order:?}");

        let tasks = json!(["a", "b", "c"]);
        let id = run(&stack, &fixture("loop", &llm), json!({"tasks": tasks})).await;
        let events = subscribe(&stack, &id, None).await.rest().await;
        assert_ids_rise(&events);
        let events = without_deltas(&events);
        let report = crate::helpers::runs::report(&stack, &id).await;
        for (node, body) in report["reports"].as_object().unwrap() {
            let runs = body["snapshots"].as_array().unwrap().len();
            let starts = names(&events).iter().filter(|n| **n == format!("node_started:{node}")).count();
            let ends = names(&events).iter().filter(|n| **n == format!("node_finished:{node}")).count();
            assert_eq!((starts, ends), (runs, runs), "one start and one end per snapshot of {node}");
        }
        assert_eq!(events.last().unwrap().2["status"], "succeeded");
    }
}

both_deployments! {
    async fn last_event_id_resumes_mid_run_without_loss_or_repeats(stack: Stack) {
        let llm = MockLlm::start().await;
        llm.set_latency(Duration::from_millis(1500));
        let id = run(&stack, &fixture("basic", &llm), basic_inputs()).await;
        let mut first = subscribe(&stack, &id, None).await;
        let mut seen = Vec::new();
        for _ in 0..3 {
            seen.push(first.next().await.unwrap());
        }
        drop(first);
        provider_holds_a_call(&llm).await;
        let rest = subscribe(&stack, &id, Some(seen.last().unwrap().0)).await.rest().await;
        seen.extend(rest);
        assert_ids_rise(&seen);
        // A late subscriber gets the whole run from the start: the same events, same ids.
        let late = subscribe(&stack, &id, None).await.rest().await;
        assert_eq!(seen, late);
        assert_eq!(names(&without_deltas(&late)).len(), 8, "{:?}", names(&late));
        // Resuming after the last event of a finished run: nothing more, the stream ends.
        let after_end = subscribe(&stack, &id, Some(late.last().unwrap().0)).await.rest().await;
        assert!(after_end.is_empty(), "{after_end:?}");
    }
}

both_deployments! {
    async fn cancel_mid_stream_ends_with_workflow_finished_canceled(stack: Stack) {
        let llm = MockLlm::start().await;
        llm.set_latency(Duration::from_secs(5));
        let id = run(&stack, &fixture("basic", &llm), basic_inputs()).await;
        let mut events = subscribe(&stack, &id, None).await;
        provider_holds_a_call(&llm).await;
        let r = stack.client.put(stack.url("/api/task/cancel")).json(&json!({"taskID": id})).send().await.unwrap();
        assert_eq!(r.json::<Value>().await.unwrap(), json!({"success": true}));
        let all = tokio::time::timeout(Duration::from_secs(3), events.rest()).await.expect("the stream ended after the cancel");
        let last = all.last().unwrap();
        assert_eq!(last.1, "workflow_finished");
        assert_eq!(last.2["status"], "canceled");
        assert_ids_rise(&all);
    }
}

both_deployments! {
    async fn the_stream_of_an_unknown_task_answers_404(stack: Stack) {
        let unknown = uuid::Uuid::now_v7();
        let r = stack.client.get(stack.url(&format!("/api/task/stream?taskID={unknown}"))).send().await.unwrap();
        assert_eq!(r.status(), 404);
        let body: Value = r.json().await.unwrap();
        assert!(body["message"].as_str().unwrap().contains(&unknown.to_string()), "{body}");
        let r = stack.client.get(stack.url("/api/task/stream")).send().await.unwrap();
        assert_eq!(r.status(), 400);
    }
}

/// A distributed stack of real processes (one worker) and a second api replica beside it:
/// the stack, the replica's process and its base URL; `None` when the binaries are missing.
pub async fn two_api_replicas() -> Option<(Stack, crate::helpers::stack::Proc, String)> {
    let options =
        crate::helpers::StackOptions::new(crate::helpers::Mode::Distributed { workers: 1 })
            .processes();
    let stack = Stack::start_with(options).await?;
    let (replica, replica_base) = stack.spawn_api_replica().await;
    Some((stack, replica, replica_base))
}

/// A stream opened on one api replica resumes on another (real processes, distributed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_event_id_resumes_on_another_api_replica() {
    let Some((stack, _replica, replica_base)) = two_api_replicas().await else {
        return;
    };
    let llm = MockLlm::start().await;
    llm.set_latency(Duration::from_millis(1500));
    let id = run(&stack, &fixture("basic", &llm), basic_inputs()).await;
    let mut first = subscribe(&stack, &id, None).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(first.next().await.unwrap());
    }
    drop(first);
    let r = stack
        .client
        .get(format!("{replica_base}/api/task/stream?taskID={id}"))
        .header("last-event-id", seen.last().unwrap().0.to_string())
        .send()
        .await
        .unwrap();
    seen.extend(Events::new(r).rest().await);
    assert_ids_rise(&seen);
    assert_eq!(names(&without_deltas(&seen)).len(), 8, "{:?}", names(&seen));
    assert_eq!(seen.last().unwrap().2["status"], "succeeded");
    let late = subscribe(&stack, &id, None).await.rest().await;
    assert_eq!(
        seen, late,
        "both replicas send the same events with the same ids"
    );
}
