//! The run report (`IReport`, spec 1.2 + decision 4) and the handle the engine writes it through.
//!
//! The engine mutates one report behind a mutex and bumps a version on every change; a worker
//! takes [`ReportHandle::snapshot`]s when it wants to flush, so a run costs a few writes to storage
//! rather than one per event.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::Notify;

use super::live::LiveSink;

/// Workflow and node status. `Canceled` is spelled with one "l", like the reference.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum WorkflowStatus {
    Pending,
    Processing,
    Succeeded,
    Failed,
    Canceled,
}

impl WorkflowStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            WorkflowStatus::Succeeded | WorkflowStatus::Failed | WorkflowStatus::Canceled
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowStatus::Pending => "pending",
            WorkflowStatus::Processing => "processing",
            WorkflowStatus::Succeeded => "succeeded",
            WorkflowStatus::Failed => "failed",
            WorkflowStatus::Canceled => "canceled",
        }
    }
}

/// `StatusData`: times are epoch milliseconds; `startTime` is always present (decision 4).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusData {
    pub status: WorkflowStatus,
    pub terminated: bool,
    pub start_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    pub time_cost: i64,
}

impl StatusData {
    fn pending(at_ms: i64) -> StatusData {
        StatusData {
            status: WorkflowStatus::Pending,
            terminated: false,
            start_time: at_ms,
            end_time: None,
            time_cost: 0,
        }
    }

    /// `process()`: restart the clock, even after an earlier terminal state (loop iterations).
    fn process(&mut self, at_ms: i64) {
        self.status = WorkflowStatus::Processing;
        self.terminated = false;
        self.start_time = at_ms;
        self.end_time = None;
        self.time_cost = 0;
    }

    /// `success()` / `fail()` / `cancel()`: no-ops once terminated.
    fn finish(&mut self, status: WorkflowStatus, at_ms: i64) {
        if self.terminated {
            return;
        }
        self.status = status;
        self.terminated = true;
        self.end_time = Some(at_ms);
        self.time_cost = at_ms - self.start_time;
    }

    fn refresh_time_cost(&mut self, now_ms: i64) {
        if !self.terminated && self.status != WorkflowStatus::Pending {
            self.time_cost = now_ms - self.start_time;
        }
    }
}

/// One execution of one node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub id: String,
    #[serde(rename = "nodeID")]
    pub node_id: String,
    pub inputs: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Map<String, Value>>,
    pub data: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `NodeReport`: the node's status plus all its snapshots (one per loop iteration).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NodeReport {
    pub id: String,
    #[serde(flatten)]
    pub status: StatusData,
    pub snapshots: Vec<Snapshot>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    #[serde(rename = "log")]
    Log,
    #[serde(rename = "info")]
    Info,
    #[serde(rename = "debug")]
    Debug,
    #[serde(rename = "error")]
    Error,
    #[serde(rename = "warning")]
    Warn,
}

/// `IMessage`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Message {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: MessageType,
    pub message: String,
    #[serde(rename = "nodeID", default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    pub timestamp: i64,
}

/// `WorkflowMessages`: all five keys are always present.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Messages {
    #[serde(default)]
    pub log: Vec<Message>,
    #[serde(default)]
    pub info: Vec<Message>,
    #[serde(default)]
    pub debug: Vec<Message>,
    #[serde(default)]
    pub error: Vec<Message>,
    #[serde(default)]
    pub warning: Vec<Message>,
}

/// `IReport`, serialized with the reference's camelCase keys; `id` is the task id (decision 4).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub id: String,
    pub inputs: Map<String, Value>,
    pub outputs: Map<String, Value>,
    pub workflow_status: StatusData,
    pub reports: IndexMap<String, NodeReport>,
    pub messages: Messages,
}

impl Report {
    /// A pending report for a task that has not started.
    pub fn new(task_id: &str, inputs: Map<String, Value>, at_ms: i64) -> Report {
        Report {
            id: task_id.to_owned(),
            inputs,
            outputs: Map::new(),
            workflow_status: StatusData::pending(at_ms),
            reports: IndexMap::new(),
            messages: Messages::default(),
        }
    }

