use std::time::{SystemTime, UNIX_EPOCH};

use apalis_core::{task::Task, worker::context::WorkerContext};
use sqlx::Executor;

use crate::{Error, config::Config, from_row::SqliteTaskRow};

const FETCH_NEXT: &str = include_str!("../../queries/backend/fetch_next.sql");

/// Fetch the next batch of tasks from the sqlite backend
pub async fn fetch_next<'a, E>(
    executor: E,
    config: &Config,
    worker: &WorkerContext,
) -> Result<Vec<Task<Vec<u8>>>, Error>
where
    E: Executor<'a, Database = sqlx::Sqlite>,
{
    let job_type = config.queue.as_ref();
    let worker = worker.name();
    let now: i64 = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // llmops patch: the limit is written into the statement instead of bound. SQLite
    // (3.51, as bundled by libsqlite3-sys) marks a statement whose `LIMIT` is a bound
    // parameter for re-preparation at every new binding, so this statement, run at every
    // poll of every worker, was compiled anew each time. The batch size is fixed per
    // backend, so the text stays the same and the prepared statement is reused.
    let sql = FETCH_NEXT
        .replace("?3", &config.batch_size.to_string())
        .replace("?4", "?3");
    sqlx::query_as::<_, SqliteTaskRow>(sqlx::AssertSqlSafe(sql))
        .bind(worker)
        .bind(job_type)
        .bind(now)
        .fetch_all(executor)
        .await?
        .into_iter()
        .map(|r| r.try_into())
        .collect()
}
