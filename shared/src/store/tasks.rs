//! Workflow tasks: one row per run holding its schema, inputs, status, result and report.
//! The report column is the whole `IReport` as JSON, written in a few batches per run.

use serde_json::{Map, Value};
use sqlx::types::Json;
use uuid::Uuid;

use super::{Db, StoreError};
use crate::with_pool;

/// Task statuses as stored (the FlowGram `WorkflowStatus` strings).
pub mod status {
    pub const PENDING: &str = "pending";
    pub const PROCESSING: &str = "processing";
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
    pub const CANCELED: &str = "canceled";

    pub fn is_terminal(status: &str) -> bool {
        matches!(status, SUCCEEDED | FAILED | CANCELED)
    }
}

/// A task as the worker needs it to run.
#[derive(Debug, sqlx::FromRow)]
pub struct TaskToRun {
    pub id: Uuid,
    pub schema_json: String,
    pub inputs: Json<Map<String, Value>>,
    pub attempt: i32,
    pub cancel_requested: bool,
}

/// What the read routes need: status, owner, and the requested document.
#[derive(Debug, sqlx::FromRow)]
pub struct TaskView {
    pub owner_id: Option<Uuid>,
    pub status: String,
    pub document: Option<Json<Value>>,
}

/// A new task row.
pub struct NewTask<'a> {
    pub id: Uuid,
    pub owner_id: Option<Uuid>,
    pub status: &'a str,
    pub schema_json: &'a str,
    pub inputs: &'a Map<String, Value>,
    /// Set for a task rejected by validation (stored failed, never queued).
    pub outputs: Option<&'a Map<String, Value>>,
    pub report: &'a Value,
    pub at_ms: i64,
}