    /// The report of a task rejected before running (decision 5): failed, with
    /// `startTime = endTime = at_ms` and each error in `messages.error`.
    pub fn validation_failed(
        task_id: &str,
        inputs: Map<String, Value>,
        errors: &[String],
        at_ms: i64,
    ) -> Report {
        let mut report = Report::new(task_id, inputs, at_ms);
        report.workflow_status = StatusData {
            status: WorkflowStatus::Failed,
            terminated: true,
            start_time: at_ms,
            end_time: Some(at_ms),
            time_cost: 0,
        };
        report.messages.error = errors
            .iter()
            .map(|message| Message {
                id: new_id(),
                kind: MessageType::Error,
                message: message.clone(),
                node_id: None,
                timestamp: at_ms,
            })
            .collect();
        report
    }
}

/// Where a node's current snapshot lives: (index in `reports`, index in its `snapshots`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SnapshotSlot {
    node: usize,
    snapshot: usize,
}

struct ReportState {
    report: Report,
    /// Snapshot creation order across nodes, which `IReport` itself does not keep.
    order: Vec<SnapshotSlot>,
    /// Node starts and ends in the order they happened: the run's event log (see
    /// [`crate::workflow::events`]), stored beside the report with the same writes.
    events: Vec<EventRef>,
    /// The text of each `node_delta` entry of `events` (a listened llm node's tokens), which
    /// [`EventRef`]s of kind [`EventRef::DELTA`] index. Empty for a run nobody listened to.
    deltas: Vec<String>,
}

/// One entry of a run's event log: `[kind, nodeID, index]`. For [`EventRef::STARTED`] and
/// [`EventRef::FINISHED`] the index is the node's snapshot: the payload (inputs, outputs,
/// error) is not copied, it is read from the report's snapshot when the event is sent. For
/// [`EventRef::DELTA`] (an llm node's tokens, recorded only while someone listens) it indexes
/// the log's `deltas` texts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct EventRef(pub u8, pub String, pub usize);

impl EventRef {
    pub const STARTED: u8 = 0;
    pub const FINISHED: u8 = 1;
    pub const DELTA: u8 = 2;
}

/// The event log's length past which tokens are no longer recorded: an attempt's event ids
/// span a million positions (`events::ATTEMPT_SPAN`), and the events that end the run must
/// still fit after its tokens.
pub(crate) const TOKEN_LOG_LIMIT: usize = 900_000;

/// Where this run's live events go, and the attempt their ids belong to.
pub(crate) struct Live {
    pub(crate) sink: Arc<dyn LiveSink>,
    pub(crate) attempt: i32,
}

struct Inner {
    state: Mutex<ReportState>,
    version: AtomicU64,
    /// Bumps on every recorded token instead of `version`: tokens alone are stored less often
    /// (see [`ReportHandle::tokens_version`]).
    tokens: AtomicU64,
    notify: Notify,
    live: OnceLock<Live>,
}

/// Shared, cheaply cloneable access to one run's report.
#[derive(Clone)]
pub struct ReportHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ReportHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportHandle")
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

impl ReportHandle {
    pub fn new(task_id: &str, inputs: Map<String, Value>) -> Self {
        ReportHandle::from_report(Report::new(task_id, inputs, now_ms()))
    }

    pub fn from_report(report: Report) -> Self {
        ReportHandle {
            inner: Arc::new(Inner {
                state: Mutex::new(ReportState {
                    report,
                    order: Vec::new(),
                    events: Vec::new(),
                    deltas: Vec::new(),
                }),
                version: AtomicU64::new(0),
                tokens: AtomicU64::new(0),
                notify: Notify::new(),
                live: OnceLock::new(),
            }),
        }
    }

    /// A copy of the current report, with running time costs brought up to now.
    pub fn snapshot(&self) -> Report {
        let mut report = self.lock().report.clone();
        let now = now_ms();
        report.workflow_status.refresh_time_cost(now);
        for node in report.reports.values_mut() {
            node.status.refresh_time_cost(now);
        }
        report
    }

