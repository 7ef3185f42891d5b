//! One reader per watched task in this api process, shared by every open stream of it.
//!
//! Why: a stream follows its running task by reading the task row, which the worker writes
//! at most every 100 ms. Read per stream every 200 ms, 1,000 streams cost 5,000 row reads a
//! second whatever their runs do. A [`Feed`] reads the row once for all the streams of its
//! task, parses it once, and hands the result to each through a `watch` channel; and it
//! reads when the row changed rather than on a clock: the worker of a listened run notes
//! each progress write on `run:<id>:events` (and `task:<id>:done` ends it), so an idle run
//! costs a read every [`POLL_EVERY`] (3 s) only, as a safety net for a lost note or a worker that
//! has not yet heard of the listener. The same channel brings the run's live `node_delta`
//! events, relayed to the streams. The feed announces `task:<id>:listen` every
//! [`LISTEN_REFRESH`] (so the worker streams tokens and notes its writes). It ends when the
//! run ends or when its last stream goes (the registry holds it weakly); the next stream of
//! the task starts a new one.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
    time::Duration,
};

use futures::StreamExt;
use serde_json::Value;
use shared::{
    signals::{LISTEN_REFRESH, Signals, channel},
    store::{
        Db, now_ms,
        tasks::{self, TaskStatus},
    },
    workflow::{
        Report, WorkflowStatus,
        events::{EventLog, RunEvent},
    },
};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// How often a running task's row is read when no note says it changed.
pub const POLL_EVERY: Duration = Duration::from_secs(3);
/// How soon the row is read when a live token ran ahead of the stored log and no progress
/// note came meanwhile (the worker's next write holds what came before the token, and is
/// normally announced by its note: at most 100 ms after a node event, 500 ms after tokens).
const CATCH_UP_AFTER: Duration = Duration::from_millis(600);
/// Live events a slow stream may fall behind before it misses some (it then finds them in
/// the store: they are in the log too).
const LIVE_CAPACITY: usize = 256;

/// One read of the task row, parsed.
#[derive(Debug, Default)]
pub struct TaskRead {
    pub report: Option<Report>,
    pub log: EventLog,
    /// The stored status once the run has ended.
    pub terminal: Option<WorkflowStatus>,
    /// The row is gone (deleted): nothing more will come.
    pub gone: bool,
}

impl TaskRead {
    pub fn parse(row: Option<tasks::TaskEvents>) -> TaskRead {
        let Some(row) = row else {
            return TaskRead {
                gone: true,
                ..TaskRead::default()
            };
        };
        let terminal = row.status.is_terminal().then(|| status_of(row.status));
        let report = row
            .report
            .and_then(|r| serde_json::from_value::<Report>(r.0).ok());
        let log = row
            .events
            .map(|e| e.0)
            .filter(|e| !e.is_null())
            .and_then(|e: Value| serde_json::from_value::<EventLog>(e).ok())
            .unwrap_or_default();
        TaskRead {
            report,
            log,
            terminal,
            gone: false,
        }
    }

    /// Whether nothing more will come after this read.
    pub fn is_final(&self) -> bool {
        self.gone || self.terminal.is_some()
    }

    /// The report, or an empty pending one for a row without a readable report.
    pub fn report_or_empty(&self, task_id: &str) -> std::borrow::Cow<'_, Report> {
        match &self.report {
            Some(report) => std::borrow::Cow::Borrowed(report),
            None => std::borrow::Cow::Owned(Report::new(task_id, Default::default(), now_ms())),
        }
    }
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

/// The shared reader of one task, as its streams see it.
pub struct Feed {
    /// The latest read of the row; the sender closes when the run has ended.
    pub reads: watch::Receiver<Arc<TaskRead>>,
    /// The run's live `node_delta` events, as the worker published them.
    pub live: broadcast::Sender<Arc<RunEvent>>,
}

/// The feeds of the tasks this process streams, by task.
#[derive(Clone)]
pub struct TaskFeeds {
    db: Db,
    signals: Signals,
    feeds: Arc<Mutex<HashMap<Uuid, Weak<Feed>>>>,
}

impl TaskFeeds {
    pub fn new(db: Db, signals: Signals) -> Self {
        TaskFeeds {
            db,
            signals,
            feeds: Arc::default(),
        }
    }

