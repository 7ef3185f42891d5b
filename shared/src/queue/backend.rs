//! Where the queues live, the settings producers and workers must agree on, and the errors.

use std::time::Duration;

use ::redis::aio::ConnectionManager;

use crate::signals::SignalError;

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

/// Jobs of one queue by state, as the backend holds them (the gauge workers scale on).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// Ready and not yet taken by a worker.
    pub waiting: u64,
    /// Taken by a worker and not yet acknowledged.
    pub running: u64,
    /// Due later: scheduled, or failed and waiting for a retry.
    pub scheduled: u64,
}

impl QueueDepth {
    /// Sets the `llmops_queue_depth` gauges of `queue` from this reading.
    pub fn record(&self, queue: &'static str) {
        for (state, n) in [
            ("waiting", self.waiting),
            ("running", self.running),
            ("scheduled", self.scheduled),
        ] {
            metrics::gauge!(crate::metrics::QUEUE_DEPTH, "queue" => queue, "state" => state)
                .set(n as f64);
        }
    }
}