    /// The report as JSON text, as [`ReportHandle::snapshot`] would serialize, without copying
    /// it first: the worker stores this text, several times per run.
    pub fn to_json(&self) -> serde_json::Result<Box<serde_json::value::RawValue>> {
        let mut state = self.lock();
        let now = now_ms();
        // Running nodes' time costs are "so far"; bringing them up to now changes no status.
        state.report.workflow_status.refresh_time_cost(now);
        for node in state.report.reports.values_mut() {
            node.status.refresh_time_cost(now);
        }
        serde_json::value::to_raw_value(&state.report)
    }

    /// The report and the event log of this attempt, taken under one lock so that every
    /// event in the log has its snapshot in the report.
    pub fn to_json_with_events(
        &self,
        attempt: i32,
    ) -> serde_json::Result<(
        Box<serde_json::value::RawValue>,
        Box<serde_json::value::RawValue>,
    )> {
        let mut state = self.lock();
        let now = now_ms();
        state.report.workflow_status.refresh_time_cost(now);
        for node in state.report.reports.values_mut() {
            node.status.refresh_time_cost(now);
        }
        let report = serde_json::value::to_raw_value(&state.report)?;
        // A run nobody listened to stores exactly what it always did.
        let events = if state.deltas.is_empty() {
            serde_json::value::to_raw_value(&serde_json::json!({
                "attempt": attempt,
                "log": state.events,
            }))?
        } else {
            serde_json::value::to_raw_value(&serde_json::json!({
                "attempt": attempt,
                "log": state.events,
                "deltas": state.deltas,
            }))?
        };
        Ok((report, events))
    }

    /// Attaches where this run's live events go (`attempt` numbers their ids). Once per run;
    /// a second call is ignored.
    pub fn set_live(&self, sink: Arc<dyn LiveSink>, attempt: i32) {
        let _ = self.inner.live.set(Live { sink, attempt });
    }

    pub(crate) fn live(&self) -> Option<&Live> {
        self.inner.live.get()
    }

    /// Bumps on every token recorded ([`ReportHandle::node_delta`]). Tokens reach streams
    /// live, so the worker stores a change of tokens alone less often than other changes.
    pub fn tokens_version(&self) -> u64 {
        self.inner.tokens.load(Ordering::Acquire)
    }

    /// Records one `node_delta` of the node in `slot` in the event log; answers its index in
    /// the log, or `None` once the log holds [`TOKEN_LOG_LIMIT`] entries (the node's output
    /// still has every token). Bumps [`ReportHandle::tokens_version`], not the version.
    pub(crate) fn node_delta(&self, slot: SnapshotSlot, delta: &str) -> Option<usize> {
        let index = {
            let mut state = self.lock();
            if state.events.len() >= TOKEN_LOG_LIMIT {
                return None;
            }
            let node_id = state
                .report
                .reports
                .get_index(slot.node)
                .map(|(id, _)| id.clone())
                .unwrap_or_default();
            state.deltas.push(delta.to_owned());
            let entry = EventRef(EventRef::DELTA, node_id, state.deltas.len() - 1);
            state.events.push(entry);
            state.events.len() - 1
        };
        self.inner.tokens.fetch_add(1, Ordering::AcqRel);
        Some(index)
    }

    /// All snapshots in the order they were created, across nodes (what the reference's
    /// `snapshotCenter.exportAll()` returns).
    pub fn snapshots_in_order(&self) -> Vec<Snapshot> {
        let state = self.lock();
        state
            .order
            .iter()
            .filter_map(|slot| {
                let (_, node) = state.report.reports.get_index(slot.node)?;
                node.snapshots.get(slot.snapshot).cloned()
            })
            .collect()
    }

    /// Resolves after the next change to the report.
    pub async fn changed(&self) {
        self.inner.notify.notified().await;
    }

    /// Bumps on every change.
    pub fn version(&self) -> u64 {
        self.inner.version.load(Ordering::Acquire)
    }

    /// The task id the report was created for.
    pub fn task_id(&self) -> String {
        self.lock().report.id.clone()
    }

    pub fn status(&self) -> WorkflowStatus {
        self.lock().report.workflow_status.status
    }

