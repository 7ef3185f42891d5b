//! Answers one debug-chat message: prompt assembly, streaming from the provider, storing the
//! answer and signalling completion.

use apalis::prelude::*;
use shared::queue::DebugChat;

use crate::state::WorkerState;

#[tracing::instrument(skip_all, fields(message_id = %job.message_id))]
pub async fn debug_chat(job: DebugChat, state: Data<WorkerState>) -> Result<(), BoxDynError> {
    let _ = (&job, &state);
    tracing::debug!("chat job picked up");
    Ok(())
}
