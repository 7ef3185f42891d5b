//! The job queues: apalis 1.0 on Redis (distributed) or on SQLite in the store's own file
//! (embedded). Two queues, `workflow` and `chat`, so slow runs never block chats. Jobs carry
//! ids only; the data lives in the store.
//!
//! Pick-up is push-woken: after every push the producer signals `queue:<name>:available`, and
//! workers turn that signal into a poll (with a slow fallback interval for anything missed),
//! so an idle worker starts a job about a millisecond after it was pushed.

use std::{pin::Pin, sync::Arc, time::Duration};

use apalis::prelude::{TaskBuilder, TaskId};
use apalis_redis::RedisStorage;
use apalis_sqlite::SqliteStorage;
use futures::{Stream, StreamExt};
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{
    config::StoreKind,
    redis_conn::retry_once,
    signals::{SignalError, Signals, channel},
    store::{SqliteQuery, batch::rows_sql},
};

/// Queue names (Redis key prefixes / SQLite `job_type`).
pub const WORKFLOW_QUEUE: &str = "llmops-workflow";
pub const CHAT_QUEUE: &str = "llmops-chat";

/// Fallback poll period: covers a wake-up signal lost to a race or a reconnect. Pick-up does
/// not wait on it.
pub const FALLBACK_POLL: Duration = Duration::from_millis(250);

/// See [`QueueWaker::stream`]: how long after a wake a second one is sent, unless another wake
/// came first.
pub const WAKE_ECHO: Duration = Duration::from_millis(5);

/// Run one workflow task (`tasks.id`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunWorkflow {
    pub task_id: Uuid,
}

/// Answer one debug-chat message (`messages.id`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DebugChat {
    pub message_id: Uuid,
}

