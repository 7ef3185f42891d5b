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
//! | [`backend`] | where the queues live, their settings and errors |
//! | [`jobs`] | the job types, their queues and their fixed queue ids |
//! | [`producer`] | [`Queues`]: pushing jobs, waking workers |
//! | [`redis`], [`sqlite`] | each backend's storage settings, push and vacuum |
//! | [`waker`] | the workers' wake-up streams |

pub mod backend;
pub mod jobs;
pub mod producer;
pub mod redis;
pub mod sqlite;
pub mod waker;

use backend::VACUUM_BATCH;
pub use backend::{
    MISSED_HEARTBEATS, QueueBackend, QueueDepth, QueueError, QueueSettings, fetch_batch,
};
pub use jobs::{AnswerMessage, CHAT_QUEUE, Job, RunWorkflow, WORKFLOW_QUEUE};
pub use producer::Queues;
pub use redis::{REDIS_FETCH_BATCH, connect_redis, promote_due, redis_storage};
pub use sqlite::sqlite_storage;
pub use waker::{FALLBACK_POLL, QueueWaker, WAKE_ECHO, WakeStream};

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
