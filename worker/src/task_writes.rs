//! The worker's hot-path writes to the tasks table, group-committed across the process's
//! concurrent runs.

use std::collections::{HashMap, HashSet};

use shared::store::{
    Db, StoreError,
    batch::Batcher,
    now_ms,
    tasks::{self, FinishedTask, TaskToRun},
};
use uuid::Uuid;

/// A worker's claims and final writes, group-committed across its concurrent runs (see
/// [`shared::store::batch`]): under load, one statement claims or finishes a whole burst of tasks.
#[derive(Clone)]
pub struct TaskWrites {
    starts: Batcher<Uuid, Option<TaskToRun>>,
    finishes: Batcher<FinishedTask, bool>,
}

impl TaskWrites {
    /// Starts the batch writers (on the current tokio runtime).
    pub fn new(db: Db) -> Self {
        let starts = Batcher::spawn("start_attempts", {
            let db = db.clone();
            move |ids: Vec<Uuid>| {
                let db = db.clone();
                async move {
                    let mut unique = ids.clone();
                    unique.sort_unstable();
                    unique.dedup();
                    let mut claimed: HashMap<Uuid, TaskToRun> =
                        tasks::start_attempts(&db, &unique, now_ms())
                            .await?
                            .into_iter()
                            .map(|task| (task.id, task))
                            .collect();
                    // A task delivered twice in one burst is claimed once; the copy is dropped.
                    Ok(ids.iter().map(|id| claimed.remove(id)).collect())
                }
            }
        });
        let finishes = Batcher::spawn("finish_tasks", move |tasks: Vec<FinishedTask>| {
            let db = db.clone();
            async move {
                let owned: HashSet<(Uuid, i32)> = tasks::finish_tasks(&db, &tasks)
                    .await?
                    .into_iter()
                    .collect();
                Ok(tasks
                    .iter()
                    .map(|t| owned.contains(&(t.id, t.attempt)))
                    .collect())
            }
        });
        Self { starts, finishes }
    }

    /// [`tasks::start_attempt`], batched.
    pub async fn start_attempt(&self, id: Uuid) -> Result<Option<TaskToRun>, StoreError> {
        self.starts.submit(id).await
    }

    /// [`tasks::finish_task`], batched.
    pub async fn finish(&self, task: FinishedTask) -> Result<bool, StoreError> {
        self.finishes.submit(task).await
    }
}
