//! Connecting the three seams a process stands on: store, queues and signals, chosen by
//! configuration (Postgres + Redis, or SQLite + in-process).

use crate::{
    config::Config,
    queue::{QueueBackend, QueueSettings, Queues, connect_redis},
    signals::Signals,
    store::Db,
};

/// The connected backends of one process.
#[derive(Clone)]
pub struct Backends {
    pub db: Db,
    pub signals: Signals,
    pub queues: Queues,
}

impl Backends {
    /// Connects to the store (applying migrations), the queue backend and the signal bus.
    pub async fn connect(config: &Config) -> anyhow::Result<Self> {
        use anyhow::Context;
        let db = Db::connect(config)
            .await
            .with_context(|| format!("cannot open the store ({:?})", config.store_kind()))?;
        let (backend, signals) = match &config.redis_url {
            Some(url) => {
                let conn = connect_redis(url)
                    .await
                    .context("cannot connect to REDIS_URL")?;
                let signals = Signals::redis(url)
                    .await
                    .context("cannot subscribe on REDIS_URL")?;
                (QueueBackend::Redis(conn), signals)
            }
            None => {
                let pool = db.as_sqlite().cloned().context(
                    "REDIS_URL is required with a Postgres DATABASE_URL (the embedded queue lives in SQLite)",
                )?;
                (QueueBackend::Sqlite(pool), Signals::in_process())
            }
        };
        let settings = QueueSettings {
            max_attempts: config.task_max_attempts,
            heartbeat: config.worker_heartbeat(),
            fetch_batch: crate::queue::fetch_batch(config.worker_concurrency),
        };
        Ok(Self {
            db,
            queues: Queues::new(backend, signals.clone(), settings),
            signals,
        })
    }
}
