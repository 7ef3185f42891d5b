//! The registry that maps node types to their executors.
//!
//! Adding a node type is one file in `nodes/` implementing [`NodeExecutor`] plus one line in
//! [`NodeRegistry::default_nodes`]. The registry depends on the node types, never the reverse:
//! executors see only the contract in `executor`.

use std::collections::HashMap;
use std::sync::Arc;

use super::executor::NodeExecutor;
use super::nodes::{
    BlockEndExecutor, BlockStartExecutor, BreakExecutor, CodeExecutor, ConditionExecutor,
    ContinueExecutor, EndExecutor, HttpExecutor, LlmExecutor, LoopExecutor, StartExecutor,
    VariableExecutor,
};

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
        NodeRegistry::empty()
            .with("start", Arc::new(StartExecutor))
            .with("end", Arc::new(EndExecutor))
            .with("condition", Arc::new(ConditionExecutor))
            .with("loop", Arc::new(LoopExecutor))
            .with("block-start", Arc::new(BlockStartExecutor))
            .with("block-end", Arc::new(BlockEndExecutor))
            .with("break", Arc::new(BreakExecutor))
            .with("continue", Arc::new(ContinueExecutor))
            .with("llm", Arc::new(LlmExecutor))
            .with("http", Arc::new(HttpExecutor))
            .with("code", Arc::new(CodeExecutor))
            .with("variable", Arc::new(VariableExecutor))
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
