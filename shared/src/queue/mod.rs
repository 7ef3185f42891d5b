//! The job queues: apalis 1.0 on Redis (distributed) or on SQLite in the store's own file
//! (embedded). Two queues, `workflow` and `chat`, so slow runs never block chats. Jobs carry
//! ids only; the data lives in the store.
//!
//! Pick-up is push-woken: after every push the producer signals `queue:<name>:available`, and
//! workers turn that signal into a poll (with a slow fallback interval for anything missed),
//! so an idle worker starts a job about a millisecond after it was pushed.
//!
//! | module | what |
//! |---|---|
//! | [`jobs`] | the job types and their fixed queue ids |
//! | [`producer`] | [`Queues`]: pushing jobs, waking workers |
//! | [`redis`], [`sqlite`] | each backend's storage settings, push and vacuum |
//! | [`waker`] | the workers' wake-up streams |

use std::time::Duration;

use ::redis::aio::ConnectionManager;

use crate::signals::SignalError;

pub mod jobs;
pub mod producer;
pub mod redis;
pub mod sqlite;
pub mod waker;

pub use jobs::{DebugChat, Job, RunWorkflow};
pub use producer::Queues;
pub use redis::{REDIS_FETCH_BATCH, connect_redis, promote_due, redis_storage};
pub use sqlite::sqlite_storage;
pub use waker::{FALLBACK_POLL, QueueWaker, WAKE_ECHO, WakeStream};

/// Queue names (Redis key prefixes / SQLite `job_type`).
pub const WORKFLOW_QUEUE: &str = "llmops-workflow";
pub const CHAT_QUEUE: &str = "llmops-chat";

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("encoding a job: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("redis queue: {0}")]
    RedisQueue(#[from] apalis_redis::Error),
    #[error("sqlite: {0}")]
    Sqlite(#[from] sqlx::Error),
    #[error(transparent)]
    Signal(#[from] SignalError),
}

/// Where the queues live.
#[derive(Clone)]
pub enum QueueBackend {
    Redis(ConnectionManager),
    Sqlite(sqlx::SqlitePool),
}

/// Knobs that both the producer and the workers must agree on.
#[derive(Clone, Debug)]
pub struct QueueSettings {
    /// Deliveries a job gets before apalis gives up on it (a worker crash costs one).
    pub max_attempts: u32,
    /// Worker heartbeat; a worker silent for `MISSED_HEARTBEATS` of them is presumed dead.
    pub heartbeat: Duration,
    /// apalis-sqlite's `batch_size`: the jobs a worker takes per fetch, and also the room in
    /// its channel of lock and ack events. Each running job queues two events (lock, then
    /// ack), so with less than twice the worker's concurrency that channel fills and the
    /// worker stops starting jobs until the events are written (embedded: 3,250 runs/s at
    /// 1x, 3,830 at 2x). See [`fetch_batch`]; Redis uses [`REDIS_FETCH_BATCH`].
    pub fetch_batch: usize,
}

/// [`QueueSettings::fetch_batch`] for workers of this concurrency.
pub fn fetch_batch(worker_concurrency: usize) -> usize {
    (2 * worker_concurrency).max(10)
}

pub const MISSED_HEARTBEATS: usize = 3;

/// Finished jobs deleted per statement or script call, so housekeeping never holds the
/// queue up for long.
pub(crate) const VACUUM_BATCH: usize = 1000;

/// Deletes acknowledged jobs (done, killed, out of attempts) from a queue; returns how many.
/// Our store keeps each run's outcome, so the queue's copies are only clutter.
///
/// Ours rather than apalis's `Vacuum`: on SQLite that ends with a whole-file `VACUUM` (which
/// rewrites the store's tables too), and on Redis it reads the whole data hash at once and
/// leaves the ids in the `done` set.
pub async fn vacuum(backend: &QueueBackend, queue: &str) -> Result<u64, QueueError> {
    let mut total = 0;
    loop {
        let deleted = match backend {
            QueueBackend::Sqlite(pool) => sqlite::vacuum_batch(pool, queue).await?,
            QueueBackend::Redis(conn) => redis::vacuum_batch(conn, queue).await?,
        };
        total += deleted;
        if deleted < VACUUM_BATCH as u64 {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}
