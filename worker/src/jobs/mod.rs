//! One module per job type: a plain `async fn` handler named for the act.

pub mod debug_chat;
pub mod run_workflow;
