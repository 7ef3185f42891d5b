//! WAL checkpoints of the embedded store, on a connection of their own. Left to SQLite, the
//! writer checkpoints inside whichever commit crosses 1,000 WAL pages: that commit then copies
//! the pages into the database file and (with `synchronous = NORMAL`) waits for two fsyncs,
//! while every other write queues behind it. A passive checkpoint from another connection
//! runs beside the writer instead; the writer's own checkpoint remains as a backstop.

use std::time::Duration;

use sqlx::SqlitePool;
use tokio::task::JoinHandle;

/// How often the checkpointer copies committed pages into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// WAL pages after which the writer checkpoints by itself (should the checkpointer fall
/// behind): about 40 MiB.
pub(super) const WRITER_CHECKPOINT_PAGES: u32 = 10_000;

/// The background checkpoint loop; it stops when the store is dropped.
#[derive(Debug)]
pub struct Checkpointer {
    task: JoinHandle<()>,
}

impl Checkpointer {
    /// Starts checkpointing through `pool` (one connection that may write).
    pub(super) fn spawn(pool: SqlitePool) -> Self {
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // PASSIVE never waits for readers or the writer; what it cannot copy now, the
                // next round does.
                if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&pool)
                    .await
                {
                    tracing::warn!(%error, "WAL checkpoint failed");
                }
            }
        });
        Self { task }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