/// A job type and the queue it travels on.
pub trait Job: Serialize + for<'de> Deserialize<'de> + Send + Sync + Unpin + 'static {
    const QUEUE: &'static str;

    /// The id of the store row the job runs.
    fn row_id(&self) -> Uuid;

    /// The job's id in the queue, derived from its row's id: one row, one queue id, so a
    /// second push of the same row is recognised and ignored (both UUIDs and ULIDs are 128
    /// bits; a UUIDv7's leading 48 bits are a millisecond timestamp, as a ULID's are).
    fn queue_id(&self) -> TaskId {
        TaskId::from_ulid(ulid::Ulid::from(self.row_id().as_u128()))
    }
}
impl Job for RunWorkflow {
    const QUEUE: &'static str = WORKFLOW_QUEUE;
    fn row_id(&self) -> Uuid {
        self.task_id
    }
}
impl Job for DebugChat {
    const QUEUE: &'static str = CHAT_QUEUE;
    fn row_id(&self) -> Uuid {
        self.message_id
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("encoding a job: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
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

/// apalis-redis's `batch_size`. Redis writes the events fast, so the channel never filled at
/// 32; a larger batch left jobs waiting in one worker's buffer while the other worker was
/// free, and runs of 128 per fetch showed stalls of 0.5-2 s (two workers, 2,000 runs/s).
pub const REDIS_FETCH_BATCH: usize = 32;

/// [`QueueSettings::fetch_batch`] for workers of this concurrency.
pub fn fetch_batch(worker_concurrency: usize) -> usize {
    (2 * worker_concurrency).max(10)
}

pub const MISSED_HEARTBEATS: usize = 3;

/// The producing side of the queues, held by the API.
#[derive(Clone)]
pub struct Queues {
    backend: QueueBackend,
    signals: Signals,
    settings: QueueSettings,
}

impl Queues {
    pub fn new(backend: QueueBackend, signals: Signals, settings: QueueSettings) -> Self {
        Self {
            backend,
            signals,
            settings,
        }
    }

    pub fn backend(&self) -> &QueueBackend {
        &self.backend
    }

    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    pub fn signals(&self) -> &Signals {
        &self.signals
    }

    /// Pushes a job and wakes idle workers of its queue.
    pub async fn push<J: Job>(&self, job: J) -> Result<(), QueueError> {
        self.push_many(vec![job]).await.map(|_| ())
    }

    /// Pushes jobs in one batch (one statement on SQLite, one script call on Redis) and wakes
    /// idle workers once.
    ///
    /// Idempotent while the queue holds a job: every job's queue id is derived from the id of
    /// the row it runs ([`Job::queue_id`]), and a push of an id the queue already holds is
    /// ignored. So pushing again whatever the store says must run (see the worker's
    /// re-queue sweep) never queues a job twice. Answers how many jobs were new.
    pub async fn push_many<J: Job>(&self, jobs: Vec<J>) -> Result<u64, QueueError> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let added = match &self.backend {
            QueueBackend::Redis(conn) => {
                let tasks = jobs
                    .iter()
                    .map(|job| {
                        Ok(TaskBuilder::new(serde_json::to_vec(job)?)
                            .task_id(job.queue_id())
                            .max_attempts(self.settings.max_attempts as usize)
                            .build())
                    })
                    .collect::<Result<Vec<_>, QueueError>>()?;
                let config = redis_config::<J>(&self.settings);
                let (enqueued, scheduled) = retry_once(|| {
                    let mut conn = conn.clone();
                    let (config, tasks) = (&config, &tasks);
                    async move { apalis_redis::queries::push_tasks(&mut conn, config, tasks).await }
                })
                .await?;
                // Also publishes the wake-up signal (in the same script).
                promote_due(conn.clone(), J::QUEUE).await?;
                u64::from(enqueued) + u64::from(scheduled)
            }
            QueueBackend::Sqlite(pool) => {
                let query = sqlx::query(AssertSqlSafe(Self::sqlite_push_sql(jobs.len())));
                let added = self
                    .bind_sqlite_push(query, &jobs)?
                    .execute(pool)
                    .await?
                    .rows_affected();
                self.wake::<J>().await?;
                added
            }
        };
        Ok(added)
    }

    /// The statement that writes `count` jobs into the embedded (SQLite) queue, with its
    /// values bound by [`Queues::bind_sqlite_push`]. The embedded submit runs it in the
    /// transaction that stores the rows the jobs refer to, so both commit together; call
    /// [`Queues::wake`] once that transaction has committed. Empty for no jobs.
    ///
    /// This is apalis-sqlite's push (`queries/task/sink.sql` and `push_tasks` of
    /// apalis-sqlite 1.0, vendored: the same columns, values and encoding) as one multi-row
    /// statement: apalis inserts row by row, and each row is a round trip on the store's
    /// single writer connection while every other write waits. A job whose id the queue
    /// already holds is skipped (`ON CONFLICT DO NOTHING`, any constraint), which makes the
    /// push idempotent (see [`Queues::push_many`]). Every test that runs a task on the
    /// embedded stack has apalis's own workers consume rows written here.
    pub fn sqlite_push_sql(count: usize) -> String {
        if count == 0 {
            return String::new();
        }
        let rows = rows_sql(StoreKind::Sqlite, count, 6, |p| {
            format!(
                "({}, {}, {}, 'Pending', 0, {}, {}, NULL, NULL, NULL, NULL, 0, {}, NULL)",
                p[0], p[1], p[2], p[3], p[4], p[5]
            )
        });
        // Built from placeholders only; the values are bound.
        format!("INSERT INTO Jobs VALUES {rows} ON CONFLICT DO NOTHING")
    }

    /// Binds the values of [`Queues::sqlite_push_sql`], after whatever `query` bound before.
    pub fn bind_sqlite_push<'q, J: Job>(
        &self,
        mut query: SqliteQuery<'q>,
        jobs: &[J],
    ) -> Result<SqliteQuery<'q>, QueueError> {
        let run_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        // Default metadata, encoded as apalis encodes a task's metadata store.
        let metadata = serde_json::to_string(TaskBuilder::new(()).build().metadata())?;
        for job in jobs {
            // The job as JSON bytes (apalis-sqlite's codec) under its fixed queue id.
            let args = serde_json::to_vec(job)?;
            query = query
                .bind(args)
                .bind(job.queue_id().to_string())
                .bind(J::QUEUE)
                .bind(self.settings.max_attempts as i64)
                .bind(run_at)
                .bind(metadata.clone());
        }
        Ok(query)
    }