pub async fn insert_task(db: &Db, task: NewTask<'_>) -> Result<(), StoreError> {
    let finished_at = status::is_terminal(task.status).then_some(task.at_ms);
    with_pool!(db, pool => sqlx::query(
        "INSERT INTO tasks (id, owner_id, status, schema_json, inputs, outputs, report, created_at, updated_at, finished_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)")
        .bind(task.id)
        .bind(task.owner_id)
        .bind(task.status)
        .bind(task.schema_json)
        .bind(Json(task.inputs))
        .bind(task.outputs.map(Json))
        .bind(Json(task.report))
        .bind(task.at_ms)
        .bind(finished_at)
        .execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// The task's status, owner and report.
pub async fn get_task_report(db: &Db, id: Uuid) -> Result<Option<TaskView>, StoreError> {
    Ok(with_pool!(db, pool => sqlx::query_as::<_, TaskView>(
        "SELECT owner_id, status, report AS document FROM tasks WHERE id = $1")
        .bind(id).fetch_optional(pool).await)?)
}

/// The task's status, owner and result (outputs).
pub async fn get_task_result(db: &Db, id: Uuid) -> Result<Option<TaskView>, StoreError> {
    Ok(with_pool!(db, pool => sqlx::query_as::<_, TaskView>(
        "SELECT owner_id, status, outputs AS document FROM tasks WHERE id = $1")
        .bind(id).fetch_optional(pool).await)?)
}

/// Claims the task for a new attempt: `pending`/`processing` → `processing`, attempt + 1.
/// Returns `None` when the task is gone or already terminal (canceled while queued,
/// finished by an earlier delivery), so a redelivered job never runs twice to completion.
pub async fn start_attempt(db: &Db, id: Uuid, at_ms: i64) -> Result<Option<TaskToRun>, StoreError> {
    Ok(with_pool!(db, pool => sqlx::query_as::<_, TaskToRun>(
        "UPDATE tasks SET status = 'processing', attempt = attempt + 1, updated_at = $2
         WHERE id = $1 AND status IN ('pending', 'processing')
         RETURNING id, schema_json, inputs, attempt, cancel_requested")
        .bind(id).bind(at_ms).fetch_optional(pool).await)?)
}

/// Writes a progress snapshot of the report (and serves as the attempt's heartbeat). Only the
/// current attempt of a running task may write.
pub async fn save_progress(
    db: &Db,
    id: Uuid,
    attempt: i32,
    report: &Value,
    at_ms: i64,
) -> Result<(), StoreError> {
    with_pool!(db, pool => sqlx::query(
        "UPDATE tasks SET report = $3, updated_at = $4 WHERE id = $1 AND attempt = $2 AND status = 'processing'")
        .bind(id).bind(attempt).bind(Json(report)).bind(at_ms).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// Marks the attempt alive without rewriting the report.
pub async fn touch_attempt(db: &Db, id: Uuid, attempt: i32, at_ms: i64) -> Result<(), StoreError> {
    with_pool!(db, pool => sqlx::query(
        "UPDATE tasks SET updated_at = $3 WHERE id = $1 AND attempt = $2 AND status = 'processing'")
        .bind(id).bind(attempt).bind(at_ms).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// The final write of a run: status, result and report in one statement. Returns whether this
/// attempt still owned the task (a newer attempt or a cancel of a queued task wins).
pub async fn finish_task(
    db: &Db,
    id: Uuid,
    attempt: i32,
    final_status: &str,
    outputs: &Map<String, Value>,
    report: &Value,
    at_ms: i64,
) -> Result<bool, StoreError> {
    let done = with_pool!(db, pool => sqlx::query(
        "UPDATE tasks SET status = $3, outputs = $4, report = $5, updated_at = $6, finished_at = $6
         WHERE id = $1 AND attempt = $2 AND status = 'processing'")
        .bind(id).bind(attempt).bind(final_status).bind(Json(outputs)).bind(Json(report)).bind(at_ms)
        .execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Fails a task outright (attempts exhausted, undecodable schema), whatever attempt holds it.
pub async fn fail_task(db: &Db, id: Uuid, report: &Value, at_ms: i64) -> Result<bool, StoreError> {
    let done = with_pool!(db, pool => sqlx::query(
        "UPDATE tasks SET status = 'failed', outputs = $2, report = $3, updated_at = $4, finished_at = $4
         WHERE id = $1 AND status IN ('pending', 'processing')")
        .bind(id).bind(Json(Map::new())).bind(Json(report)).bind(at_ms)
        .execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// The outcome of a cancel request.
#[derive(Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// No such task.
    Unknown,
    /// Still queued: canceled on the spot; it will never run.
    CanceledQueued,
    /// Running: the flag is set; the worker holding it must be signalled.
    Requested,
    /// Already terminal: nothing changes (the reference still answers success).
    AlreadyFinished,
}

/// Cancels a queued task at once, or flags a running one for its worker.
pub async fn request_cancel(
    db: &Db,
    id: Uuid,
    canceled_report: impl FnOnce() -> Value,
    at_ms: i64,
) -> Result<CancelOutcome, StoreError> {
    let report = canceled_report();
    let queued = with_pool!(db, pool => sqlx::query(
        "UPDATE tasks SET status = 'canceled', cancel_requested = TRUE, outputs = $2, report = $3, updated_at = $4, finished_at = $4
         WHERE id = $1 AND status = 'pending'")
        .bind(id).bind(Json(Map::new())).bind(Json(&report)).bind(at_ms).execute(pool).await.map(|r| r.rows_affected()))?;
    if queued == 1 {
        return Ok(CancelOutcome::CanceledQueued);
    }
    let running: Option<(String,)> = with_pool!(db, pool => sqlx::query_as(
        "UPDATE tasks SET cancel_requested = TRUE WHERE id = $1 AND status = 'processing' RETURNING status")
        .bind(id).fetch_optional(pool).await)?;
    if running.is_some() {
        return Ok(CancelOutcome::Requested);
    }
    let exists: Option<(String,)> = with_pool!(db, pool => sqlx::query_as(
        "SELECT status FROM tasks WHERE id = $1").bind(id).fetch_optional(pool).await)?;
    Ok(match exists {
        Some(_) => CancelOutcome::AlreadyFinished,
        None => CancelOutcome::Unknown,
    })
}

/// Whether cancel was requested (checked by a worker right after it subscribed, to close the
/// race with a cancel that arrived before).
pub async fn cancel_requested(db: &Db, id: Uuid) -> Result<bool, StoreError> {
    let row: Option<(bool,)> = with_pool!(db, pool => sqlx::query_as(
        "SELECT cancel_requested FROM tasks WHERE id = $1").bind(id).fetch_optional(pool).await)?;
    Ok(row.is_some_and(|(c,)| c))
}

/// Claims running tasks whose attempt has not written since `older_than_ms` (their worker
/// died and the queue lost the job): bumps their `updated_at` so that one process claims each,
/// and returns them to be pushed again.
pub async fn claim_stale_tasks(
    db: &Db,
    older_than_ms: i64,
    at_ms: i64,
    limit: i64,
) -> Result<Vec<Uuid>, StoreError> {
    let rows: Vec<(Uuid,)> = with_pool!(db, pool => sqlx::query_as(
        "UPDATE tasks SET updated_at = $2 WHERE id IN (
             SELECT id FROM tasks WHERE status = 'processing' AND updated_at < $1 ORDER BY updated_at LIMIT $3)
         AND updated_at < $1
         RETURNING id")
        .bind(older_than_ms).bind(at_ms).bind(limit).fetch_all(pool).await)?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Deletes up to `batch` terminated tasks that finished before `before_ms`; returns how many.
/// Small batches keep each statement short so it never holds up running work.
pub async fn delete_finished_before(
    db: &Db,
    before_ms: i64,
    batch: i64,
) -> Result<u64, StoreError> {
    let done = with_pool!(db, pool => sqlx::query(
        "DELETE FROM tasks WHERE id IN (
             SELECT id FROM tasks WHERE finished_at IS NOT NULL AND finished_at < $1 LIMIT $2)")
        .bind(before_ms).bind(batch).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(done)
}
