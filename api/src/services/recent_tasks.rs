//! The tasks this process queued recently: their owners and, once they finish, their
//! outcomes. A client usually asks for the result right after the run (`result?wait=`); for
//! these tasks the answer needs no read of the store. The outcome is recorded by the signal
//! bus's task outcome observer, which runs before the outcome reaches any subscriber
//! (`Signals::observe_task_done`), so a result request that subscribes first and then looks
//! here never misses an outcome: it is either recorded already or still on its way.
//!
//! A plain poll (`result` without `wait`, every few milliseconds from a FlowGram client) is
//! answered "not finished" from here too, as long as nothing could have been missed: the link
//! to the signal bus has stayed up since the store last saw the task unfinished (or since it
//! was queued), that was less than [`TRUST_UNFINISHED`] ago, and no read of the store has
//! found it finished since (a report read, say: a client that saw the report final must not
//! then be told the result is not ready). So polls cost at most one store read a second per
//! task, and a completion whose signal was lost (its worker killed between its write and its
//! signal) is seen within a second.

use std::{sync::Arc, time::Instant};

use quick_cache::{Weighter, sync::Cache};
use shared::signals::Link;
use tokio::sync::watch;
use uuid::Uuid;

/// How long "unfinished", as last known from the store or the submit, is trusted while no
/// outcome arrives (see the module comment).
pub const TRUST_UNFINISHED: std::time::Duration = std::time::Duration::from_secs(1);

/// Weight (about bytes) of owners and outcomes remembered per process.
const CAPACITY: u64 = 32 << 20;

#[derive(Clone)]
pub struct RecentTask {
    /// The account the task belongs to; `None` for an anonymous run.
    pub owner: Option<Uuid>,
    /// The `task:<id>:done` payload, once the task finished.
    pub outcome: Option<Arc<str>>,
    /// When the task was last known unfinished without a doubt: queued here, or read so from
    /// the store.
    unfinished_at: Instant,
    /// The signal bus connection that was up then ([`Link::connections`]).
    connection: u64,
    /// A read of the store found the task finished before its outcome reached this process.
    finished_in_store: bool,
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
    /// The process's link to the signal bus, which delivers the outcomes.
    link: watch::Receiver<Link>,
}

impl RecentTasks {
    pub fn new(link: watch::Receiver<Link>) -> Self {
        Self {
            tasks: Cache::with_weighter(100_000, CAPACITY, BySize),
            link,
        }
    }

    /// Records a task about to be queued. Called before it is stored, so that its outcome,
    /// which may come a millisecond later, finds it.
    pub fn remember(&self, id: Uuid, owner: Option<Uuid>) {
        let task = RecentTask {
            owner,
            outcome: None,
            unfinished_at: Instant::now(),
            connection: self.link.borrow().connections,
            finished_in_store: false,
        };
        self.tasks.insert(id, task);
    }

    /// Whether `task`, which has no outcome here, is certainly still unfinished: an outcome
    /// would have reached this process (see the module comment).
    pub fn surely_unfinished(&self, task: &RecentTask) -> bool {
        let link = *self.link.borrow();
        task.outcome.is_none()
            && !task.finished_in_store
            && link.up
            && link.connections == task.connection
            && task.unfinished_at.elapsed() < TRUST_UNFINISHED
    }

    /// Records that a read of the store found the task finished: from now on its result is
    /// read from the store until its outcome arrives.
    pub fn store_says_finished(&self, id: Uuid) {
        if let Some(mut task) = self.tasks.get(&id)
            && task.outcome.is_none()
        {
            task.finished_in_store = true;
            self.tasks.insert(id, task);
        }
    }

    /// Records that the store has just shown the task unfinished.
    pub fn store_says_unfinished(&self, id: Uuid) {
        if let Some(mut task) = self.tasks.get(&id)
            && task.outcome.is_none()
        {
            task.unfinished_at = Instant::now();
            task.connection = self.link.borrow().connections;
            self.tasks.insert(id, task);
        }
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
        let (_link, watched) = watch::channel(Link {
            up: true,
            connections: 1,
        });
        let recent = RecentTasks::new(watched);
        let (ours, theirs, owner) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        recent.remember(ours, Some(owner));
        let outcome: Arc<str> = r#"{"status":"succeeded","outputs":{}}"#.into();
        recent.finished(ours, &outcome);
        recent.finished(theirs, &outcome);
        let task = recent.get(ours).unwrap();
        assert_eq!(task.owner, Some(owner));
        assert_eq!(task.outcome.as_deref(), Some(&*outcome));
        assert!(!recent.surely_unfinished(&task));
        assert!(recent.get(theirs).is_none());
        recent.forget(ours);
        assert!(recent.get(ours).is_none());
    }

    #[test]
    fn a_task_is_surely_unfinished_only_while_the_link_stayed_up() {
        let (link, watched) = watch::channel(Link {
            up: true,
            connections: 1,
        });
        let recent = RecentTasks::new(watched);
        let id = Uuid::new_v4();
        recent.remember(id, None);
        assert!(recent.surely_unfinished(&recent.get(id).unwrap()));
        // The subscription dropped: an outcome may be lost, so the store must be read.
        link.send_modify(|l| l.up = false);
        assert!(!recent.surely_unfinished(&recent.get(id).unwrap()));
        // It came back: still not sure, until the store has been read again.
        link.send_modify(|l| {
            l.up = true;
            l.connections += 1;
        });
        assert!(!recent.surely_unfinished(&recent.get(id).unwrap()));
        recent.store_says_unfinished(id);
        assert!(recent.surely_unfinished(&recent.get(id).unwrap()));
        // A report read found it finished: no longer sure, whatever the link says.
        recent.store_says_finished(id);
        assert!(!recent.surely_unfinished(&recent.get(id).unwrap()));
    }
}
