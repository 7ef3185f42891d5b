//! The SQLite specifics of the queues (apalis-sqlite 1.0, vendored, in the store's own file):
//! storage configuration, the multi-row push, and our vacuum.

use apalis::prelude::TaskBuilder;
use apalis_sqlite::SqliteStorage;
use sqlx::AssertSqlSafe;

use super::{
    backend::{MISSED_HEARTBEATS, QueueDepth, QueueError, QueueSettings, VACUUM_BATCH},
    jobs::Job,
};
use crate::{
    config::StoreKind,
    store::{SqliteQuery, batch::rows_sql},
};

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

/// Pushes jobs in one statement (a held id is skipped); answers how many were new.
pub(super) async fn push<J: Job>(
    pool: &sqlx::SqlitePool,
    settings: &QueueSettings,
    jobs: &[J],
) -> Result<u64, QueueError> {
    let query = sqlx::query(AssertSqlSafe(push_sql(jobs.len())));
    Ok(bind_push(query, settings, jobs)?
        .execute(pool)
        .await?
        .rows_affected())
}

/// The statement that writes `count` jobs into the embedded (SQLite) queue, with its
/// values bound by [`bind_push`]. The embedded submit runs it in the
/// transaction that stores the rows the jobs refer to, so both commit together; call
/// `Queues::wake` once that transaction has committed. Empty for no jobs.
///
/// This is apalis-sqlite's push (`queries/task/sink.sql` and `push_tasks` of
/// apalis-sqlite 1.0, vendored: the same columns, values and encoding) as one multi-row
/// statement: apalis inserts row by row, and each row is a round trip on the store's
/// single writer connection while every other write waits. A job whose id the queue
/// already holds is skipped (`ON CONFLICT DO NOTHING`, any constraint), which makes the
/// push idempotent (see `Queues::push_many`). Every test that runs a task on the
/// embedded stack has apalis's own workers consume rows written here.
pub fn push_sql(count: usize) -> String {
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

/// Binds the values of [`push_sql`], after whatever `query` bound before.
pub fn bind_push<'q, J: Job>(
    mut query: SqliteQuery<'q>,
    settings: &QueueSettings,
    jobs: &[J],
) -> Result<SqliteQuery<'q>, serde_json::Error> {
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
            .bind(settings.max_attempts as i64)
            .bind(run_at)
            .bind(metadata.clone());
    }
    Ok(query)
}

/// Deletes a batch of acknowledged jobs of one queue: `$1` the queue, `$2` the batch size.
pub const VACUUM_SQL: &str = "DELETE FROM Jobs WHERE ROWID IN (
     SELECT ROWID FROM Jobs WHERE job_type = $1 AND (status IN ('Done', 'Killed')
         OR (status = 'Failed' AND attempts >= max_attempts))
     LIMIT $2)";

/// Counts one queue's (`$1`) waiting, running and scheduled jobs.
pub const DEPTH_SQL: &str = "SELECT
     COALESCE(SUM(status = 'Pending'), 0),
     COALESCE(SUM(status IN ('Queued', 'Running')), 0),
     COALESCE(SUM(status = 'Failed' AND attempts < max_attempts), 0)
 FROM Jobs WHERE job_type = $1 AND status IN ('Pending', 'Queued', 'Running', 'Failed')";

/// Deletes up to [`VACUUM_BATCH`] acknowledged jobs of a queue (see [`super::vacuum`]).
pub(super) async fn vacuum_batch(pool: &sqlx::SqlitePool, queue: &str) -> Result<u64, QueueError> {
    Ok(sqlx::query(VACUUM_SQL)
        .bind(queue)
        .bind(VACUUM_BATCH as i64)
        .execute(pool)
        .await?
        .rows_affected())
}

/// The depth of one queue, from apalis-sqlite's `Jobs` table (indexed by type and status).
pub(super) async fn depth(pool: &sqlx::SqlitePool, queue: &str) -> Result<QueueDepth, QueueError> {
    let (waiting, running, scheduled): (i64, i64, i64) = sqlx::query_as(DEPTH_SQL)
        .bind(queue)
        .fetch_one(pool)
        .await?;
    Ok(QueueDepth {
        waiting: waiting as u64,
        running: running as u64,
        scheduled: scheduled as u64,
    })
}
