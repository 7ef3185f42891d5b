//! Execution (spec 4): joins, branches, skipping, failure recording, cancellation and limits.
//!
//! A layer runs as a set of node futures polled together on the caller's task: when one finishes,
//! its successors whose predecessors have all executed are started. Parallel branches therefore
//! run concurrently without spawning, and dropping the run drops every in-flight request.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::egress;
use super::engine_config::EngineConfig;
use super::executor::{BlockFailed, NodeContext, NodeExecutor, NodeOutput, RunServices};
use super::input_validation;
use super::limits;
use super::node_error::NodeError;
use super::registry::NodeRegistry;
use super::report::{Report, ReportHandle, SnapshotSlot, WorkflowStatus, now_ms};
use super::schema::{Document, Node, PlannedValue, WorkflowSchema};
use super::scope::{self, Scope, Variable};
use crate::llm::LlmClient;

/// Start-input validation (spec 3) against the start node's output schema. `Err` holds messages
/// already prefixed `JSON Schema validation failed: `.
pub fn validate_inputs(
    schema: &WorkflowSchema,
    inputs: &Map<String, Value>,
) -> Result<(), Vec<String>> {
    let Some(declared) = schema.start_outputs() else {
        return Ok(());
    };
    input_validation::validate_value(&Value::Object(inputs.clone()), declared)
        .map_err(|message| vec![format!("JSON Schema validation failed: {message}")])
}

/// How a run ended and its result (the end node's inputs on success, `{}` otherwise).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    pub status: WorkflowStatus,
    pub outputs: Map<String, Value>,
}

impl RunOutcome {
    fn without_outputs(status: WorkflowStatus) -> RunOutcome {
        RunOutcome {
            status,
            outputs: Map::new(),
        }
    }
}

/// The workflow engine: a node registry plus shared HTTP clients. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    config: EngineConfig,
    registry: NodeRegistry,
    /// For the http node: resolves through the egress policy.
    egress_client: reqwest::Client,
    /// For the llm node: behind the same egress policy.
    llm: LlmClient,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.inner.config)
            .field("registry", &self.inner.registry)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// An engine with every built-in node type.
    pub fn new(config: EngineConfig) -> Self {
        Engine::with_registry(config, NodeRegistry::default_nodes())
    }

    pub fn with_registry(config: EngineConfig, registry: NodeRegistry) -> Self {
        // The llm node's `apiHost` is the user's choice, like the http node's URL: the same
        // egress policy applies (resolved addresses, IP literals, every redirect).
        let llm = LlmClient::new(egress::http_client(config.http_allow_private))
            .with_egress_check(!config.http_allow_private)
            .with_timeout(config.llm_timeout)
            .with_retry(config.llm_max_attempts, config.llm_retry_backoff);
        Engine {
            inner: Arc::new(EngineInner {
                egress_client: egress::http_client(config.http_allow_private),
                registry,
                llm,
                config,
            }),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Run a workflow to a terminal state, writing progress into `report`. Invalid inputs fail
    /// the run at once (decision 5); cancelling `cancel` stops it at once (decision 6). Never
    /// panics on user input.
    pub async fn run(
        &self,
        schema: Arc<WorkflowSchema>,
        inputs: Map<String, Value>,
        cancel: CancellationToken,
        report: ReportHandle,
    ) -> RunOutcome {
        if let Err(errors) = validate_inputs(&schema, &inputs) {
            report.replace(Report::validation_failed(
                &report.task_id(),
                inputs,
                &errors,
                now_ms(),
            ));
            return RunOutcome::without_outputs(WorkflowStatus::Failed);
        }
        let doc = schema.document();
        report.workflow_processing();
        let Some(start) = doc.start else {
            report.error_message("Workflow schema must have a start node");
            report.workflow_finish(WorkflowStatus::Failed);
            return RunOutcome::without_outputs(WorkflowStatus::Failed);
        };

        let report_bytes = limits::json_size_within(&inputs, self.inner.config.max_report_bytes);
        let rc = RunCtx {
            engine: &self.inner,
            doc,
            report: &report,
            task_inputs: inputs,
            cancel: cancel.clone(),
            nodes_started: AtomicU64::new(0),
            report_bytes: AtomicUsize::new(report_bytes),
            outputs: Mutex::new(Map::new()),
        };
        let root = Scope::root(doc.nodes.len());
        for (key, variable) in &doc.globals {
            root.set_variable("global", key, variable.clone());
        }

        let max_run_time = self.inner.config.max_run_time;
        let ending = {
            let run = run_scope(&rc, &root, start);
            tokio::select! {
                biased;
                _ = cancel.cancelled() => Ending::Canceled,
                result = tokio::time::timeout(max_run_time, run) => match result {
                    Ok(Ok(())) => Ending::Succeeded,
                    Ok(Err(_)) => Ending::Failed,
                    Err(_) => Ending::TimedOut,
                },
            }
        };
        // Whatever was still running has been dropped with the run future by now.
        match ending {
            Ending::Succeeded => {
                report.workflow_finish(WorkflowStatus::Succeeded);
                RunOutcome {
                    status: WorkflowStatus::Succeeded,
                    outputs: rc.take_outputs(),
                }
            }
            Ending::Failed => {
                report.cancel_processing_nodes();
                report.workflow_finish(WorkflowStatus::Failed);
                RunOutcome::without_outputs(WorkflowStatus::Failed)
            }
            Ending::TimedOut => {
                report.error_message(&format!(
                    "Run exceeded the time limit of {} (max_run_time)",
                    limits::describe_duration(max_run_time)
                ));
                report.cancel_processing_nodes();
                report.workflow_finish(WorkflowStatus::Failed);
                RunOutcome::without_outputs(WorkflowStatus::Failed)
            }
            Ending::Canceled => {
                report.cancel_processing_nodes();
                report.workflow_finish(WorkflowStatus::Canceled);
                report.set_outputs(Map::new());
                RunOutcome::without_outputs(WorkflowStatus::Canceled)
            }
        }
    }
}

enum Ending {
    Succeeded,
    Failed,
    TimedOut,
    Canceled,
}

/// State shared by every layer of one run.
struct RunCtx<'a> {
    engine: &'a EngineInner,
    doc: &'a Document,
    report: &'a ReportHandle,
    task_inputs: Map<String, Value>,
    cancel: CancellationToken,
    nodes_started: AtomicU64,
    /// What the report holds so far, as JSON bytes: the run's inputs and each node
    /// execution's data, inputs and outputs (the bulk of it).
    report_bytes: AtomicUsize,
    /// The workflow result (`ioCenter.outputs`).
    outputs: Mutex<Map<String, Value>>,
}