    fn lock(&self) -> MutexGuard<'_, ReportState> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Apply one change and tell listeners.
    fn update<R>(&self, f: impl FnOnce(&mut ReportState) -> R) -> R {
        let result = {
            let mut state = self.lock();
            f(&mut state)
        };
        self.inner.version.fetch_add(1, Ordering::AcqRel);
        self.inner.notify.notify_waiters();
        result
    }

    pub(crate) fn replace(&self, report: Report) {
        self.update(|state| {
            state.report = report;
            state.order.clear();
            state.events.clear();
            state.deltas.clear();
        });
    }

    pub(crate) fn workflow_processing(&self) {
        let now = now_ms();
        self.update(|state| state.report.workflow_status.process(now));
    }

    pub(crate) fn workflow_finish(&self, status: WorkflowStatus) {
        let now = now_ms();
        self.update(|state| state.report.workflow_status.finish(status, now));
    }

    pub(crate) fn set_outputs(&self, outputs: Map<String, Value>) {
        self.update(|state| state.report.outputs = outputs);
    }

    /// A node starts: status `processing` and a fresh snapshot `{nodeID, inputs, data}`.
    pub(crate) fn node_started(
        &self,
        node_id: &str,
        data: Map<String, Value>,
        inputs: Map<String, Value>,
    ) -> SnapshotSlot {
        let now = now_ms();
        let snapshot = Snapshot {
            id: new_id(),
            node_id: node_id.to_owned(),
            inputs,
            outputs: None,
            data,
            branch: None,
            error: None,
        };
        self.update(|state| {
            let reports = &mut state.report.reports;
            let node = match reports.get_index_of(node_id) {
                Some(index) => index,
                None => {
                    reports.insert(
                        node_id.to_owned(),
                        NodeReport {
                            id: node_id.to_owned(),
                            status: StatusData::pending(now),
                            snapshots: Vec::new(),
                        },
                    );
                    reports.len() - 1
                }
            };
            let Some((_, report)) = reports.get_index_mut(node) else {
                return SnapshotSlot {
                    node,
                    snapshot: usize::MAX,
                };
            };
            report.status.process(now);
            report.snapshots.push(snapshot);
            let slot = SnapshotSlot {
                node,
                snapshot: report.snapshots.len() - 1,
            };
            state.order.push(slot);
            state.events.push(EventRef(
                EventRef::STARTED,
                node_id.to_owned(),
                slot.snapshot,
            ));
            slot
        })
    }

    fn with_slot(&self, slot: SnapshotSlot, f: impl FnOnce(&mut NodeReport, i64)) {
        let now = now_ms();
        self.update(|state| {
            if let Some((_, node)) = state.report.reports.get_index_mut(slot.node) {
                f(node, now);
            }
        });
    }

    pub(crate) fn snapshot_inputs(&self, slot: SnapshotSlot, inputs: Map<String, Value>) {
        self.with_slot(slot, |node, _| {
            if let Some(snapshot) = node.snapshots.get_mut(slot.snapshot) {
                snapshot.inputs = inputs;
            }
        });
    }

    pub(crate) fn node_succeeded(
        &self,
        slot: SnapshotSlot,
        outputs: Map<String, Value>,
        branch: Option<String>,
    ) {
        let now = now_ms();
        self.update(|state| {
            let Some((node_id, node)) = state.report.reports.get_index_mut(slot.node) else {
                return;
            };
            if let Some(snapshot) = node.snapshots.get_mut(slot.snapshot) {
                snapshot.outputs = Some(outputs);
                snapshot.branch = branch;
            }
            node.status.finish(WorkflowStatus::Succeeded, now);
            let finished = EventRef(EventRef::FINISHED, node_id.clone(), slot.snapshot);
            state.events.push(finished);
        });
    }

