//! Interrupting work that may be queued or running, one state machine for a task's cancel
//! and a chat answer's stop: work still queued is ended in the store on the spot (no worker
//! will run it); running work gets a flag its worker reads (and a signal from the caller);
//! finished work is left as it is.

use std::future::Future;

use super::StoreError;

/// What an interrupt request found.
#[derive(Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// No such row.
    Unknown,
    /// Still queued: ended on the spot; it will never run.
    EndedWhileQueued,
    /// Running: the flag is set; the worker holding it must be signalled.
    Requested,
    /// Already final: nothing changes.
    AlreadyFinished,
}

/// Runs the steps in order, each only when the one before did not apply: end the work if it
/// is queued, else flag it if it is running, else tell a finished row from a missing one.
/// (Each step is one statement, atomic on its own; a row that moves between two steps is
/// caught by the next.)
pub(super) async fn interrupt(
    end_if_queued: impl Future<Output = Result<bool, StoreError>>,
    flag_if_running: impl Future<Output = Result<bool, StoreError>>,
    exists: impl Future<Output = Result<bool, StoreError>>,
) -> Result<Interrupt, StoreError> {
    if end_if_queued.await? {
        return Ok(Interrupt::EndedWhileQueued);
    }
    if flag_if_running.await? {
        return Ok(Interrupt::Requested);
    }
    Ok(if exists.await? {
        Interrupt::AlreadyFinished
    } else {
        Interrupt::Unknown
    })
}