impl RunCtx<'_> {
    /// Counts a node execution's data and inputs into the report, or says why they do not fit.
    fn admit_inputs(&self, node: &Node, inputs: &Map<String, Value>) -> Result<(), String> {
        let max = self.engine.config.max_report_bytes;
        let size = node
            .data_bytes
            .saturating_add(limits::json_size_within(inputs, max));
        self.reserve_report(size)
    }

    /// Checks a node's outputs against the node cap and counts them into the report.
    fn admit_outputs(&self, outputs: &Map<String, Value>) -> Result<(), String> {
        let max = self.engine.config.max_node_output_bytes;
        let size = limits::json_size_within(outputs, max);
        if size > max {
            return Err(limits::node_output_too_large(max));
        }
        self.reserve_report(size)
    }

    fn reserve_report(&self, size: usize) -> Result<(), String> {
        let max = self.engine.config.max_report_bytes;
        let before = self.report_bytes.fetch_add(size, Ordering::Relaxed);
        if before.saturating_add(size) > max {
            return Err(limits::report_too_large(max));
        }
        Ok(())
    }

    fn set_outputs(&self, outputs: Map<String, Value>) {
        *self.outputs.lock().unwrap_or_else(|e| e.into_inner()) = outputs.clone();
        self.report.set_outputs(outputs);
    }

    fn take_outputs(&self) -> Map<String, Value> {
        std::mem::take(&mut *self.outputs.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// How executors reach the run (see [`RunServices`]).
impl RunServices for RunCtx<'_> {
    fn document(&self) -> &Document {
        self.doc
    }

    fn task_inputs(&self) -> &Map<String, Value> {
        &self.task_inputs
    }

    fn report(&self) -> &ReportHandle {
        self.report
    }

    fn config(&self) -> &EngineConfig {
        &self.engine.config
    }

    fn http_client(&self) -> &reqwest::Client {
        &self.engine.egress_client
    }

    fn llm_client(&self) -> &LlmClient {
        &self.engine.llm
    }

    fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    fn set_workflow_outputs(&self, outputs: Map<String, Value>) {
        self.set_outputs(outputs);
    }

    fn run_block<'s>(
        &'s self,
        scope: &'s Scope<'s>,
        entry: usize,
    ) -> Pin<Box<dyn Future<Output = Result<(), BlockFailed>> + Send + 's>> {
        let run: &'s RunCtx<'s> = self;
        Box::pin(async move { run_scope(run, scope, entry).await.map_err(|_| BlockFailed) })
    }
}

