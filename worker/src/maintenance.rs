//! Housekeeping every worker process runs beside its queues: task retention, the re-queue
//! sweep ([`crate::requeue`]), failing chat answers nobody will finish, and deleting
//! acknowledged jobs from the queues.

use std::time::Duration;

use shared::{
    queue::{self, AnswerMessage, Job, Queues, RunWorkflow},
    store::{Db, StoreError, messages, now_ms, tasks},
};

use crate::requeue;

/// Terminated tasks deleted per statement: small, so no statement holds up running work.
const RETENTION_BATCH: i64 = 500;
/// See [`delete_expired`]: the pause after each batch, in multiples of the batch's time.
const RETENTION_PAUSE_FACTOR: u32 = 9;

/// How often acknowledged jobs are deleted from the queues: often enough that a busy queue
/// holds seconds of finished jobs, not hours.
const VACUUM_EVERY: Duration = Duration::from_secs(10);

/// The error a chat answer gets when its worker stopped and no delivery finished it.
pub const INTERRUPTED_ANSWER: &str = "The answer was interrupted: the worker generating it stopped";

/// What the housekeeping needs from the process configuration.
pub struct Settings {
    pub retention_days: u64,
    /// An answer `streaming` this long without a write lost its worker for good. Answers do
    /// not heart-beat, so this is well past the longest an attempt can take.
    pub stale_answer_after: Duration,
}

impl Settings {
    pub fn from_config(config: &shared::config::Config) -> Self {
        Self {
            retention_days: config.task_retention_days,
            // An attempt is at most the answer and the summary call, each bounded by the
            // LLM timeout; leave room for redeliveries too.
            stale_answer_after: Duration::from_secs((4 * config.llm_timeout_secs).max(15 * 60)),
        }
    }
}

/// Runs forever; spawn it.
pub async fn run(db: Db, queues: Queues, settings: Settings) {
    tokio::join!(
        vacuum_queues(&queues),
        tend_tasks(&db, &settings),
        requeue::run(db.clone(), queues.clone()),
    );
}

/// Retention and failing abandoned answers, every 30 s.
async fn tend_tasks(db: &Db, settings: &Settings) {
    let retention_days = settings.retention_days;
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if retention_days > 0
            && let Err(e) = delete_expired(db, retention_days).await
        {
            tracing::warn!(error = %e, "task retention failed");
        }
        let now = now_ms();
        let stale = now - settings.stale_answer_after.as_millis() as i64;
        match messages::fail_stale_answers(db, stale, INTERRUPTED_ANSWER, now).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(count = n, "failed chat answers whose worker stopped"),
            Err(e) => tracing::warn!(error = %e, "failing stale chat answers failed"),
        }
    }
}

/// Deletes terminated tasks older than `days`, batch by batch.
pub async fn delete_expired(db: &Db, days: u64) -> Result<u64, StoreError> {
    let before = now_ms() - (days as i64) * 24 * 3600 * 1000;
    let mut total = 0;
    loop {
        let started = std::time::Instant::now();
        let n = tasks::delete_finished_before(db, before, RETENTION_BATCH).await?;
        total += n;
        if n < RETENTION_BATCH as u64 {
            break;
        }
        // A backlog (the first day of retention on a big store) is deleted at a tenth of the
        // store's pace at most: the time a batch took, queueing for the writer included, is
        // given back nine times over, so concurrent runs keep their latency.
        tokio::time::sleep(started.elapsed() * RETENTION_PAUSE_FACTOR).await;
    }
    if total > 0 {
        tracing::info!(deleted = total, days, "deleted expired tasks");
    }
    Ok(total)
}

/// Deletes acknowledged jobs from both queues every [`VACUUM_EVERY`].
async fn vacuum_queues(queues: &Queues) {
    let mut tick = tokio::time::interval(VACUUM_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for name in [RunWorkflow::QUEUE, AnswerMessage::QUEUE] {
            match queue::vacuum(queues.backend(), name).await {
                Ok(0) => {}
                Ok(deleted) => tracing::debug!(queue = name, deleted, "vacuumed finished jobs"),
                Err(e) => tracing::warn!(queue = name, error = %e, "vacuuming the queue failed"),
            }
        }
    }
}