    /// Wakes idle workers of a queue (after the commit of [`Queues::sqlite_push_sql`]).
    pub async fn wake<J: Job>(&self) -> Result<(), QueueError> {
        self.signals
            .publish(&channel::queue_available(J::QUEUE), "")
            .await?;
        Ok(())
    }

    /// Whether the queue backend answers.
    pub async fn ping(&self) -> Result<(), QueueError> {
        match &self.backend {
            QueueBackend::Redis(conn) => {
                retry_once(|| {
                    let mut conn = conn.clone();
                    async move { redis::cmd("PING").query_async::<String>(&mut conn).await }
                })
                .await?;
            }
            QueueBackend::Sqlite(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }
}

/// The apalis Redis storage of a job type, configured identically for producers and workers.
pub fn redis_storage<J: Job>(
    conn: ConnectionManager,
    settings: &QueueSettings,
) -> RedisStorage<J, ConnectionManager> {
    RedisStorage::new(conn).with_config(redis_config::<J>(settings))
}

fn redis_config<J: Job>(settings: &QueueSettings) -> apalis_redis::Config {
    apalis_redis::Config::default()
        .queue(J::QUEUE)
        .heartbeat_interval(settings.heartbeat)
        .missed_heartbeats(MISSED_HEARTBEATS)
        .batch_size(REDIS_FETCH_BATCH)
        // In apalis 1.0 this switch is also the ack: without it a finished job stays
        // in-flight forever. Its "result" is our handler's `()`; [`vacuum`] deletes it.
        .persist_results(true)
}

/// The apalis SQLite storage of a job type, in the store's own file.
pub fn sqlite_storage<J: Job>(
    pool: &sqlx::SqlitePool,
    settings: &QueueSettings,
) -> SqliteStorage<J> {
    SqliteStorage::new(pool).with_config(
        apalis_sqlite::Config::default()
            .queue(J::QUEUE)
            .heartbeat_interval(settings.heartbeat)
            .missed_heartbeats(MISSED_HEARTBEATS)
            .batch_size(settings.fetch_batch)
            // No separate `Running` mark per job (one writer statement per burst less): a
            // fetched job is already `Queued` with `lock_by` set, which fetches skip and the
            // orphan recovery of a dead worker's jobs covers.
            .lock_tasks(false)
            // The ack (see `redis_storage`): without it every job stays `Running`.
            .persist_results(true),
    )
}

/// Finished jobs deleted per statement or script call, so housekeeping never holds the
/// queue up for long.
const VACUUM_BATCH: usize = 1000;

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
            QueueBackend::Sqlite(pool) => {
                sqlx::query(
                    "DELETE FROM Jobs WHERE ROWID IN (
                         SELECT ROWID FROM Jobs WHERE job_type = $1 AND (status IN ('Done', 'Killed')
                             OR (status = 'Failed' AND attempts >= max_attempts))
                         LIMIT $2)",
                )
                .bind(queue)
                .bind(VACUUM_BATCH as i64)
                .execute(pool)
                .await?
                .rows_affected()
            }
            QueueBackend::Redis(conn) => {
                static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
                    redis::Script::new(
                        r#"
                        -- KEYS: data hash, meta prefix, done set, dead set; ARGV[1]: batch size
                        local deleted = 0
                        for _, set in ipairs({KEYS[3], KEYS[4]}) do
                            local ids = redis.call('SPOP', set, ARGV[1])
                            for _, id in ipairs(ids) do
                                redis.call('HDEL', KEYS[1], id)
                                redis.call('HDEL', KEYS[2] .. ':result', id)
                                redis.call('DEL', KEYS[2] .. ':' .. id)
                            end
                            deleted = deleted + #ids
                        end
                        return deleted
                        "#,
                    )
                });
                let keys = [":data", ":meta", ":done", ":dead"].map(|k| format!("{queue}{k}"));
                let mut invocation = SCRIPT.prepare_invoke();
                invocation.key(&keys).arg(VACUUM_BATCH);
                retry_once(|| {
                    let mut conn = conn.clone();
                    let invocation = &invocation;
                    async move { invocation.invoke_async::<u64>(&mut conn).await }
                })
                .await?
            }
        };
        total += deleted;
        if deleted < VACUUM_BATCH as u64 {
            return Ok(total);
        }
        tokio::task::yield_now().await;
    }
}

