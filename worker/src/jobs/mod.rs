//! One module per job type: a plain `async fn` handler named for the act.

pub mod answer_message;
pub mod run_deltas;
pub mod run_workflow;

use shared::{
    signals::SignalError,
    store::{StoreError, now_ms},
};

/// Why a job failed: apalis then delivers it again (up to the attempt limit). Only faults of
/// the store or the signal bus get here; a run or a chat that fails on its own terms is
/// stored as failed and its job succeeds.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Signal(#[from] SignalError),
    #[error("encoding a report: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Records how long a job's row waited between its creation (`created_ms`, Unix ms) and the
/// claim of its first attempt, under its queue's name.
fn record_pickup(queue: &'static str, created_ms: i64) {
    let waited = (now_ms() - created_ms).max(0) as f64 / 1000.0;
    metrics::histogram!(shared::metrics::RUN_PICKUP, "queue" => queue).record(waited);
}
