//! The built-in node executors (spec 2 and decision 7), one file per node type.

use std::sync::Arc;

use super::registry::NodeRegistry;

mod block_end;
mod block_start;
mod break_node;
mod code;
mod condition;
mod continue_node;
mod end;
mod http;
mod llm;
mod loop_node;
mod start;
mod variable;

pub use block_end::BlockEndExecutor;
pub use block_start::BlockStartExecutor;
pub use break_node::BreakExecutor;
pub use code::CodeExecutor;
pub use condition::ConditionExecutor;
pub use continue_node::ContinueExecutor;
pub use end::EndExecutor;
pub use http::HttpExecutor;
pub use llm::LlmExecutor;
pub use loop_node::LoopExecutor;
pub use start::StartExecutor;
pub use variable::VariableExecutor;

pub(crate) fn default_registry() -> NodeRegistry {
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
