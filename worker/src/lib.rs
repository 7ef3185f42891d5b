//! `llmops-worker`: job handlers for the `workflow` and `chat` queues, and the runtime that
//! runs them under apalis. The API reuses this library to run workers in-process in the
//! embedded mode.

pub mod jobs;
pub mod maintenance;
pub mod requeue;
pub mod runtime;
pub mod state;
pub mod task_writes;

pub use runtime::run_workers;
pub use state::WorkerState;
