//! The Redis specifics of the queues (apalis-redis 1.0): storage configuration, the push, the
//! chunked promotion of due jobs, and our vacuum.

use apalis::prelude::TaskBuilder;
use apalis_redis::RedisStorage;
use redis::aio::ConnectionManager;

use super::{
    backend::{MISSED_HEARTBEATS, QueueDepth, QueueError, QueueSettings, VACUUM_BATCH},
    jobs::Job,
};
use crate::{redis_conn::retry_once, signals::channel};

/// apalis-redis's `batch_size`. Redis writes the events fast, so the channel never filled at
/// 32; a larger batch left jobs waiting in one worker's buffer while the other worker was
/// free, and runs of 128 per fetch showed stalls of 0.5-2 s (two workers, 2,000 runs/s).
pub const REDIS_FETCH_BATCH: usize = 32;

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

/// Pushes jobs under their fixed queue ids (a held id is skipped); answers how many were new.
pub(super) async fn push<J: Job>(
    conn: &ConnectionManager,
    settings: &QueueSettings,
    jobs: &[J],
) -> Result<u64, QueueError> {
    let tasks = jobs
        .iter()
        .map(|job| {
            Ok(TaskBuilder::new(serde_json::to_vec(job)?)
                .task_id(job.queue_id())
                .max_attempts(settings.max_attempts as usize)
                .build())
        })
        .collect::<Result<Vec<_>, QueueError>>()?;
    let config = redis_config::<J>(settings);
    let (enqueued, scheduled) = retry_once(|| {
        let mut conn = conn.clone();
        let (config, tasks) = (&config, &tasks);
        async move { apalis_redis::queries::push_tasks(&mut conn, config, tasks).await }
    })
    .await?;
    // Also publishes the wake-up signal (in the same script).
    promote_due(conn.clone(), J::QUEUE).await?;
    Ok(u64::from(enqueued) + u64::from(scheduled))
}

/// Deletes up to [`VACUUM_BATCH`] acknowledged jobs of a queue (see [`super::vacuum`]).
pub(super) async fn vacuum_batch(conn: &ConnectionManager, queue: &str) -> Result<u64, QueueError> {
    static SCRIPT: std::sync::LazyLock<::redis::Script> = std::sync::LazyLock::new(|| {
        ::redis::Script::new(
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
    Ok(retry_once(|| {
        let mut conn = conn.clone();
        let invocation = &invocation;
        async move { invocation.invoke_async::<u64>(&mut conn).await }
    })
    .await?)
}

/// Moves due jobs from apalis-redis's `scheduled` set to its `active` list in chunks, then
/// publishes the wake-up signal.
///
/// Why: apalis-redis 1.0 puts every push into `<queue>:scheduled` and its fetch script promotes
/// *all* due ids with one Lua `unpack`, which fails ("too many results to unpack") once about
/// 8,000 are due at once; the worker then dies. Promoting in chunks of 500 right after each
/// push (and before workers start) keeps that set near empty whatever the backlog.
pub async fn promote_due(conn: ConnectionManager, queue: &str) -> Result<u64, QueueError> {
    static SCRIPT: std::sync::LazyLock<::redis::Script> = std::sync::LazyLock::new(|| {
        ::redis::Script::new(
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

/// Connects to Redis for the queues (a connection that heals itself, see
/// [`crate::redis_conn`]).
pub async fn connect_redis(url: &str) -> Result<ConnectionManager, QueueError> {
    Ok(crate::redis_conn::connect(url).await?)
}

/// The depth of one queue, read with one script: the ready list, the scheduled set (retries
/// wait there too) and every live worker's in-flight set.
pub(super) async fn depth(conn: &ConnectionManager, queue: &str) -> Result<QueueDepth, QueueError> {
    static SCRIPT: std::sync::LazyLock<::redis::Script> = std::sync::LazyLock::new(|| {
        ::redis::Script::new(
            r#"
            local waiting = redis.call('llen', KEYS[1])
            local scheduled = redis.call('zcard', KEYS[2])
            local running = 0
            if redis.call('type', KEYS[3]).ok == 'zset' then
                for _, w in ipairs(redis.call('zrange', KEYS[3], 0, -1)) do
                    running = running + redis.call('scard', KEYS[4] .. ':' .. w)
                end
            end
            return {waiting, running, scheduled}
            "#,
        )
    });
    let config = apalis_redis::Config::default().queue(queue);
    let mut invocation = SCRIPT.prepare_invoke();
    invocation
        .key(config.active_jobs_list())
        .key(config.scheduled_jobs_set())
        .key(config.workers_set())
        .key(config.inflight_jobs_set());
    let (waiting, running, scheduled): (u64, u64, u64) = retry_once(|| {
        let mut conn = conn.clone();
        let invocation = &invocation;
        async move { invocation.invoke_async(&mut conn).await }
    })
    .await?;
    Ok(QueueDepth {
        waiting,
        running,
        scheduled,
    })
}
