//! The built-in node executors (spec 2 and decision 7), one file per node type. Each implements
//! the contract in `executor`; `NodeRegistry::default_nodes` lists them by node type.

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
