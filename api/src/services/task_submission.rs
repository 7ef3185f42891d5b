//! Task submission, group-committed: a burst of run requests is stored with one multi-row
//! insert and queued with one push (see [`shared::store::batch`] and
//! [`shared::submission`]), then each request gets its answer.

use shared::{
    queue::Queues,
    store::{Db, batch::Batcher, tasks::NewTask},
    submission,
};

/// Stores a new task and, when it is `pending`, queues it.
pub type TaskSubmitter = Batcher<NewTask, ()>;

pub fn submitter(db: Db, queues: Queues) -> TaskSubmitter {
    Batcher::spawn("submit_tasks", move |new: Vec<NewTask>| {
        let (db, queues) = (db.clone(), queues.clone());
        async move {
            submission::store_and_queue(&db, &queues, &new).await?;
            Ok(vec![(); new.len()])
        }
    })
}
