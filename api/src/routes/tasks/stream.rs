//! `GET /api/task/stream` and the streaming form of `POST /api/task/run`: a run's events over
//! Server-Sent Events, resumable with `Last-Event-ID` on any replica.
//!
//! The events are rebuilt from the task row (report + event log, see
//! `shared::workflow::events`), which the worker writes anyway: the stream reads the row when
//! it opens, then every [`POLL_EVERY`] while the run lasts, and at once when the run's
//! `task:<id>:done` signal arrives (subscribed before the first read, so the end is never
//! missed). Because everything comes from the store, a subscriber that arrives late, or
//! reconnects to another replica, gets exactly the events after its `Last-Event-ID`, and a
//! run without subscribers costs nothing more.

use std::{
    collections::{HashMap, VecDeque},
    convert::Infallible,
    time::Duration,
};

use axum::{
    http::HeaderMap,
    response::sse::{Event, KeepAlive, Sse},
};
use futures::{Stream, StreamExt, stream::BoxStream};
use serde_json::Value;
use shared::{
    signals::channel,
    store::{
        now_ms,
        tasks::{self, TaskStatus},
    },
    workflow::{
        Report, WorkflowStatus,
        events::{EventLog, RunEvent, events_after, node_types},
    },
};
use uuid::Uuid;

use super::{
    caller::{TaskCaller, may_see},
    input::task_not_found,
};
use crate::{
    error::{ApiError, Bare},
    state::AppState,
};

/// How often an open stream reads its running task (the worker writes every 100 ms).
pub const POLL_EVERY: Duration = Duration::from_millis(200);
/// The comment sent on an idle stream so proxies keep it open.
pub const PING_EVERY: Duration = Duration::from_secs(15);

/// Whether the request asks for an event stream (`Accept: text/event-stream`).
pub fn wants_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

/// The `Last-Event-ID` a reconnecting client sends; an unreadable one reads as absent.
pub fn last_event_id(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Opens the stream of a task the caller may see; an unknown task (or someone else's, or one
/// whose stream retention has passed) answers 404 before any event.
pub async fn open(
    state: AppState,
    caller: &TaskCaller,
    raw: &str,
    id: Uuid,
    after: Option<u64>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, Bare> {
    // Subscribed before the first read: a run that ends between the two still wakes us.
    let done = state
        .signals
        .subscribe(&channel::task_done(id))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let row = tasks::get_task_events(&state.db, id).await?;
    let retention_ms = (state.config.stream_retention_secs as i64).saturating_mul(1000);
    let row = match row {
        Some(row)
            if may_see(row.owner_id, caller)
                && row
                    .finished_at
                    .is_none_or(|at| now_ms() - at <= retention_ms) =>
        {
            row
        }
        _ => return Err(Bare(task_not_found(raw))),
    };
    // Node types come from the schema, read once: the log and the report do not repeat them.
    let types = tasks::get_task_schema(&state.db, id)
        .await?
        .map(|schema| node_types(&schema))
        .unwrap_or_default();
    let first = read(&id.to_string(), row, after, &types);
    let cursor = Cursor {
        state,
        id,
        types,
        after,
        pending: VecDeque::new(),
        done: Some(done.boxed()),
        ended: false,
    };
    let cursor = cursor.absorb(first);
    let stream = futures::stream::unfold(cursor, Cursor::next).map(|event| {
        Ok(Event::default()
            .id(event.id.to_string())
            .event(event.name)
            .data(event.data.to_string()))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(PING_EVERY).text("ping")))
}

/// The events of one read of the row after `after`, and whether the run has ended.
fn read(
    task_id: &str,
    row: tasks::TaskEvents,
    after: Option<u64>,
    types: &HashMap<String, String>,
) -> (Vec<RunEvent>, bool) {
    let terminal = row.status.is_terminal().then(|| status_of(row.status));
    let report = row
        .report
        .and_then(|r| serde_json::from_value::<Report>(r.0).ok())
        .unwrap_or_else(|| Report::new(task_id, Default::default(), now_ms()));
    let log = row
        .events
        .map(|e| e.0)
        .filter(|e| !e.is_null())
        .and_then(|e: Value| serde_json::from_value::<EventLog>(e).ok())
        .unwrap_or_default();
    (
        events_after(task_id, &report, &log, terminal, after, types),
        terminal.is_some(),
    )
}

fn status_of(status: TaskStatus) -> WorkflowStatus {
    match status {
        TaskStatus::Pending => WorkflowStatus::Pending,
        TaskStatus::Processing => WorkflowStatus::Processing,
        TaskStatus::Succeeded => WorkflowStatus::Succeeded,
        TaskStatus::Failed => WorkflowStatus::Failed,
        TaskStatus::Canceled => WorkflowStatus::Canceled,
    }
}

/// Where one open stream is: the last id sent, and events read but not yet sent.
struct Cursor {
    state: AppState,
    id: Uuid,
    types: HashMap<String, String>,
    after: Option<u64>,
    pending: VecDeque<RunEvent>,
    done: Option<BoxStream<'static, std::sync::Arc<str>>>,
    ended: bool,
}

impl Cursor {
    fn absorb(mut self, (events, ended): (Vec<RunEvent>, bool)) -> Self {
        for event in events {
            // Ids only rise: a read can never send an event twice or out of order.
            if self.after.is_none_or(|a| event.id > a) {
                self.after = Some(event.id);
                self.pending.push_back(event);
            }
        }
        self.ended |= ended;
        self
    }

    async fn next(mut self) -> Option<(RunEvent, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((event, self));
            }
            if self.ended {
                return None;
            }
            match &mut self.done {
                Some(done) => {
                    tokio::select! {
                        message = done.next() => {
                            if message.is_none() {
                                self.done = None;
                            }
                        }
                        _ = tokio::time::sleep(POLL_EVERY) => {}
                    }
                }
                None => tokio::time::sleep(POLL_EVERY).await,
            }
            let row = match tasks::get_task_events(&self.state.db, self.id).await {
                Ok(Some(row)) => row,
                // Deleted under us: nothing more will come.
                Ok(None) => return None,
                Err(error) => {
                    tracing::warn!(%error, task_id = %self.id, "stream read failed; retrying");
                    continue;
                }
            };
            let read = read(&self.id.to_string(), row, self.after, &self.types);
            self = self.absorb(read);
        }
    }
}