    /// The feed of a running task, started by its first stream. `first` is the read the
    /// stream just made: a new feed starts from it instead of reading again.
    pub async fn follow(&self, id: Uuid, first: Arc<TaskRead>) -> Arc<Feed> {
        if let Some(feed) = self.existing(id) {
            return feed;
        }
        // Subscribed before the feed is visible: a run that ends, or a token sent, after the
        // stream's first read still reaches it.
        let done = self.signals.subscribe(&channel::task_done(id)).await;
        let deltas = self.signals.subscribe(&channel::run_events(id)).await;
        let (reads_tx, reads) = watch::channel(first);
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        let feed = Arc::new(Feed { reads, live });
        {
            let mut feeds = self.feeds.lock().expect("feeds poisoned");
            // Another stream of the task may have started one meanwhile: use that one.
            if let Some(existing) = feeds.get(&id).and_then(Weak::upgrade) {
                return existing;
            }
            feeds.insert(id, Arc::downgrade(&feed));
        }
        let reader = Reader {
            db: self.db.clone(),
            signals: self.signals.clone(),
            feeds: self.feeds.clone(),
            id,
            feed: Arc::downgrade(&feed),
            reads: reads_tx,
        };
        tokio::spawn(reader.run(done.ok(), deltas.ok()));
        feed
    }

    fn existing(&self, id: Uuid) -> Option<Arc<Feed>> {
        self.feeds
            .lock()
            .expect("feeds poisoned")
            .get(&id)
            .and_then(Weak::upgrade)
    }

    /// How many tasks have a live feed in this process.
    pub fn len(&self) -> usize {
        self.feeds.lock().expect("feeds poisoned").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The task that reads one task's row for all its streams.
struct Reader {
    db: Db,
    signals: Signals,
    feeds: Arc<Mutex<HashMap<Uuid, Weak<Feed>>>>,
    id: Uuid,
    feed: Weak<Feed>,
    reads: watch::Sender<Arc<TaskRead>>,
}

type Messages = shared::signals::Subscription;

impl Reader {
    async fn run(self, mut done: Option<Messages>, mut deltas: Option<Messages>) {
        let mut listen = tokio::time::interval(LISTEN_REFRESH);
        listen.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The highest event id in the stored log as last read: a live event beyond the next
        // one means the store is behind, and is read again soon.
        let mut stored_up_to = last_id(&self.reads.borrow());
        let mut next_read = tokio::time::Instant::now() + POLL_EVERY;
        loop {
            tokio::select! {
                _ = listen.tick() => {
                    if let Err(error) = self.signals.publish_task_listen(self.id).await {
                        tracing::debug!(%error, task_id = %self.id, "listen announcement failed");
                    }
                    continue;
                }
                message = next(&mut deltas) => {
                    let Some(message) = message else {
                        deltas = None;
                        continue;
                    };
                    let Some(feed) = self.feed.upgrade() else { break };
                    if let Some(event) = live_event(&message) {
                        if event.id > stored_up_to + 1 {
                            next_read = next_read.min(tokio::time::Instant::now() + CATCH_UP_AFTER);
                        }
                        let _ = feed.live.send(Arc::new(event));
                        continue;
                    }
                    // Otherwise a progress note: the row changed, read it now.
                }
                message = next(&mut done) => {
                    if message.is_none() {
                        done = None;
                        continue;
                    }
                }
                _ = tokio::time::sleep_until(next_read) => {}
            }
            if self.feed.strong_count() == 0 {
                break;
            }
            next_read = tokio::time::Instant::now() + POLL_EVERY;
            let read = match tasks::get_task_events(&self.db, self.id).await {
                Ok(row) => TaskRead::parse(row),
                Err(error) => {
                    tracing::warn!(%error, task_id = %self.id, "stream read failed; retrying");
                    continue;
                }
            };
            stored_up_to = last_id(&read);
            let last = read.is_final();
            self.reads.send_replace(Arc::new(read));
            if last {
                break;
            }
        }
        // Forget this feed (not a newer one of the same task).
        let mut feeds = self.feeds.lock().expect("feeds poisoned");
        if feeds
            .get(&self.id)
            .is_some_and(|weak| weak.ptr_eq(&self.feed))
        {
            feeds.remove(&self.id);
        }
    }
}

/// The next message of a subscription, or never when there is none.
async fn next(subscription: &mut Option<Messages>) -> Option<Arc<str>> {
    match subscription {
        Some(subscription) => subscription.next().await,
        None => std::future::pending().await,
    }
}

/// The id of the last event of the stored log (0 before any).
fn last_id(read: &TaskRead) -> u64 {
    match read.log.log.len() {
        0 => 0,
        n => shared::workflow::events::event_id(read.log.attempt, n - 1),
    }
}

/// A `node_delta` event as the worker published it (`{id, taskID, nodeID, delta}`).
fn live_event(message: &str) -> Option<RunEvent> {
    let mut data: Value = serde_json::from_str(message).ok()?;
    let id = data.as_object_mut()?.remove("id")?.as_u64()?;
    Some(RunEvent {
        id,
        name: "node_delta",
        data,
    })
}