/// Moves due jobs from apalis-redis's `scheduled` set to its `active` list in chunks, then
/// publishes the wake-up signal.
///
/// Why: apalis-redis 1.0 puts every push into `<queue>:scheduled` and its fetch script promotes
/// *all* due ids with one Lua `unpack`, which fails ("too many results to unpack") once about
/// 8,000 are due at once; the worker then dies. Promoting in chunks of 500 right after each
/// push (and before workers start) keeps that set near empty whatever the backlog.
pub async fn promote_due(conn: ConnectionManager, queue: &str) -> Result<u64, QueueError> {
    static SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
        redis::Script::new(
            r#"
            local moved = 0
            while true do
                local ids = redis.call('zrangebyscore', KEYS[1], 0, ARGV[1], 'LIMIT', 0, 500)
                if #ids == 0 then break end
                redis.call('rpush', KEYS[2], unpack(ids))
                redis.call('zrem', KEYS[1], unpack(ids))
                moved = moved + #ids
            end
            if moved > 0 then
                redis.call('del', KEYS[3])
                redis.call('lpush', KEYS[3], 1)
                redis.call('publish', ARGV[2], '')
            end
            return moved
            "#,
        )
    });
    let config = apalis_redis::Config::default().queue(queue);
    let now = chrono::Utc::now().timestamp();
    let mut invocation = SCRIPT.prepare_invoke();
    invocation
        .key(config.scheduled_jobs_set())
        .key(config.active_jobs_list())
        .key(config.signal_list())
        .arg(now)
        .arg(channel::queue_available(queue));
    let moved: u64 = retry_once(|| {
        let mut conn = conn.clone();
        let invocation = &invocation;
        async move { invocation.invoke_async(&mut conn).await }
    })
    .await?;
    Ok(moved)
}

/// A stream that yields whenever the worker should poll its queue: on every "job available"
/// signal, and on a slow fallback tick. apalis polls the backend each time it yields.
pub type WakeStream = Pin<Box<dyn Stream<Item = ()> + Send>>;

/// Listens to a queue's wake-up signal for the life of the process and hands out wake streams.
#[derive(Clone)]
pub struct QueueWaker {
    notify: Arc<Notify>,
    fallback: Duration,
}

impl QueueWaker {
    /// Subscribes to `queue:<name>:available` and relays it to the wake streams.
    pub async fn start(
        signals: &Signals,
        queue: &str,
        fallback: Duration,
    ) -> Result<Self, SignalError> {
        let notify = Arc::new(Notify::new());
        let mut sub = signals.subscribe(&channel::queue_available(queue)).await?;
        let relay = notify.clone();
        tokio::spawn(async move {
            while sub.next().await.is_some() {
                relay.notify_waiters();
                // Also store a permit, so a worker between two polls does not miss it.
                relay.notify_one();
            }
        });
        Ok(Self { notify, fallback })
    }

    /// A fresh stream for one apalis worker (apalis re-creates workers on restart).
    ///
    /// apalis consumes a wake even while a fetch is already in flight, and that fetch may have
    /// started just before the job was committed: the job would then wait for the fallback
    /// tick. So [`WAKE_ECHO`] after the last of a run of wakes, the stream wakes once more
    /// (one extra poll per burst, not per job).
    pub fn stream(&self) -> WakeStream {
        let signalled =
            futures::stream::unfold((self.notify.clone(), false), |(n, echo_due)| async move {
                if echo_due {
                    // A wake within the window is passed on and the echo moves after it; a quiet
                    // window sends the echo.
                    let another = tokio::time::timeout(WAKE_ECHO, n.notified()).await.is_ok();
                    return Some(((), (n, another)));
                }
                n.notified().await;
                Some(((), (n, true)))
            });
        let mut interval = tokio::time::interval(self.fallback);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ticks = futures::stream::unfold(interval, |mut i| async move {
            i.tick().await;
            Some(((), i))
        });
        Box::pin(futures::stream::select(signalled, ticks))
    }
}

/// Connects to Redis for the queues (a connection that heals itself, see
/// [`crate::redis_conn`]).
pub async fn connect_redis(url: &str) -> Result<ConnectionManager, QueueError> {
    Ok(crate::redis_conn::connect(url).await?)
}
