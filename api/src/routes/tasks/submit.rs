//! Task submission, group-committed: a burst of run requests is stored with one multi-row
//! insert and queued with one push (see [`shared::store::batch`]), then each request gets its
//! answer. On the embedded store the tasks and their jobs commit in one transaction; with
//! Postgres and Redis they are two writes, and the store is the one that counts: a task
//! stored `pending` is accepted even when the push fails (Redis down, or this process dies
//! right after the insert), because the workers' re-queue sweep pushes every pending task
//! the queue lost.

use shared::{
    queue::{Job, QueueBackend, Queues, RunWorkflow},
    store::{
        Db, StoreError,
        batch::Batcher,
        tasks::{self, NewTask, status},
    },
};

/// Stores a new task and, when it is `pending`, queues it.
pub type TaskSubmitter = Batcher<NewTask, ()>;

pub fn submitter(db: Db, queues: Queues) -> TaskSubmitter {
    Batcher::spawn("submit_tasks", move |new: Vec<NewTask>| {
        let (db, queues) = (db.clone(), queues.clone());
        async move {
            let pending: Vec<&NewTask> =
                new.iter().filter(|t| t.status == status::PENDING).collect();
            let jobs = pending
                .iter()
                .map(|t| RunWorkflow { task_id: t.id })
                .collect();
            if let (Db::Sqlite { write, .. }, QueueBackend::Sqlite(_)) = (&db, queues.backend()) {
                return submit_embedded(write, &queues, &new, jobs).await;
            }
            tasks::insert_tasks(&db, &new).await?;
            if let Err(error) = queues.push_many(jobs).await {
                // Stored, so accepted: the re-queue sweep pushes them once the queue is back.
                tracing::warn!(%error, count = pending.len(), "stored tasks not queued yet");
            }
            Ok(vec![(); new.len()])
        }
    })
}

/// The tasks and their jobs in one SQLite transaction: all stored and queued, or nothing.
///
/// The transaction goes to the connection as one command (`BEGIN IMMEDIATE`, the tasks' insert,
/// the jobs' insert, `COMMIT`) rather than four: every statement is a round trip to the
/// connection's thread, and the store's single writer is held, every other write waiting,
/// for all of them. A failing statement ends the command before `COMMIT`; the `ROLLBACK` sent
/// then leaves nothing behind (tested with a trigger that refuses jobs).
async fn submit_embedded(
    write: &sqlx::SqlitePool,
    queues: &Queues,
    new: &[NewTask],
    jobs: Vec<RunWorkflow>,
) -> Result<Vec<()>, StoreError> {
    let after = match Queues::sqlite_push_sql(jobs.len()) {
        push if push.is_empty() => "COMMIT".to_owned(),
        push => format!("{push};\nCOMMIT"),
    };
    let query = tasks::insert_tasks_sqlite_within(new, "BEGIN IMMEDIATE;", &after);
    let query = queues
        .bind_sqlite_push(query, &jobs)
        .map_err(|e| StoreError::Batch(e.to_string()))?;
    let mut conn = write.acquire().await?;
    if let Err(error) = query.execute(&mut *conn).await {
        if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
            // Either no transaction was open (BEGIN failed), or the connection is broken:
            // never hand a connection that may be inside a transaction back to the pool.
            conn.close_on_drop();
        }
        return Err(error.into());
    }
    drop(conn);
    if let Err(error) = queues.wake::<RunWorkflow>().await {
        // The jobs are committed; the workers' fallback poll finds them.
        tracing::warn!(%error, queue = RunWorkflow::QUEUE, "could not wake the workers");
    }
    Ok(vec![(); new.len()])
}
