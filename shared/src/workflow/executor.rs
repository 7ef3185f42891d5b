//! The contract between the engine and the node executors: [`NodeExecutor`], the
//! [`NodeContext`] it is given and the [`NodeOutput`] it returns.
//!
//! Executors reach the running workflow only through [`RunServices`], which the engine
//! implements, so neither this module nor any node type depends on the engine.

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::engine_config::EngineConfig;
use super::events::event_id;
use super::live::LiveSink;
use super::node_error::NodeError;
use super::report::{ReportHandle, SnapshotSlot};
use super::schema::{Document, Node};
use super::scope::Scope;
use crate::llm::LlmClient;

/// What a node produced: its outputs and, for branching nodes, the chosen output port.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeOutput {
    pub outputs: Map<String, Value>,
    pub branch: Option<String>,
}

impl NodeOutput {
    pub fn new(outputs: Map<String, Value>) -> Self {
        NodeOutput {
            outputs,
            branch: None,
        }
    }

    pub fn empty() -> Self {
        NodeOutput::default()
    }

    pub fn with_branch(mut self, branch: impl Into<String>) -> Self {
        self.branch = Some(branch.into());
        self
    }
}

/// Runs one node type.
#[async_trait]
pub trait NodeExecutor: Send + Sync {
    async fn execute(&self, ctx: NodeContext<'_>) -> Result<NodeOutput, NodeError>;
}

/// A handle on a node of the running document (for executors that run sub-graphs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeHandle(pub(crate) usize);

/// Why a sub-graph run stopped early. Its details are already in the report.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("block execution failed")]
pub struct BlockFailed;

/// What one run lends its executors: its document, inputs, report and the engine's services,
/// and a way back into the engine to run a sub-graph. The engine's per-run state implements
/// it; a trait rather than that state itself so that executors do not depend on the engine
/// that calls them.
pub(crate) trait RunServices: Sync {
    fn document(&self) -> &Document;
    fn task_inputs(&self) -> &Map<String, Value>;
    fn report(&self) -> &ReportHandle;
    fn config(&self) -> &EngineConfig;
    fn http_client(&self) -> &reqwest::Client;
    fn llm_client(&self) -> &LlmClient;
    fn cancel_token(&self) -> &CancellationToken;
    fn set_workflow_outputs(&self, outputs: Map<String, Value>);
    /// Run one layer from the node at `entry` in `scope` until every branch has ended.
    fn run_block<'s>(
        &'s self,
        scope: &'s Scope<'s>,
        entry: usize,
    ) -> Pin<Box<dyn Future<Output = Result<(), BlockFailed>> + Send + 's>>;
}

/// A listened node's `node_delta` events: each is recorded in the run's event log (stored
/// with the next progress write), then sent live under the same id.
pub struct TokenStream<'a> {
    report: &'a ReportHandle,
    slot: SnapshotSlot,
    node_id: &'a str,
    sink: &'a dyn LiveSink,
    attempt: i32,
}

impl TokenStream<'_> {
    /// One piece of the node's text; empty pieces are not events, and neither are pieces
    /// past the log's limit (an answer of near a million tokens ends in `node_finished`).
    pub async fn push(&self, delta: &str) {
        if delta.is_empty() {
            return;
        }
        let Some(index) = self.report.node_delta(self.slot, delta) else {
            return;
        };
        let id = event_id(self.attempt, index);
        self.sink.send(id, self.node_id, delta).await;
    }
}

/// Everything an executor may use: its node, parsed inputs, variables and the engine's services.
pub struct NodeContext<'a> {
    pub(crate) run: &'a dyn RunServices,
    pub(crate) scope: &'a Scope<'a>,
    pub(crate) node: &'a Node,
    pub(crate) inputs: Map<String, Value>,
    pub(crate) slot: SnapshotSlot,
}

impl<'a> NodeContext<'a> {
    pub fn node_id(&self) -> &str {
        &self.node.id
    }

    pub fn node_type(&self) -> &str {
        &self.node.ty
    }

    /// The node's `data` without `title`, `inputsValues`, `inputs` and `outputs`.
    pub fn data(&self) -> &'a Map<String, Value> {
        &self.node.data
    }

    /// Inputs parsed from `inputsValues` against the declared `inputs` (spec 3).
    pub fn inputs(&self) -> &Map<String, Value> {
        &self.inputs
    }

    /// The raw task inputs (what the start node outputs).
    pub fn task_inputs(&self) -> &Map<String, Value> {
        self.run.task_inputs()
    }

    pub fn config(&self) -> &'a EngineConfig {
        self.run.config()
    }

    /// The HTTP client the http node must use: it enforces the egress policy.
    pub fn http_client(&self) -> &'a reqwest::Client {
        self.run.http_client()
    }

    pub fn llm_client(&self) -> &'a LlmClient {
        self.run.llm_client()
    }

    /// Cancelled when the run is canceled.
    pub fn cancel_token(&self) -> &'a CancellationToken {
        self.run.cancel_token()
    }

    /// Variables visible to this node.
    pub fn scope(&self) -> &'a Scope<'a> {
        self.scope
    }

    /// Where this node's tokens go, when someone listens to the run now (asked once, when
    /// the node starts): `None` for a run nobody watches, which must not stream.
    pub fn token_stream(&self) -> Option<TokenStream<'a>> {
        let report = self.run.report();
        let live = report.live()?;
        live.sink.listened().then(|| TokenStream {
            report,
            slot: self.slot,
            node_id: &self.node.id,
            sink: live.sink.as_ref(),
            attempt: live.attempt,
        })
    }

    /// Replace the snapshot's `inputs` (the http node reports its prepared request instead).
    pub fn set_snapshot_inputs(&self, inputs: Map<String, Value>) {
        self.run.report().snapshot_inputs(self.slot, inputs);
    }

    /// Set the workflow result (the end node's `ioCenter.setOutputs`).
    pub fn set_workflow_outputs(&self, outputs: Map<String, Value>) {
        self.run.set_workflow_outputs(outputs);
    }

    /// The first child node (in `blocks`) of the given type.
    pub fn child_of_type(&self, node_type: &str) -> Option<NodeHandle> {
        let nodes = &self.run.document().nodes;
        self.node
            .children
            .iter()
            .copied()
            .find(|&i| nodes[i].ty == node_type)
            .map(NodeHandle)
    }

    /// Run a sub-graph from `entry` in `scope` until every branch ends, like the reference's
    /// `engine.executeNode({context: sub, node: blockStart})`.
    pub fn run_block<'s>(
        &'s self,
        scope: &'s Scope<'s>,
        entry: NodeHandle,
    ) -> Pin<Box<dyn Future<Output = Result<(), BlockFailed>> + Send + 's>>
    where
        'a: 's,
    {
        self.run.run_block(scope, entry.0)
    }
}
