//! The store: Postgres or SQLite, chosen at run time by the URL. One set of SQL (`$N`
//! placeholders, `RETURNING`) runs on whichever pool is active through [`with_pool!`]; each
//! arm type-checks against its own driver. (sqlx's `AnyPool` cannot carry UUIDs or JSON.)

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPool, PgPoolOptions},
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
    },
};

use crate::config::{Config, StoreKind};
use checkpoint::Checkpointer;

pub mod accounts;
pub mod api_keys;
pub mod apps;
pub mod batch;
mod checkpoint;
pub mod conversations;
pub mod interrupt;
pub mod json;
pub mod messages;
pub mod recovery;
pub mod tasks;

/// Our migration bookkeeping table. apalis-sqlite keeps its own in `_sqlx_migrations` in the
/// same file; sharing one table would make each migrator reject the other's entries.
const MIGRATIONS_TABLE: &str = "_llmops_migrations";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A batched write's failure, shared by every caller in the batch.
    #[error(transparent)]
    Shared(Arc<StoreError>),
    /// The batch writer task is gone (the runtime is shutting down).
    #[error("the {0} batch writer has stopped")]
    BatchWriterStopped(&'static str),
    /// A batch's flush answered for a different number of items (a bug in the flush).
    #[error("{name}: {outputs} outputs for {items} items")]
    BatchShape {
        name: &'static str,
        outputs: usize,
        items: usize,
    },
    /// A value could not be encoded for the store (e.g. a queue job on the embedded store).
    #[error("encoding a value for the store: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
}

/// A connection pool on either backend.
#[derive(Clone, Debug)]
pub enum Db {
    Postgres(PgPool),
    /// One writer connection (see [`sqlite_pools`]) and a few readers, which WAL lets run
    /// beside the writer without waiting in its queue.
    Sqlite {
        write: SqlitePool,
        read: SqlitePool,
        /// WAL checkpoints beside the writer (none for an in-memory database).
        checkpointer: Option<Arc<Checkpointer>>,
    },
}

impl Db {
    /// Sets the `llmops_store_pool_connections` gauges from the pools' current state.
    ///
    /// sqlx counts no waiters, so saturation is told by `in_use` reaching `max`: from then on
    /// every further query waits for a connection.
    pub fn record_pool(&self) {
        fn record(pool: &'static str, size: u32, idle: usize, max: u32) {
            let idle = idle as f64;
            let in_use = (f64::from(size) - idle).max(0.0);
            for (state, n) in [("in_use", in_use), ("idle", idle), ("max", f64::from(max))] {
                metrics::gauge!(crate::metrics::STORE_POOL, "pool" => pool, "state" => state)
                    .set(n);
            }
        }
        match self {
            Db::Postgres(pool) => record(
                "main",
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            ),
            Db::Sqlite { write, read, .. } => {
                for (name, pool) in [("write", write), ("read", read)] {
                    let max = pool.options().get_max_connections();
                    record(name, pool.size(), pool.num_idle(), max);
                }
            }
        }
    }
}

/// A query on the embedded store that several modules build together (the embedded submit's
/// tasks and queue jobs).
pub type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

/// Runs the same expression on whichever pool is active (on SQLite, the writer).
#[macro_export]
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Postgres($pool) => $body,
            $crate::store::Db::Sqlite { write: $pool, .. } => $body,
        }
    };
}

/// [`with_pool!`] for a read-only statement: on SQLite it runs on a reader connection.
#[macro_export]
macro_rules! with_read_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Postgres($pool) => $body,
            $crate::store::Db::Sqlite { read: $pool, .. } => $body,
        }
    };
}

impl Db {
    /// Connects to the configured store (creating the SQLite file and its directory if needed)
    /// and applies the migrations.
    pub async fn connect(config: &Config) -> Result<Self, StoreError> {
        let url = config.database_url();
        let db = match config.store_kind() {
            StoreKind::Postgres => Db::Postgres(
                PgPoolOptions::new()
                    .max_connections(config.db_pool_size)
                    .acquire_timeout(Duration::from_secs(5))
                    .connect_with(
                        PgConnectOptions::from_str(&url)?.statement_cache_capacity(STATEMENT_CACHE),
                    )
                    .await?,
            ),
            StoreKind::Sqlite => {
                let options = SqliteConnectOptions::from_str(&url)?;
                if let Some(dir) = options.get_filename().parent()
                    && !dir.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
                let (write, read, checkpoint) = sqlite_pools(options).await?;
                Db::Sqlite {
                    write,
                    read,
                    checkpointer: Some(Arc::new(Checkpointer::spawn(checkpoint))),
                }
            }
        };
        db.migrate().await?;
        Ok(db)
    }

