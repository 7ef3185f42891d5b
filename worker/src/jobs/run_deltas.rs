//! Carries a listened run's `node_delta` events to its streams: the [`LiveSink`] the worker
//! attaches to every run.
//!
//! Whether anyone listens is a lookup in this process's record of `task:<id>:listen`
//! announcements (every process hears them, before it claims the run): no round trip, so a
//! run nobody watches costs nothing more. Each token is published on `run:<id>:events` with
//! its event id; only api processes with an open stream of this run subscribe to it. A
//! token lost on the bus is not lost to the stream: it is in the run's event log too, which
//! the next progress write stores and the stream reads. After each progress write of a
//! listened run the same channel carries a "stored" note, so that streams read the row when
//! it changed rather than polling it.

use async_trait::async_trait;
use shared::{
    signals::Signals,
    workflow::{events::delta_data, live::LiveSink},
};
use uuid::Uuid;

pub struct RunDeltas {
    pub signals: Signals,
    pub task_id: Uuid,
}

#[async_trait]
impl LiveSink for RunDeltas {
    fn listened(&self) -> bool {
        self.signals.is_listened(self.task_id)
    }

    async fn send(&self, event_id: u64, node_id: &str, delta: &str) {
        let mut data = delta_data(&self.task_id.to_string(), node_id, delta);
        data["id"] = event_id.into();
        if let Err(error) = self
            .signals
            .publish_run_event(self.task_id, &data.to_string())
            .await
        {
            tracing::debug!(%error, "a token was not published (the stream reads it from the store)");
        }
    }
}

/// Tells the run's streams that its progress was just stored (only when someone listens).
pub async fn note_stored(signals: &Signals, task_id: Uuid) {
    if signals.is_listened(task_id)
        && let Err(error) = signals.publish_run_event(task_id, STORED_NOTE).await
    {
        tracing::debug!(%error, "a progress note was not published (streams poll too)");
    }
}

/// The payload of a "progress stored" note.
pub const STORED_NOTE: &str = r#"{"stored":true}"#;
