//! What the re-queue sweep reads: the store is the source of truth for what must run, so
//! rows that are `pending` (a task or a chat message nobody has taken yet) are pushed to the
//! queue again whatever lost their job (Redis restarted without its data, a push that failed
//! while Redis was down, an API process that died between its insert and its push). Pushes
//! are idempotent (see `Queues::push_many`), so pushing a row whose job is still queued
//! changes nothing.

use uuid::Uuid;

use super::{Db, StoreError};
use crate::with_read_pool;

/// A page of the sweep: rows that have waited since before some time, oldest first.
#[derive(Clone, Copy, Debug)]
pub struct Page {
    /// Only rows created before this (Unix ms): a row just stored is being pushed by its API.
    pub created_before: i64,
    /// Continue after this row (`created_at`, `id`), for the next page.
    pub after: Option<(i64, Uuid)>,
    pub limit: i64,
}

/// One page of `pending` tasks, oldest first, as (created_at, id).
pub async fn pending_tasks(db: &Db, page: Page) -> Result<Vec<(i64, Uuid)>, StoreError> {
    let (after_at, after_id) = page.after.unwrap_or((i64::MIN, Uuid::nil()));
    Ok(with_read_pool!(db, pool => sqlx::query_as(
        "SELECT created_at, id FROM tasks
         WHERE status = 'pending' AND created_at < $1 AND (created_at > $2 OR (created_at = $2 AND id > $3))
         ORDER BY created_at, id LIMIT $4")
        .bind(page.created_before).bind(after_at).bind(after_id).bind(page.limit)
        .fetch_all(pool).await)?)
}

/// One page of `pending` chat messages, oldest first, as (created_at, id).
pub async fn pending_messages(db: &Db, page: Page) -> Result<Vec<(i64, Uuid)>, StoreError> {
    let (after_at, after_id) = page.after.unwrap_or((i64::MIN, Uuid::nil()));
    Ok(with_read_pool!(db, pool => sqlx::query_as(
        "SELECT created_at, id FROM messages
         WHERE status = 'pending' AND deleted_at IS NULL AND created_at < $1
           AND (created_at > $2 OR (created_at = $2 AND id > $3))
         ORDER BY created_at, id LIMIT $4")
        .bind(page.created_before).bind(after_at).bind(after_id).bind(page.limit)
        .fetch_all(pool).await)?)
}

/// Exclusive right to run the sweep, held until dropped: only one process at a time sweeps.
/// On Postgres a transaction-level advisory lock (released with the transaction, so also
/// when the holder dies); the embedded store has one process.
pub struct SweepLock {
    _held: Option<sqlx::Transaction<'static, sqlx::Postgres>>,
}

/// The advisory lock's key: any constant of our own.
const SWEEP_LOCK_KEY: i64 = 0x6c6c_6d6f_7073_7277; // "llmopsrw"

/// Takes the sweep lock, or `None` when another process holds it.
pub async fn try_lock_sweep(db: &Db) -> Result<Option<SweepLock>, StoreError> {
    match db {
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            let (locked,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1)")
                .bind(SWEEP_LOCK_KEY)
                .fetch_one(&mut *tx)
                .await?;
            Ok(locked.then_some(SweepLock { _held: Some(tx) }))
        }
        Db::Sqlite { .. } => Ok(Some(SweepLock { _held: None })),
    }
}
