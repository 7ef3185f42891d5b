//! `GET /api/task/stream` and the streaming form of `POST /api/task/run`: a run's events over
//! Server-Sent Events, resumable with `Last-Event-ID` on any replica.
//!
//! The events are rebuilt from the task row (report + event log, see
//! `shared::workflow::events`), which the worker writes anyway: the stream reads the row when
//! it opens, then follows the task's feed (`services::task_feeds`: one reader per task in
//! this process, every 200 ms while the run lasts and at once when it ends). Because
//! everything comes from the store, a subscriber that arrives late, or reconnects to another
//! replica, gets exactly the events after its `Last-Event-ID`, and a run without
//! subscribers costs nothing more.
//!
//! An llm node's tokens (`node_delta`) are in the stored log too, but come sooner over the
//! signal bus: a live token is sent at once when its id follows the last id sent, and held
//! otherwise until the read that brings the events before it (ids are positions in the log,
//! so a gap is plain to see). A token the bus lost is still in the log.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    convert::Infallible,
    sync::Arc,
    time::Duration,
};

use axum::{
    http::HeaderMap,
    response::sse::{Event, KeepAlive, Sse},
};
use futures::{Stream, StreamExt};
use shared::{
    store::{now_ms, tasks},
    workflow::events::{RunEvent, events_after, node_types},
};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use super::{
    caller::{TaskCaller, may_see},
    input::task_not_found,
};
use crate::{
    error::Bare,
    services::task_feeds::{Feed, TaskRead},
    state::AppState,
};

/// The comment sent on an idle stream so proxies keep it open.
pub const PING_EVERY: Duration = Duration::from_secs(15);
/// Live tokens a stream holds while the store catches up with what came before them.
const MAX_HELD: usize = 4096;

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
    let first = Arc::new(TaskRead::parse(Some(row)));
    // A running task is followed through its feed (one reader per task in this process),
    // which subscribes to the run's end and tokens before it takes this first read's place.
    let feed = match first.is_final() {
        true => None,
        false => Some(state.task_feeds.follow(id, first.clone()).await),
    };
    let mut cursor = Cursor {
        task_id: id.to_string(),
        types,
        after,
        pending: VecDeque::new(),
        held: BTreeMap::new(),
        reads: feed.as_ref().map(|f| f.reads.clone()),
        live: feed.as_ref().map(|f| f.live.subscribe()),
        ended: false,
        _feed: feed,
    };
    cursor.absorb(&first);
    let stream = futures::stream::unfold(cursor, Cursor::next).map(|event| {
        Ok(Event::default()
            .id(event.id.to_string())
            .event(event.name)
            .data(event.data.to_string()))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(PING_EVERY).text("ping")))
}

/// Where one open stream is: the last id sent, events read but not yet sent, and live
/// tokens that came before the store had the events preceding them.
struct Cursor {
    task_id: String,
    types: HashMap<String, String>,
    after: Option<u64>,
    pending: VecDeque<RunEvent>,
    held: BTreeMap<u64, Arc<RunEvent>>,
    reads: Option<watch::Receiver<Arc<TaskRead>>>,
    live: Option<broadcast::Receiver<Arc<RunEvent>>>,
    ended: bool,
    /// Keeps the task's feed alive while this stream is open.
    _feed: Option<Arc<Feed>>,
}

impl Cursor {
    /// Takes the events of a read of the row that come after what was sent.
    fn absorb(&mut self, read: &TaskRead) {
        let report = read.report_or_empty(&self.task_id);
        let events = events_after(
            &self.task_id,
            &report,
            &read.log,
            read.terminal,
            self.after,
            &self.types,
        );
        for event in events {
            self.push(event);
        }
        self.release_held();
        self.ended |= read.is_final();
    }

    /// Queues an event to send. Ids only rise: nothing is sent twice or out of order.
    fn push(&mut self, event: RunEvent) {
        if self.after.is_none_or(|a| event.id > a) {
            self.after = Some(event.id);
            self.pending.push_back(event);
        }
    }

    /// A live token is sent at once when it follows the last event sent; otherwise it waits
    /// for the read that brings what precedes it (or brings it too, from the log).
    fn take_live(&mut self, event: Arc<RunEvent>) {
        if self.after.is_some_and(|a| event.id <= a) {
            return;
        }
        if self.after.is_some_and(|a| event.id == a + 1) {
            self.push((*event).clone());
            self.release_held();
        } else if self.held.len() < MAX_HELD {
            self.held.insert(event.id, event);
        }
    }

    /// Sends the held tokens that now follow the last event sent; drops those already sent.
    fn release_held(&mut self) {
        while let Some(entry) = self.held.first_entry() {
            let id = *entry.key();
            match self.after {
                Some(a) if id <= a => {
                    entry.remove();
                }
                Some(a) if id == a + 1 => {
                    let event = entry.remove();
                    self.push((*event).clone());
                }
                _ => break,
            }
        }
    }

    async fn next(mut self) -> Option<(RunEvent, Self)> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some((event, self));
            }
            if self.ended {
                return None;
            }
            let (Some(reads), Some(live)) = (&mut self.reads, &mut self.live) else {
                return None;
            };
            tokio::select! {
                changed = reads.changed() => {
                    let read = reads.borrow_and_update().clone();
                    self.absorb(&read);
                    // The feed stopped without a final read (its process is stopping).
                    if changed.is_err() && self.pending.is_empty() {
                        return None;
                    }
                }
                event = live.recv() => match event {
                    Ok(event) => self.take_live(event),
                    // Missed tokens are in the store: the next read brings them.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => self.live = None,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cursor(after: Option<u64>) -> Cursor {
        Cursor {
            task_id: "t".into(),
            types: HashMap::new(),
            after,
            pending: VecDeque::new(),
            held: BTreeMap::new(),
            reads: None,
            live: None,
            ended: false,
            _feed: None,
        }
    }

    fn token(id: u64) -> Arc<RunEvent> {
        Arc::new(RunEvent {
            id,
            name: "node_delta",
            data: json!({"delta": id.to_string()}),
        })
    }

    fn sent(cursor: &mut Cursor) -> Vec<u64> {
        cursor.pending.drain(..).map(|e| e.id).collect()
    }

    #[test]
    fn a_live_token_goes_at_once_only_when_it_follows_the_last_id_sent() {
        let mut c = cursor(Some(10));
        c.take_live(token(11));
        assert_eq!(sent(&mut c), [11]);
        // 13 before 12: held until 12 comes, then both in order.
        c.take_live(token(13));
        assert!(sent(&mut c).is_empty());
        c.take_live(token(12));
        assert_eq!(sent(&mut c), [12, 13]);
        // Already sent (it came from the store too): skipped.
        c.take_live(token(12));
        assert!(sent(&mut c).is_empty() && c.held.is_empty());
    }

    #[test]
    fn held_tokens_wait_for_the_store_and_are_not_sent_twice() {
        let mut c = cursor(Some(10));
        c.take_live(token(12));
        c.take_live(token(13));
        // A read of the row brings 11 and 12 (12 also held): 11, 12, then the held 13.
        c.push(RunEvent {
            id: 11,
            name: "node_started",
            data: json!({}),
        });
        c.push((*token(12)).clone());
        c.release_held();
        assert_eq!(sent(&mut c), [11, 12, 13]);
        assert!(c.held.is_empty());
        // Nothing was sent yet: no token can go before the events that precede it.
        let mut fresh = cursor(None);
        fresh.take_live(token(5));
        assert!(sent(&mut fresh).is_empty() && fresh.held.len() == 1);
    }
}
