//! A run's events (`workflow_started`, `node_started`, `node_delta`, `node_finished`,
//! `workflow_finished`), as the task stream sends them, rebuilt from what the worker stores.
//!
//! Why derived and not published: the worker keeps a compact log of node starts and ends in
//! order (`[kind, nodeID, snapshot]`, [`EventRef`]) and stores it in the task row's `events`
//! column with the same statements that write the report (the 100 ms progress flush and the
//! final write). A run without subscribers therefore costs no extra round trip, and the log
//! is in the store, so any api replica rebuilds the same events, with the same ids, for a run
//! on any worker, during the run and after it; a late subscriber gets them from the start,
//! and nothing between submit and subscribe can be missed.
//!
//! Ids: `attempt × 1 000 000 + position` (`workflow_started` at 0, the log's entries from 1,
//! `workflow_finished` after the last). They rise strictly within an attempt; a redelivered
//! job (its worker died) starts a new attempt whose log replaces the old one, so its events
//! carry higher ids than anything the dead attempt produced and a subscriber sees the run
//! restart with a second `workflow_started` — never a repeated or reused id.
//!
//! `node_delta` (an llm node's tokens) is in the same log, as `[2, nodeID, k]` with its text
//! in the log's `deltas[k]`, recorded only while someone listens to the run (see
//! [`crate::workflow::live`]). So a token has a position like any other event: its id sits
//! between its node's `node_started` and `node_finished` (and among a parallel branch's
//! events in the order they happened), a reconnect with `Last-Event-ID` continues after
//! it, and a late subscriber gets every token again. The worker also publishes each token
//! as it comes, with the same id, so that open streams need not wait for the store. Tokens
//! stop being recorded once an attempt's log holds 900,000 entries, so that its ids stay in
//! its span; the node's output has them all.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::report::{EventRef, Report, WorkflowStatus};

/// Ids of one attempt live in `[attempt × ATTEMPT_SPAN, (attempt + 1) × ATTEMPT_SPAN)`.
pub const ATTEMPT_SPAN: u64 = 1_000_000;

/// One event of a run, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEvent {
    pub id: u64,
    pub name: &'static str,
    pub data: Value,
}

/// The stored event log of one attempt (the `events` column).
#[derive(serde::Deserialize, Debug, Default)]
pub struct EventLog {
    pub attempt: i32,
    pub log: Vec<EventRef>,
    /// Texts of the log's `node_delta` entries (absent when nobody listened).
    #[serde(default)]
    pub deltas: Vec<String>,
}

/// The id of the event at `index` in the log of `attempt` (`workflow_started` is
/// `attempt × ATTEMPT_SPAN`, the log follows it).
pub fn event_id(attempt: i32, index: usize) -> u64 {
    attempt.max(0) as u64 * ATTEMPT_SPAN + 1 + index as u64
}

/// The data of a `node_delta` event.
pub fn delta_data(task_id: &str, node_id: &str, delta: &str) -> Value {
    json!({"taskID": task_id, "nodeID": node_id, "delta": delta})
}

/// Each node's type by its id, nested blocks (loop bodies) included, from the schema JSON.
pub fn node_types(schema: &str) -> HashMap<String, String> {
    fn walk(nodes: &Value, types: &mut HashMap<String, String>) {
        for node in nodes.as_array().into_iter().flatten() {
            if let (Some(id), Some(ty)) = (node["id"].as_str(), node["type"].as_str()) {
                types.insert(id.to_owned(), ty.to_owned());
            }
            walk(&node["blocks"], types);
        }
    }
    let mut types = HashMap::new();
    if let Ok(doc) = serde_json::from_str::<Value>(schema) {
        walk(&doc["nodes"], &mut types);
    }
    types
}

