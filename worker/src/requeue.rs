//! The re-queue sweep: the store is the source of truth for what must run. Every
//! [`SWEEP_EVERY`], one process (see [`recovery::try_lock_sweep`]) pushes again
//!
//! - every task and chat message still `pending` a moment after it was stored, and
//! - every task `processing` whose attempt has not written for [`STALE_AFTER`] (its worker
//!   died, and the queue may have lost its job with it),
//!
//! whatever lost their job: Redis restarted without its data, a push that failed while Redis
//! was down (the API accepts runs then), an API that died between its insert and its push.
//! Pushes are idempotent while the queue holds a job, so a row whose job is only waiting its
//! turn is left as it is; claims are idempotent too, so a job delivered twice runs once per
//! attempt and stores one result.

use std::time::Duration;

use shared::{
    queue::{AnswerMessage, Job, QueueError, Queues, RunWorkflow},
    store::{
        Db, StoreError, now_ms,
        recovery::{self, Page},
        tasks,
    },
};
use uuid::Uuid;

/// How often the sweep runs: with [`PENDING_GRACE`], an accepted run whose job was lost is
/// queued again within about 3 s of the queue being reachable.
pub const SWEEP_EVERY: Duration = Duration::from_secs(2);
/// A row younger than this is left to the API that is pushing it.
const PENDING_GRACE: Duration = Duration::from_secs(1);
/// A run that has not written (progress or heartbeat, every 2 s) for this long has lost its
/// worker. Pushing it is a no-op while the queue still holds its job (apalis hands a dead
/// worker's jobs on by itself); it matters when the queue lost the job too.
pub const STALE_AFTER: Duration = Duration::from_secs(15);
/// Rows pushed per statement or script call.
const PAGE: i64 = 500;
/// Most pages per sweep and kind: bounds one sweep's work behind a huge backlog.
const MAX_PAGES: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// What one sweep pushed back onto the queues.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Requeued {
    pub tasks: u64,
    pub messages: u64,
    pub stale: u64,
}

/// Runs the sweep every [`SWEEP_EVERY`], for ever; spawn it.
pub async fn run(db: Db, queues: Queues) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match sweep(&db, &queues).await {
            Ok(Some(requeued)) if requeued != Requeued::default() => {
                tracing::warn!(?requeued, "re-queued runs and messages whose job was lost");
                for (queue, reason, n) in [
                    ("workflow", "lost_job", requeued.tasks),
                    ("workflow", "stale", requeued.stale),
                    ("chat", "lost_job", requeued.messages),
                ] {
                    metrics::counter!(shared::metrics::REQUEUED, "queue" => queue, "reason" => reason)
                        .increment(n);
                }
            }
            Ok(_) => {}
            // The store or the queue is down: the next round tries again.
            Err(error) => tracing::debug!(%error, "re-queue sweep skipped"),
        }
    }
}

/// One sweep, if this process gets the lock (`None` when another one holds it).
pub async fn sweep(db: &Db, queues: &Queues) -> Result<Option<Requeued>, SweepError> {
    let Some(_lock) = recovery::try_lock_sweep(db).await? else {
        return Ok(None);
    };
    let now = now_ms();
    let created_before = now - PENDING_GRACE.as_millis() as i64;
    let tasks = push_pending(db, queues, created_before, recovery::pending_tasks, |id| {
        RunWorkflow::untraced(id)
    })
    .await?;
    let messages = push_pending(
        db,
        queues,
        created_before,
        recovery::pending_messages,
        AnswerMessage::untraced,
    )
    .await?;
    let stale = requeue_stale(db, queues, now).await?;
    Ok(Some(Requeued {
        tasks,
        messages,
        stale,
    }))
}

/// Pushes the pending rows of one kind, page by page, oldest first; answers how many the
/// queue did not hold. Stops at a page the queue held entirely: what is lost is either all
/// of a backlog (a queue that lost its data) or a few rows as old as the outage, and a row
/// behind a queued backlog is pushed at the latest when the backlog ahead of it has started.
async fn push_pending<J: Job>(
    db: &Db,
    queues: &Queues,
    created_before: i64,
    list: impl AsyncFn(&Db, Page) -> Result<Vec<(i64, Uuid)>, StoreError>,
    job: impl Fn(Uuid) -> J,
) -> Result<u64, SweepError> {
    let mut page = Page {
        created_before,
        after: None,
        limit: PAGE,
    };
    let mut added = 0;
    for _ in 0..MAX_PAGES {
        let rows = list(db, page).await?;
        let Some(&last) = rows.last() else { break };
        let full = rows.len() as i64 == PAGE;
        let new = queues
            .push_many(rows.into_iter().map(|(_, id)| job(id)).collect())
            .await?;
        added += new;
        if new == 0 || !full {
            break;
        }
        page.after = Some(last);
    }
    Ok(added)
}

/// Pushes again the runs whose worker stopped writing; the attempt counter still bounds
/// them. Each is marked (its `updated_at` bumped) so it is pushed once per [`STALE_AFTER`].
async fn requeue_stale(db: &Db, queues: &Queues, now: i64) -> Result<u64, SweepError> {
    let stale =
        tasks::claim_stale_tasks(db, now - STALE_AFTER.as_millis() as i64, now, PAGE).await?;
    if stale.is_empty() {
        return Ok(0);
    }
    let jobs = stale
        .iter()
        .map(|&task_id| RunWorkflow::untraced(task_id))
        .collect();
    Ok(queues.push_many(jobs).await?)
}