    /// Applies our migrations (and, on SQLite, the embedded queue's tables).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Db::Postgres(pool) => migrator(StoreKind::Postgres).run(pool).await?,
            Db::Sqlite { write: pool, .. } => {
                apalis_sqlite::SqliteStorage::setup(pool)
                    .await
                    .map_err(|e| match e {
                        apalis_sqlite::Error::Database(e) => StoreError::Sqlx(e),
                        other => StoreError::Sqlx(sqlx::Error::Protocol(other.to_string())),
                    })?;
                restore_writer_settings(pool).await?;
                migrator(StoreKind::Sqlite).run(pool).await?;
                steer_queue_ack_plan(pool).await?;
            }
        }
        Ok(())
    }

    /// Whether the store answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))?;
        Ok(())
    }

    pub fn kind(&self) -> StoreKind {
        match self {
            Db::Postgres(_) => StoreKind::Postgres,
            Db::Sqlite { .. } => StoreKind::Sqlite,
        }
    }

    /// A store on one SQLite pool for both reads and writes (an in-memory database, whose
    /// connections would each be a different database).
    pub fn sqlite_single(pool: SqlitePool) -> Self {
        Db::Sqlite {
            write: pool.clone(),
            read: pool,
            checkpointer: None,
        }
    }

    /// The SQLite writer pool, which the embedded queue shares.
    pub fn as_sqlite(&self) -> Option<&SqlitePool> {
        match self {
            Db::Sqlite { write, .. } => Some(write),
            Db::Postgres(_) => None,
        }
    }
}

/// Prepared statements each connection keeps: the batched writes have one text per batch size
/// (up to [`batch::MAX_BATCH`]), beside everything else.
const STATEMENT_CACHE: usize = 512;

/// Page cache per connection, in KiB (SQLite's `-N` form). SQLite scans the writer's whole page
/// cache hash at every commit, so a cache much larger than the working set costs CPU on each
/// write; 8 MiB holds the hot pages (the tasks' tail, the indexes, the queue).
const SQLITE_CACHE_KIB: u32 = 8 * 1024;

/// Readers beside the writer: point reads are short, so a few serve many requests.
const SQLITE_READERS: u32 = 4;

/// The writer (one connection), the readers, and the checkpointer's connection. SQLite has a
/// single writer: with several writing connections, one that finds the lock taken sleeps in
/// its busy handler (1 ms, 2 ms, 5 ms, ...) instead of queueing, and throughput collapsed. One connection queues every write
/// fairly in the pool instead, and the batched writes keep the statements few. Readers never
/// take the write lock in WAL mode.
async fn sqlite_pools(
    options: SqliteConnectOptions,
) -> Result<(SqlitePool, SqlitePool, SqlitePool), sqlx::Error> {
    let options = options
        .statement_cache_capacity(STATEMENT_CACHE)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // NORMAL is durable against process crashes in WAL mode and far cheaper than FULL.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .pragma("cache_size", format!("-{SQLITE_CACHE_KIB}"))
        .foreign_keys(true);
    // An in-process connection cannot go stale the way a socket can: the default ping before
    // every acquire was one more round trip to the connection's thread while holding the writer.
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.clone().pragma(
            "wal_autocheckpoint",
            checkpoint::WRITER_CHECKPOINT_PAGES.to_string(),
        ))
        .await?;
    let checkpoint = SqlitePoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .connect_with(options.clone())
        .await?;
    let read = SqlitePoolOptions::new()
        .max_connections(SQLITE_READERS)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options.create_if_missing(false).read_only(true))
        .await?;
    Ok((write, read, checkpoint))
}

/// apalis-sqlite's `setup` switches the connection it runs on (our one writer) to
/// `synchronous = OFF` and a 64,000-page cache. OFF gives up durability against an operating
/// system crash, and the huge cache made every commit scan a hash of tens of thousands of pages
/// (17 % of the writer thread's CPU). Put our connection settings back.
async fn restore_writer_settings(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    sqlx::query("PRAGMA synchronous = NORMAL")
        .execute(pool)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "PRAGMA cache_size = -{SQLITE_CACHE_KIB}"
    )))
    .execute(pool)
    .await?;
    Ok(())
}

/// apalis-sqlite acknowledges jobs with `UPDATE Jobs ... FROM json_each(ids) WHERE Jobs.id =
/// j.task_id AND Jobs.lock_by = ?`. Without statistics, SQLite drives that join from the
/// `lock_by` index, i.e. from every job the worker ever held, so each ack cost grew with the
/// table (embedded throughput fell from 2,400 to 600 runs/s within seconds). A statistics row
/// saying that `lock_by` is not selective (one worker holds everything) makes it look jobs up
/// by id instead. Rewritten at every start-up, after apalis's own `PRAGMA optimize`.
async fn steer_queue_ack_plan(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("ANALYZE sqlite_schema")
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM sqlite_stat1 WHERE tbl = 'Jobs' AND idx = 'LIdx'")
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES ('Jobs', 'LIdx', '1000000 1000000')",
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    // Loads the statistics into the connection.
    sqlx::query("ANALYZE sqlite_schema").execute(pool).await?;
    Ok(())
}

fn migrator(kind: StoreKind) -> Migrator {
    let mut m = match kind {
        StoreKind::Postgres => sqlx::migrate!("../migrations/postgres"),
        StoreKind::Sqlite => sqlx::migrate!("../migrations/sqlite"),
    };
    m.dangerous_set_table_name(MIGRATIONS_TABLE);
    m
}

/// The store's time unit is the one clock's.
pub use crate::clock::now_ms;
