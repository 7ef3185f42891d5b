//! Node executors and the registry that maps node types to them.
//!
//! Adding a node type is one file implementing [`NodeExecutor`] plus one `register` line.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::engine::{self, RunCtx};
use super::engine_config::EngineConfig;
use super::node_error::NodeError;
use super::report::SnapshotSlot;
use super::schema::Node;
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

/// Node executors keyed by node type.
#[derive(Clone, Default)]
pub struct NodeRegistry {
    executors: HashMap<String, Arc<dyn NodeExecutor>>,
}

impl std::fmt::Debug for NodeRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut types: Vec<&str> = self.executors.keys().map(String::as_str).collect();
        types.sort_unstable();
        f.debug_struct("NodeRegistry")
            .field("types", &types)
            .finish()
    }
}

impl NodeRegistry {
    /// A registry with no executors.
    pub fn empty() -> Self {
        NodeRegistry::default()
    }

    /// Every node type this engine runs (spec 2 and decision 7); `comment` and `group` have no
    /// executor because they are never executed.
    pub fn default_nodes() -> Self {
        super::nodes::default_registry()
    }

    /// Add or replace the executor of a node type.
    pub fn register(
        &mut self,
        node_type: impl Into<String>,
        executor: Arc<dyn NodeExecutor>,
    ) -> &mut Self {
        self.executors.insert(node_type.into(), executor);
        self
    }

    /// Builder form of [`register`](Self::register).
    pub fn with(mut self, node_type: impl Into<String>, executor: Arc<dyn NodeExecutor>) -> Self {
        self.register(node_type, executor);
        self
    }

    pub fn get(&self, node_type: &str) -> Option<&Arc<dyn NodeExecutor>> {
        self.executors.get(node_type)
    }

    pub fn types(&self) -> impl Iterator<Item = &str> {
        self.executors.keys().map(String::as_str)
    }
}

/// A handle on a node of the running document (for executors that run sub-graphs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeHandle(pub(crate) usize);

/// Why a sub-graph run stopped early. Its details are already in the report.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("block execution failed")]
pub struct BlockFailed;

/// Everything an executor may use: its node, parsed inputs, variables and the engine's services.
pub struct NodeContext<'a> {
    pub(crate) run: &'a RunCtx<'a>,
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
        &self.run.task_inputs
    }

    pub fn config(&self) -> &'a EngineConfig {
        &self.run.engine.config
    }

    /// The HTTP client the http node must use: it enforces the egress policy.
    pub fn http_client(&self) -> &'a reqwest::Client {
        &self.run.engine.egress_client
    }

    pub fn llm_client(&self) -> &'a LlmClient {
        &self.run.engine.llm
    }

    /// Cancelled when the run is canceled.
    pub fn cancel_token(&self) -> &'a CancellationToken {
        &self.run.cancel
    }

    /// Variables visible to this node.
    pub fn scope(&self) -> &'a Scope<'a> {
        self.scope
    }

    /// Replace the snapshot's `inputs` (the http node reports its prepared request instead).
    pub fn set_snapshot_inputs(&self, inputs: Map<String, Value>) {
        self.run.report.snapshot_inputs(self.slot, inputs);
    }

    /// Set the workflow result (the end node's `ioCenter.setOutputs`).
    pub fn set_workflow_outputs(&self, outputs: Map<String, Value>) {
        self.run.set_outputs(outputs);
    }

    /// The first child node (in `blocks`) of the given type.
    pub fn child_of_type(&self, node_type: &str) -> Option<NodeHandle> {
        self.node
            .children
            .iter()
            .copied()
            .find(|&i| self.run.doc.nodes[i].ty == node_type)
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
        let run: &'s RunCtx<'s> = self.run;
        Box::pin(async move {
            engine::run_scope(run, scope, entry.0)
                .await
                .map_err(|_| BlockFailed)
        })
    }
}
