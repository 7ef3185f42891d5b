//! Task submission, group-committed: a burst of run requests is stored with one multi-row
//! insert and queued with one push (see [`shared::store::batch`]), then each request gets its
//! answer. On the embedded store the tasks and their jobs commit in one transaction; with
//! Postgres and Redis they are two writes, and a job the queue refuses fails its task.

use shared::{
    queue::{Job, QueueBackend, Queues, RunWorkflow},
    store::{
        Db, StoreError,
        batch::Batcher,
        now_ms,
        tasks::{self, NewTask, status},
    },
    workflow::Report,
};

/// Stores a new task and, when it is `pending`, queues it. Answers whether the task is in
/// its final place: `false` means the queue refused it (the task was then stored `failed`).
pub type TaskSubmitter = Batcher<NewTask, bool>;

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
                tracing::error!(%error, count = pending.len(), "tasks could not be queued");
                // Never leave a task pending that no worker will ever see.
                for task in &pending {
                    fail_unqueued(&db, task).await;
                }
                return Ok(new.iter().map(|t| t.status != status::PENDING).collect());
            }
            Ok(vec![true; new.len()])
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
) -> Result<Vec<bool>, StoreError> {
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
    Ok(vec![true; new.len()])
}

async fn fail_unqueued(db: &Db, task: &NewTask) {
    let report = Report::validation_failed(
        &task.id.to_string(),
        task.inputs.clone(),
        &["The task could not be queued".to_owned()],
        now_ms(),
    );
    let stored: Result<bool, StoreError> = match serde_json::to_value(&report) {
        Ok(report) => tasks::fail_task(db, task.id, &report, now_ms()).await,
        Err(e) => Err(StoreError::Batch(e.to_string())),
    };
    if let Err(error) = stored {
        tracing::error!(task_id = %task.id, %error, "could not mark an unqueued task failed");
    }
}
