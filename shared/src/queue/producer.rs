//! The producing side of the queues: pushing jobs and waking the workers.

use super::{
    backend::{QueueBackend, QueueDepth, QueueError, QueueSettings},
    jobs::{CHAT_QUEUE, Job, WORKFLOW_QUEUE},
    redis, sqlite,
};
use crate::{redis_conn::retry_once, signals::Signals};

/// The producing side of the queues, held by the API.
#[derive(Clone)]
pub struct Queues {
    backend: QueueBackend,
    signals: Signals,
    settings: QueueSettings,
}

impl Queues {
    pub fn new(backend: QueueBackend, signals: Signals, settings: QueueSettings) -> Self {
        Self {
            backend,
            signals,
            settings,
        }
    }

    pub fn backend(&self) -> &QueueBackend {
        &self.backend
    }

    /// The depth of the `workflow` and `chat` queues, read from the backend, under those names.
    pub async fn depths(&self) -> Result<[(&'static str, QueueDepth); 2], QueueError> {
        let mut out = [
            ("workflow", QueueDepth::default()),
            ("chat", QueueDepth::default()),
        ];
        for (slot, queue) in out.iter_mut().zip([WORKFLOW_QUEUE, CHAT_QUEUE]) {
            slot.1 = match &self.backend {
                QueueBackend::Redis(conn) => redis::depth(conn, queue).await?,
                QueueBackend::Sqlite(pool) => sqlite::depth(pool, queue).await?,
            };
        }
        Ok(out)
    }

    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    pub fn signals(&self) -> &Signals {
        &self.signals
    }

    /// Pushes a job and wakes idle workers of its queue.
    pub async fn push<J: Job>(&self, job: J) -> Result<(), QueueError> {
        self.push_many(vec![job]).await.map(|_| ())
    }

    /// Pushes jobs in one batch (one statement on SQLite, one script call on Redis) and wakes
    /// idle workers once.
    ///
    /// Idempotent while the queue holds a job: every job's queue id is derived from the id of
    /// the row it runs ([`Job::queue_id`]), and a push of an id the queue already holds is
    /// ignored. So pushing again whatever the store says must run (see the worker's
    /// re-queue sweep) never queues a job twice. Answers how many jobs were new.
    pub async fn push_many<J: Job>(&self, jobs: Vec<J>) -> Result<u64, QueueError> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let added = match &self.backend {
            QueueBackend::Redis(conn) => redis::push(conn, &self.settings, &jobs).await?,
            QueueBackend::Sqlite(pool) => {
                let added = sqlite::push(pool, &self.settings, &jobs).await?;
                self.wake::<J>().await?;
                added
            }
        };
        Ok(added)
    }

    /// Wakes idle workers of a queue (after the commit of [`sqlite::push_sql`]).
    pub async fn wake<J: Job>(&self) -> Result<(), QueueError> {
        self.signals.publish_queue_available(J::QUEUE).await?;
        Ok(())
    }

    /// Whether the queue backend answers.
    pub async fn ping(&self) -> Result<(), QueueError> {
        match &self.backend {
            QueueBackend::Redis(conn) => {
                retry_once(|| {
                    let mut conn = conn.clone();
                    async move { ::redis::cmd("PING").query_async::<String>(&mut conn).await }
                })
                .await?;
            }
            QueueBackend::Sqlite(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }
}