/// Why a layer stopped. Messages are already in the report, except for `NoNext`, which the
/// reference throws outside the node's error handling and so never reports.
#[derive(Debug)]
enum ScopeError {
    NodeFailed,
    LimitExceeded,
    NoNext,
}

type NodeFuture<'a> =
    Pin<Box<dyn Future<Output = (usize, SnapshotSlot, Result<NodeOutput, NodeError>)> + Send + 'a>>;

/// Run one layer from `entry` until every branch has ended (`executeNode` + `executeNext`).
fn run_scope<'a>(
    rc: &'a RunCtx<'a>,
    scope: &'a Scope<'a>,
    entry: usize,
) -> Pin<Box<dyn Future<Output = Result<(), ScopeError>> + Send + 'a>> {
    Box::pin(async move {
        if !can_execute(rc, scope, entry) {
            return Ok(());
        }
        let mut running: FuturesUnordered<NodeFuture<'a>> = FuturesUnordered::new();
        running.push(launch(rc, scope, entry)?);
        while let Some((index, slot, result)) = running.next().await {
            for next in complete(rc, scope, index, slot, result)? {
                if can_execute(rc, scope, next) {
                    running.push(launch(rc, scope, next)?);
                }
            }
        }
        Ok(())
    })
}

/// The join rule: a node waits until all of its predecessors have executed (or were skipped).
fn can_execute(rc: &RunCtx<'_>, scope: &Scope<'_>, index: usize) -> bool {
    rc.doc.nodes[index]
        .prev
        .iter()
        .all(|&p| scope.is_executed(p))
}

/// Start a node: count it, open its snapshot, parse its inputs and call its executor.
fn launch<'a>(
    rc: &'a RunCtx<'a>,
    scope: &'a Scope<'a>,
    index: usize,
) -> Result<NodeFuture<'a>, ScopeError> {
    let node = &rc.doc.nodes[index];
    let max_nodes = rc.engine.config.max_nodes_per_run;
    if rc.nodes_started.fetch_add(1, Ordering::Relaxed) >= max_nodes {
        rc.report.error_message(&format!(
            "Run exceeded the limit of {max_nodes} node executions (max_nodes_per_run)"
        ));
        return Err(ScopeError::LimitExceeded);
    }
    let inputs = node_inputs(scope, node);
    // Inputs that would take the report over its cap are not copied into it.
    let admitted = match &inputs {
        Ok(inputs) => rc.admit_inputs(node, inputs),
        Err(_) => Ok(()),
    };
    let slot = rc.report.node_started(
        &node.id,
        node.data.clone(),
        match (&inputs, &admitted) {
            (Ok(inputs), Ok(())) => inputs.clone(),
            _ => Map::new(),
        },
    );
    if let Err(message) = admitted {
        rc.report.node_failed(slot, &message);
        return Err(ScopeError::NodeFailed);
    }
    let inputs = match inputs {
        Ok(inputs) => inputs,
        Err(error) => {
            rc.report.node_failed(slot, error.message());
            return Err(ScopeError::NodeFailed);
        }
    };
    let Some(executor) = rc.engine.registry.get(&node.ty) else {
        rc.report.node_failed(
            slot,
            &format!("No executor found for node type {}", node.ty),
        );
        return Err(ScopeError::NodeFailed);
    };
    let executor: &'a dyn NodeExecutor = executor.as_ref();
    let ctx = NodeContext {
        run: rc,
        scope,
        node,
        inputs,
        slot,
    };
    // Exported as a child of the run's (or the enclosing loop node's) span; disabled at its
    // call site when traces are not exported.
    let span = tracing::info_span!(
        target: crate::telemetry::TRACE_TARGET,
        "node",
        node_id = %node.id,
        node_type = %node.ty,
    );
    Ok(Box::pin(async move {
        let started = std::time::Instant::now();
        let result = executor.execute(ctx).instrument(span).await;
        // The type has an executor, so the label set is the registry's node types.
        let ty = node.ty.clone();
        let status = if result.is_ok() {
            "succeeded"
        } else {
            "failed"
        };
        metrics::counter!(crate::metrics::NODE_EXECUTIONS, "type" => ty.clone(), "status" => status)
            .increment(1);
        metrics::histogram!(crate::metrics::NODE_DURATION, "type" => ty)
            .record(started.elapsed().as_secs_f64());
        (index, slot, result)
    }))
}