    /// Record a node failure in the three places the reference does: the snapshot's `error`,
    /// `messages.error` and the node status.
    pub(crate) fn node_failed(&self, slot: SnapshotSlot, message: &str) {
        let now = now_ms();
        self.update(|state| {
            let Some((node_id, node)) = state.report.reports.get_index_mut(slot.node) else {
                return;
            };
            if let Some(snapshot) = node.snapshots.get_mut(slot.snapshot) {
                snapshot.error = Some(message.to_owned());
            }
            node.status.finish(WorkflowStatus::Failed, now);
            let node_id = node_id.clone();
            state
                .events
                .push(EventRef(EventRef::FINISHED, node_id.clone(), slot.snapshot));
            state.report.messages.error.push(Message {
                id: new_id(),
                kind: MessageType::Error,
                message: message.to_owned(),
                node_id: Some(node_id),
                timestamp: now,
            });
        });
    }

    /// A workflow-level error message (no node).
    pub(crate) fn error_message(&self, message: &str) {
        let now = now_ms();
        self.update(|state| {
            state.report.messages.error.push(Message {
                id: new_id(),
                kind: MessageType::Error,
                message: message.to_owned(),
                node_id: None,
                timestamp: now,
            });
        });
    }

    /// Every node still `processing` becomes `canceled`: its work was dropped.
    pub(crate) fn cancel_processing_nodes(&self) {
        let now = now_ms();
        self.update(|state| {
            for node in state.report.reports.values_mut() {
                if node.status.status == WorkflowStatus::Processing {
                    node.status.finish(WorkflowStatus::Canceled, now);
                }
            }
        });
    }
}

pub use crate::clock::now_ms;

/// A random (v4) UUID without a system call per id.
pub(crate) fn new_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_validation_failure_report_serializes_like_ireport() {
        let report = Report::validation_failed(
            "task-1",
            Map::new(),
            &["JSON Schema validation failed: x".to_string()],
            1000,
        );
        let value = serde_json::to_value(&report).unwrap();
        assert_eq!(value["id"], "task-1");
        assert_eq!(
            value["workflowStatus"],
            json!({"status": "failed", "terminated": true, "startTime": 1000, "endTime": 1000, "timeCost": 0})
        );
        assert_eq!(
            value["messages"]["error"][0]["message"],
            "JSON Schema validation failed: x"
        );
        assert_eq!(value["messages"]["error"][0]["type"], "error");
        for key in ["log", "info", "debug", "error", "warning"] {
            assert!(value["messages"].get(key).is_some(), "messages.{key}");
        }
        let back: Report = serde_json::from_value(value).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn node_reports_flatten_their_status_and_keep_snapshot_keys() {
        let handle = ReportHandle::new("t", Map::new());
        let slot = handle.node_started("llm_0", Map::new(), Map::new());
        handle.node_failed(slot, "boom");
        let value = serde_json::to_value(handle.snapshot()).unwrap();
        let node = &value["reports"]["llm_0"];
        assert_eq!(node["status"], "failed");
        assert_eq!(node["terminated"], true);
        assert_eq!(node["snapshots"][0]["nodeID"], "llm_0");
        assert_eq!(node["snapshots"][0]["inputs"], json!({}));
        assert_eq!(node["snapshots"][0]["error"], "boom");
        assert_eq!(value["messages"]["error"][0]["nodeID"], "llm_0");
        assert_eq!(
            serde_json::to_value(WorkflowStatus::Canceled).unwrap(),
            "canceled"
        );
    }

    #[tokio::test]
    async fn changes_bump_the_version_and_wake_listeners() {
        let handle = ReportHandle::new("t", Map::new());
        let before = handle.version();
        let waiter = {
            let handle = handle.clone();
            tokio::spawn(async move { handle.changed().await })
        };
        tokio::task::yield_now().await;
        // The listener may not be registered yet on a busy runtime; keep changing until it wakes.
        for _ in 0..100 {
            handle.workflow_processing();
            if waiter.is_finished() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        waiter.await.unwrap();
        assert!(handle.version() > before);
    }

    #[test]
    fn terminal_statuses_do_not_change_again() {
        let handle = ReportHandle::new("t", Map::new());
        handle.workflow_processing();
        handle.workflow_finish(WorkflowStatus::Succeeded);
        handle.workflow_finish(WorkflowStatus::Failed);
        assert_eq!(handle.status(), WorkflowStatus::Succeeded);
    }
}
