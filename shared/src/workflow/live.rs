//! Live tokens of a run someone is watching: the seam between the engine and whoever carries
//! an llm node's tokens to the run's stream (the worker, over the signal bus).
//!
//! Why a seam and not a channel of the engine: the engine knows nothing of buses or stores
//! (see the crate's `workflow` doc). The worker attaches a [`LiveSink`] to the run's report
//! ([`crate::workflow::ReportHandle::set_live`]); an llm node asks it, when the node starts,
//! whether anyone listens, and only then asks the provider for a stream. Each token is first
//! recorded in the run's event log (so it is stored with the next progress write, resumable
//! and replayable like every other event) and then handed to the sink with its event id.
//! A run nobody listens to records nothing and makes the plain provider call it always made.

use async_trait::async_trait;

/// Where a listened run's `node_delta` events go, as they happen.
#[async_trait]
pub trait LiveSink: Send + Sync {
    /// Whether someone listens to the run now. Asked when an llm node starts: a cheap local
    /// check, never a round trip.
    fn listened(&self) -> bool;

    /// Sends one `node_delta` event (already in the run's event log, under `event_id`).
    /// Best effort: a lost one is still in the log, which the stream reads.
    async fn send(&self, event_id: u64, node_id: &str, delta: &str);
}
