//! Storing and queueing a new task, and the longest a request waits for one: what the run,
//! run-node and result routes share.

use std::time::Duration;

use serde_json::Map;
use shared::store::tasks::{NewTask, TaskStatus};
use uuid::Uuid;

use super::{caller::TaskCaller, input::TaskRunInput};
use crate::{error::Bare, state::AppState};

/// Longest a request may wait for a task to finish.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// Stores a new task and, when it is pending, queues it (batched with other submissions).
pub async fn store_and_queue(
    state: &AppState,
    caller: &TaskCaller,
    id: Uuid,
    status: TaskStatus,
    input: TaskRunInput,
    report: Box<serde_json::value::RawValue>,
    at: i64,
) -> Result<(), Bare> {
    let pending = status == TaskStatus::Pending;
    if pending {
        state.recent_tasks.remember(id, caller.account_id());
    }
    state
        .submit
        .submit(NewTask {
            id,
            owner_id: caller.account_id(),
            status,
            outputs: (!pending).then(Map::new),
            schema_json: input.schema,
            inputs: input.inputs,
            report,
            at_ms: at,
            traceparent: shared::telemetry::traceparent(),
        })
        .await
        .inspect_err(|_| state.recent_tasks.forget(id))?;
    metrics::counter!(shared::metrics::RUNS_SUBMITTED, "status" => status.as_str()).increment(1);
    Ok(())
}
