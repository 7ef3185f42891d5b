//! The tasks this process queued recently: their owners and, once they finish, their
//! outcomes. A client usually asks for the result right after the run (`result?wait=`); for
//! these tasks the answer needs no read of the store. The outcome is recorded by the signal
//! bus's task outcome observer, which runs before the outcome reaches any subscriber
//! (`Signals::observe_task_done`), so a result request that subscribes first and then looks
//! here never misses an outcome: it is either recorded already or still on its way.

use std::sync::Arc;

use quick_cache::{Weighter, sync::Cache};
use uuid::Uuid;

/// Weight (about bytes) of owners and outcomes remembered per process.
const CAPACITY: u64 = 32 << 20;

#[derive(Clone)]
pub struct RecentTask {
    /// The account the task belongs to; `None` for an anonymous run.
    pub owner: Option<Uuid>,
    /// The `task:<id>:done` payload, once the task finished.
    pub outcome: Option<Arc<str>>,
}

#[derive(Clone)]
struct BySize;

impl Weighter<Uuid, RecentTask> for BySize {
    fn weight(&self, _: &Uuid, task: &RecentTask) -> u64 {
        64 + task.outcome.as_ref().map_or(0, |o| o.len() as u64)
    }
}

pub struct RecentTasks {
    tasks: Cache<Uuid, RecentTask, BySize>,
}

impl Default for RecentTasks {
    fn default() -> Self {
        Self {
            tasks: Cache::with_weighter(100_000, CAPACITY, BySize),
        }
    }
}

impl RecentTasks {
    /// Records a task about to be queued. Called before it is stored, so that its outcome,
    /// which may come a millisecond later, finds it.
    pub fn remember(&self, id: Uuid, owner: Option<Uuid>) {
        let task = RecentTask {
            owner,
            outcome: None,
        };
        self.tasks.insert(id, task);
    }

    /// Forgets a task that was not queued after all.
    pub fn forget(&self, id: Uuid) {
        self.tasks.remove(&id);
    }

    /// Records the outcome of a task, if it is one of ours.
    pub fn finished(&self, id: Uuid, outcome: &Arc<str>) {
        if let Some(mut task) = self.tasks.get(&id) {
            task.outcome = Some(outcome.clone());
            self.tasks.insert(id, task);
        }
    }

    /// A recently queued task, or `None` if this process does not know it.
    pub fn get(&self, id: Uuid) -> Option<RecentTask> {
        self.tasks.get(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_recorded_for_remembered_tasks_only() {
        let recent = RecentTasks::default();
        let (ours, theirs, owner) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        recent.remember(ours, Some(owner));
        let outcome: Arc<str> = r#"{"status":"succeeded","outputs":{}}"#.into();
        recent.finished(ours, &outcome);
        recent.finished(theirs, &outcome);
        let task = recent.get(ours).unwrap();
        assert_eq!(task.owner, Some(owner));
        assert_eq!(task.outcome.as_deref(), Some(&*outcome));
        assert!(recent.get(theirs).is_none());
        recent.forget(ours);
        assert!(recent.get(ours).is_none());
    }
}