/// The events of a run after `after` (a `Last-Event-ID`), from its stored report and log.
/// `terminal` is the task's stored status when it has ended (the final write holds the
/// complete log, so `workflow_finished` comes last).
pub fn events_after(
    task_id: &str,
    report: &Report,
    log: &EventLog,
    terminal: Option<WorkflowStatus>,
    after: Option<u64>,
    types: &HashMap<String, String>,
) -> Vec<RunEvent> {
    let base = log.attempt.max(0) as u64 * ATTEMPT_SPAN;
    let wanted = |id: u64| after.is_none_or(|a| id > a);
    let mut events = Vec::new();
    // A task canceled or rejected before any worker ran it has no started run to report.
    let started = log.attempt > 0;
    if started && wanted(base) {
        events.push(RunEvent {
            id: base,
            name: "workflow_started",
            data: json!({"taskID": task_id, "inputs": report.inputs, "attempt": log.attempt}),
        });
    }
    for (n, entry) in log.log.iter().enumerate() {
        let id = event_id(log.attempt, n);
        if !wanted(id) {
            continue;
        }
        let EventRef(kind, node_id, index) = entry;
        if *kind == EventRef::DELTA {
            if let Some(delta) = log.deltas.get(*index) {
                let data = delta_data(task_id, node_id, delta);
                events.push(RunEvent {
                    id,
                    name: "node_delta",
                    data,
                });
            }
            continue;
        }
        let snapshot = report
            .reports
            .get(node_id)
            .and_then(|node| node.snapshots.get(*index));
        let Some(snapshot) = snapshot else { continue };
        let node_type = types.get(node_id).map_or(Value::Null, |t| json!(t));
        let data = if *kind == EventRef::STARTED {
            json!({"taskID": task_id, "nodeID": node_id, "type": node_type,
                   "inputs": snapshot.inputs})
        } else {
            let mut body = Map::new();
            body.insert("taskID".into(), json!(task_id));
            body.insert("nodeID".into(), json!(node_id));
            match &snapshot.error {
                Some(error) => {
                    body.insert("status".into(), json!("failed"));
                    body.insert("error".into(), json!(error));
                }
                None => {
                    body.insert("status".into(), json!("succeeded"));
                    body.insert(
                        "outputs".into(),
                        Value::Object(snapshot.outputs.clone().unwrap_or_default()),
                    );
                }
            }
            let time_cost = report
                .reports
                .get(node_id)
                .filter(|node| node.snapshots.len() == index + 1)
                .map(|node| node.status.time_cost);
            body.insert("timeCost".into(), json!(time_cost));
            Value::Object(body)
        };
        let name = if *kind == EventRef::STARTED {
            "node_started"
        } else {
            "node_finished"
        };
        events.push(RunEvent { id, name, data });
    }
    if let Some(status) = terminal {
        let id = event_id(log.attempt, log.log.len());
        if wanted(id) {
            events.push(RunEvent {
                id,
                name: "workflow_finished",
                data: json!({"taskID": task_id, "status": status.as_str(),
                             "outputs": report.outputs,
                             "timeCost": report.workflow_status.time_cost}),
            });
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::report::ReportHandle;

    #[test]
    fn tokens_are_events_between_their_node_start_and_end() {
        let report = ReportHandle::new("t", Map::new());
        let slot = report.node_started("llm_0", Map::new(), Map::new());
        let first = report.node_delta(slot, "Hel");
        let second = report.node_delta(slot, "lo");
        let mut outputs = Map::new();
        outputs.insert("result".into(), json!("Hello"));
        report.node_succeeded(slot, outputs, None);
        assert_eq!((first, second), (Some(1), Some(2)), "positions in the log");
        assert!(
            report.tokens_version() == 2,
            "tokens counted apart from the version"
        );

        let (stored, log) = report.to_json_with_events(1).unwrap();
        let stored: Report = serde_json::from_str(stored.get()).unwrap();
        let log: EventLog = serde_json::from_str(log.get()).unwrap();
        assert_eq!(log.deltas, ["Hel", "lo"]);
        let types = HashMap::from([("llm_0".to_owned(), "llm".to_owned())]);
        let events = events_after("t", &stored, &log, None, None, &types);
        let names: Vec<_> = events.iter().map(|e| (e.id, e.name)).collect();
        assert_eq!(
            names,
            [
                (ATTEMPT_SPAN, "workflow_started"),
                (ATTEMPT_SPAN + 1, "node_started"),
                (ATTEMPT_SPAN + 2, "node_delta"),
                (ATTEMPT_SPAN + 3, "node_delta"),
                (ATTEMPT_SPAN + 4, "node_finished"),
            ]
        );
        assert_eq!(events[2].data, delta_data("t", "llm_0", "Hel"));
        assert_eq!(event_id(1, 2), ATTEMPT_SPAN + 3);
        // Resuming after the first token: the second, then the end of the node.
        let rest = events_after("t", &stored, &log, None, Some(ATTEMPT_SPAN + 2), &types);
        assert_eq!(rest.len(), 2);
        assert_eq!(rest[0].data["delta"], "lo");
    }

    #[test]
    fn a_log_without_tokens_is_stored_as_before() {
        let report = ReportHandle::new("t", Map::new());
        report.node_started("code_0", Map::new(), Map::new());
        let (_, log) = report.to_json_with_events(2).unwrap();
        assert_eq!(log.get(), r#"{"attempt":2,"log":[[0,"code_0",0]]}"#);
    }
}
