//! Storing new workflow runs and chat questions and queueing them, behind the store and queue
//! seam: on the embedded store the rows and their jobs commit in one SQLite transaction; with
//! Postgres and Redis they are two writes, and the store is the one that counts: a task or
//! message stored `pending` is accepted even when the push fails (Redis down, or the process
//! dies right after the insert), because the workers' re-queue sweep pushes every pending one
//! the queue lost.

use crate::{
    queue::{self, AnswerMessage, Job, QueueBackend, Queues, RunWorkflow},
    store::{
        Db, SqliteQuery, StoreError,
        messages::{self, NewMessage},
        tasks::{self, NewTask, TaskStatus},
    },
};

/// Stores new tasks and queues the `pending` ones.
pub async fn store_and_queue(db: &Db, queues: &Queues, new: &[NewTask]) -> Result<(), StoreError> {
    let jobs: Vec<RunWorkflow> = new
        .iter()
        .filter(|t| t.status == TaskStatus::Pending)
        .map(|t| RunWorkflow {
            task_id: t.id,
            traceparent: t.traceparent.clone(),
        })
        .collect();
    if let (Db::Sqlite { write, .. }, QueueBackend::Sqlite(_)) = (db, queues.backend()) {
        return store_and_queue_embedded(write, queues, new, jobs).await;
    }
    tasks::insert_tasks(db, new).await?;
    let count = jobs.len();
    if let Err(error) = queues.push_many(jobs).await {
        // Stored, so accepted: the re-queue sweep pushes them once the queue is back.
        tracing::warn!(%error, count, "stored tasks not queued yet");
    }
    Ok(())
}

/// The tasks and their jobs in one SQLite transaction: all stored and queued, or nothing.
///
/// The transaction goes to the connection as one command (`BEGIN IMMEDIATE`, the tasks' insert,
/// the jobs' insert, `COMMIT`) rather than four: every statement is a round trip to the
/// connection's thread, and the store's single writer is held, every other write waiting,
/// for all of them. A failing statement ends the command before `COMMIT`; the `ROLLBACK` sent
/// then leaves nothing behind (tested with a trigger that refuses jobs).
async fn store_and_queue_embedded(
    write: &sqlx::SqlitePool,
    queues: &Queues,
    new: &[NewTask],
    jobs: Vec<RunWorkflow>,
) -> Result<(), StoreError> {
    let after = match queue::sqlite::push_sql(jobs.len()) {
        push if push.is_empty() => "COMMIT".to_owned(),
        push => format!("{push};\nCOMMIT"),
    };
    let query = tasks::insert_tasks_sqlite_within(new, "BEGIN IMMEDIATE;", &after);
    let query = queue::sqlite::bind_push(query, queues.settings(), &jobs)?;
    execute_transaction(write, query).await?;
    wake::<RunWorkflow>(queues).await;
    Ok(())
}

/// Stores a chat question and queues its answer, as [`store_and_queue`] does runs: one SQLite
/// transaction on the embedded store, the store first and then the queue otherwise.
pub async fn store_and_queue_message(
    db: &Db,
    queues: &Queues,
    new: NewMessage<'_>,
    job: AnswerMessage,
) -> Result<(), StoreError> {
    if let (Db::Sqlite { write, .. }, QueueBackend::Sqlite(_)) = (db, queues.backend()) {
        let after = format!("{};\nCOMMIT", queue::sqlite::push_sql(1));
        let query = messages::insert_message_sqlite_within(&new, "BEGIN IMMEDIATE;", &after);
        let query = queue::sqlite::bind_push(query, queues.settings(), &[job])?;
        execute_transaction(write, query).await?;
        wake::<AnswerMessage>(queues).await;
        return Ok(());
    }
    let id = new.id;
    messages::insert_message(db, new).await?;
    if let Err(error) = queues.push(job).await {
        // Stored, so accepted: the re-queue sweep pushes it once the queue is back.
        tracing::warn!(%error, message_id = %id, "stored question not queued yet");
    }
    Ok(())
}

/// Runs a transaction written as one command (`BEGIN IMMEDIATE; ...; COMMIT`) on the writer.
/// A failing statement ends the command before `COMMIT`; the `ROLLBACK` sent then leaves
/// nothing behind.
async fn execute_transaction(
    write: &sqlx::SqlitePool,
    query: SqliteQuery<'_>,
) -> Result<(), StoreError> {
    let mut conn = write.acquire().await?;
    if let Err(error) = query.execute(&mut *conn).await {
        if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
            // Either no transaction was open (BEGIN failed), or the connection is broken:
            // never hand a connection that may be inside a transaction back to the pool.
            conn.close_on_drop();
        }
        return Err(error.into());
    }
    Ok(())
}

/// Wakes the queue's workers once its jobs are committed.
async fn wake<J: Job>(queues: &Queues) {
    if let Err(error) = queues.wake::<J>().await {
        // The jobs are committed; the workers' fallback poll finds them.
        tracing::warn!(%error, queue = J::QUEUE, "could not wake the workers");
    }
}
