//! Connecting the three seams a process stands on: store, queues and signals, chosen by
//! configuration (Postgres + Redis, or SQLite + in-process).

use crate::{
    config::Config,
    queue::{QueueBackend, QueueError, QueueSettings, Queues, connect_redis},
    signals::{SignalError, Signals},
    store::{Db, StoreError},
};

/// Why a process could not connect its backends (it then exits with this line).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot open the store ({kind:?}): {source}")]
    Store {
        kind: crate::config::StoreKind,
        source: StoreError,
    },
    #[error("cannot connect to REDIS_URL: {0}")]
    Queue(#[from] QueueError),
    #[error("cannot subscribe on REDIS_URL: {0}")]
    Signals(#[from] SignalError),
    #[error(
        "REDIS_URL is required with a Postgres DATABASE_URL (the embedded queue lives in SQLite)"
    )]
    RedisRequired,
}

/// The connected backends of one process.
#[derive(Clone)]
pub struct Backends {
    pub db: Db,
    pub signals: Signals,
    pub queues: Queues,
}

impl Backends {
    /// Connects to the store (applying migrations), the queue backend and the signal bus.
    pub async fn connect(config: &Config) -> Result<Self, BackendError> {
        let db = Db::connect(config)
            .await
            .map_err(|source| BackendError::Store {
                kind: config.store_kind(),
                source,
            })?;
        let (backend, signals) = match &config.redis_url {
            Some(url) => {
                let conn = connect_redis(url).await?;
                let signals = Signals::redis(url).await?;
                (QueueBackend::Redis(conn), signals)
            }
            None => {
                let pool = db.as_sqlite().cloned().ok_or(BackendError::RedisRequired)?;
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
