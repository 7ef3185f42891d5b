//! Task submission, group-committed: a burst of run requests is stored with one multi-row
//! insert and queued with one push (see [`shared::store::batch`]), then each request gets its
//! answer.

use shared::{
    queue::{Queues, RunWorkflow},
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
            tasks::insert_tasks(&db, &new).await?;
            let pending: Vec<&NewTask> =
                new.iter().filter(|t| t.status == status::PENDING).collect();
            let jobs = pending
                .iter()
                .map(|t| RunWorkflow { task_id: t.id })
                .collect();
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