/// `getNodeInputs`: the declared inputs, resolved now.
fn node_inputs(scope: &Scope<'_>, node: &Node) -> Result<Map<String, Value>, NodeError> {
    let mut inputs = Map::new();
    for entry in &node.inputs {
        let parsed = match &entry.value {
            PlannedValue::Constant(constant) => constant.clone(),
            PlannedValue::Flow(flow) => scope.parse_flow_value(flow, entry.declared.as_ref())?,
        };
        scope::insert_checked(&mut inputs, &entry.key, parsed, entry.declared.as_ref());
    }
    Ok(inputs)
}

/// Finish a node: record the result, store its variables and pick the next nodes.
fn complete(
    rc: &RunCtx<'_>,
    scope: &Scope<'_>,
    index: usize,
    slot: SnapshotSlot,
    result: Result<NodeOutput, NodeError>,
) -> Result<Vec<usize>, ScopeError> {
    let node = &rc.doc.nodes[index];
    let output = match result {
        Ok(output) => output,
        Err(error) => {
            rc.report.node_failed(slot, error.message());
            return Err(ScopeError::NodeFailed);
        }
    };
    if let Err(message) = rc.admit_outputs(&output.outputs) {
        rc.report.node_failed(slot, &message);
        return Err(ScopeError::NodeFailed);
    }
    let next = match &output.branch {
        None => dedup(&node.next),
        Some(branch) => {
            let Some((_, targets)) = node.out_ports.iter().find(|(port, _)| port == branch) else {
                rc.report
                    .node_failed(slot, &format!("Branch \"{branch}\" not found"));
                return Err(ScopeError::NodeFailed);
            };
            let chosen = dedup(targets);
            skip_other_branches(rc, scope, node, &chosen);
            chosen
        }
    };
    store_outputs(scope, node, &output.outputs);
    scope.mark_executed([index]);
    rc.report
        .node_succeeded(slot, output.outputs, output.branch);
    if node.terminating {
        return Ok(Vec::new());
    }
    if next.is_empty() {
        return Err(ScopeError::NoNext);
    }
    Ok(next)
}

fn dedup(nodes: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(nodes.len());
    for &n in nodes {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// Mark as executed every node reachable only through the branches not taken, so that joins
/// downstream do not wait for them. Skipped nodes get no status and no snapshot.
fn skip_other_branches(rc: &RunCtx<'_>, scope: &Scope<'_>, node: &Node, chosen: &[usize]) {
    let skipped: Vec<usize> = dedup(&node.next)
        .into_iter()
        .filter(|n| !chosen.contains(n))
        .collect();
    if skipped.is_empty() {
        return;
    }
    let kept = reachable(rc.doc, chosen);
    let dropped = reachable(rc.doc, &skipped);
    scope.mark_executed(
        dropped
            .iter()
            .enumerate()
            .filter(|&(i, &d)| d && !kept[i])
            .map(|(i, _)| i),
    );
}

/// The given nodes and all their successors.
fn reachable(doc: &Document, from: &[usize]) -> Vec<bool> {
    let mut seen = vec![false; doc.nodes.len()];
    let mut stack: Vec<usize> = from.to_vec();
    while let Some(n) = stack.pop() {
        if std::mem::replace(&mut seen[n], true) {
            continue;
        }
        stack.extend(doc.nodes[n].next.iter().copied().filter(|&m| !seen[m]));
    }
    seen
}

/// `setNodeOutputs`: each declared output key gets `outputs[k] ?? default` with its declared type.
fn store_outputs(scope: &Scope<'_>, node: &Node, outputs: &Map<String, Value>) {
    let Some(entries) = &node.outputs else { return };
    for entry in entries {
        let value = outputs
            .get(&entry.key)
            .filter(|v| !v.is_null())
            .cloned()
            .or_else(|| entry.default.clone());
        scope.set_variable(
            &node.id,
            &entry.key,
            Variable {
                value,
                ty: entry.ty.clone(),
                items_ty: entry.items_ty.clone(),
            },
        );
    }
}
