//! Workflow tasks: one row per run holding its schema, inputs, status, result and report.
//! The report column is the whole `IReport` as JSON, written in a few batches per run.

use serde_json::{Map, Value, value::RawValue};
// Multi-row statements are built from placeholders only (`$1` or `?`), never from values.
use sqlx::{AssertSqlSafe, types::Json};
use uuid::Uuid;

use super::{
    Db, SqliteQuery, StoreError,
    batch::{placeholder, rows_sql},
    interrupt::{Interrupt, interrupt},
    json::JsonText,
};
use crate::{config::StoreKind, with_pool, with_read_pool, workflow::WorkflowStatus};

crate::named_enum! {
    /// A task's status, as stored and as the FlowGram client names it (`WorkflowStatus`).
    pub enum TaskStatus("task status") {
        Pending = "pending",
        Processing = "processing",
        Succeeded = "succeeded",
        Failed = "failed",
        Canceled = "canceled",
    }
}

impl From<WorkflowStatus> for TaskStatus {
    /// The stored status of a run the engine ended with this status.
    fn from(status: WorkflowStatus) -> Self {
        match status {
            WorkflowStatus::Pending => Self::Pending,
            WorkflowStatus::Processing => Self::Processing,
            WorkflowStatus::Succeeded => Self::Succeeded,
            WorkflowStatus::Failed => Self::Failed,
            WorkflowStatus::Canceled => Self::Canceled,
        }
    }
}

impl TaskStatus {
    /// Whether the task will never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Canceled)
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
    pub status: TaskStatus,
    pub document: Option<Json<Value>>,
}

/// A new task row.
#[derive(Clone)]
pub struct NewTask {
    pub id: Uuid,
    pub owner_id: Option<Uuid>,
    pub status: TaskStatus,
    pub schema_json: String,
    pub inputs: Map<String, Value>,
    /// Set for a task rejected by validation (stored failed, never queued).
    pub outputs: Option<Map<String, Value>>,
    /// The initial report as JSON text.
    pub report: Box<RawValue>,
    pub at_ms: i64,
    /// The submitting request's trace, handed to the job; not stored.
    pub traceparent: Option<String>,
}

pub async fn insert_task(db: &Db, task: NewTask) -> Result<(), StoreError> {
    insert_tasks(db, std::slice::from_ref(&task)).await
}

/// Stores new tasks with one multi-row statement.
pub async fn insert_tasks(db: &Db, tasks: &[NewTask]) -> Result<(), StoreError> {
    if tasks.is_empty() {
        return Ok(());
    }
    let sql = insert_tasks_sql(db.kind(), tasks.len());
    with_pool!(db, pool => new_tasks_query!(sql.as_str(), tasks).execute(pool).await.map(|_| ()))?;
    Ok(())
}

/// [`insert_tasks`] on the embedded store, as one statement within `before` and `after`
/// (further statements, whose values the caller binds after these): the embedded submit runs
/// its whole transaction, tasks and queue jobs, as one command.
pub fn insert_tasks_sqlite_within<'q>(
    tasks: &'q [NewTask],
    before: &str,
    after: &str,
) -> SqliteQuery<'q> {
    let sql = format!(
        "{before}\n{};\n{after}",
        insert_tasks_sql(StoreKind::Sqlite, tasks.len())
    );
    new_tasks_query!(sql, tasks)
}

fn insert_tasks_sql(kind: StoreKind, rows: usize) -> String {
    format!(
        "INSERT INTO tasks (id, owner_id, status, schema_json, inputs, outputs, report, created_at, updated_at, finished_at)
         VALUES {}",
        rows_sql(kind, rows, 10, |p| format!("({})", p.join(", ")))
    )
}

/// The insert of [`insert_tasks_sql`] with every task's values bound (a macro: it is typed
/// for whichever backend executes it).
macro_rules! new_tasks_query {
    ($sql:expr, $tasks:expr) => {{
        let mut query = sqlx::query(AssertSqlSafe($sql));
        for task in $tasks {
            let finished_at = task.status.is_terminal().then_some(task.at_ms);
            query = query
                .bind(task.id)
                .bind(task.owner_id)
                .bind(task.status)
                .bind(&task.schema_json)
                .bind(JsonText(&task.inputs))
                .bind(task.outputs.as_ref().map(JsonText))
                .bind(JsonText(&task.report))
                .bind(task.at_ms)
                .bind(task.at_ms)
                .bind(finished_at);
        }
        query
    }};
}
use new_tasks_query;

/// How often a worker writes a running task's report (its progress) to the store; readers of
/// reports may serve one that old.
pub const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// The task's status, owner and report.
pub async fn get_task_report(db: &Db, id: Uuid) -> Result<Option<TaskView>, StoreError> {
    Ok(with_read_pool!(db, pool => sqlx::query_as::<_, TaskView>(
        "SELECT owner_id, status, report AS document FROM tasks WHERE id = $1")
        .bind(id).fetch_optional(pool).await)?)
}

/// What a task's event stream is rebuilt from ([`crate::workflow::events`]).
#[derive(Debug, sqlx::FromRow)]
pub struct TaskEvents {
    pub owner_id: Option<Uuid>,
    pub status: TaskStatus,
    pub report: Option<Json<Value>>,
    pub events: Option<Json<Value>>,
    pub finished_at: Option<i64>,
}

/// The task's status, owner, report and event log, read together (one row, one snapshot).
pub async fn get_task_events(db: &Db, id: Uuid) -> Result<Option<TaskEvents>, StoreError> {
    Ok(with_read_pool!(db, pool => sqlx::query_as::<_, TaskEvents>(
        "SELECT owner_id, status, report, events, finished_at FROM tasks WHERE id = $1")
        .bind(id).fetch_optional(pool).await)?)
}

/// The task's workflow schema (JSON text), as it was submitted.
pub async fn get_task_schema(db: &Db, id: Uuid) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> = with_read_pool!(db, pool => sqlx::query_as(
        "SELECT schema_json FROM tasks WHERE id = $1")
        .bind(id).fetch_optional(pool).await)?;
    Ok(row.map(|(s,)| s))
}

/// The task's status, owner and result (outputs).
pub async fn get_task_result(db: &Db, id: Uuid) -> Result<Option<TaskView>, StoreError> {
    Ok(with_read_pool!(db, pool => sqlx::query_as::<_, TaskView>(
        "SELECT owner_id, status, outputs AS document FROM tasks WHERE id = $1")
        .bind(id).fetch_optional(pool).await)?)
}

/// Claims the task for a new attempt: `pending`/`processing` → `processing`, attempt + 1.
/// Returns `None` when the task is gone or already terminal (canceled while queued,
/// finished by an earlier delivery), so a redelivered job never runs twice to completion.
pub async fn start_attempt(db: &Db, id: Uuid, at_ms: i64) -> Result<Option<TaskToRun>, StoreError> {
    Ok(start_attempts(db, &[id], at_ms).await?.pop())
}

/// [`start_attempt`] for many tasks in one statement; returns the rows it claimed.
pub async fn start_attempts(
    db: &Db,
    ids: &[Uuid],
    at_ms: i64,
) -> Result<Vec<TaskToRun>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let kind = db.kind();
    let ids_sql: Vec<String> = (2..ids.len() + 2).map(|n| placeholder(kind, n)).collect();
    let sql = format!(
        "UPDATE tasks SET status = 'processing', attempt = attempt + 1, updated_at = {}
         WHERE id IN ({}) AND status IN ('pending', 'processing')
         RETURNING id, schema_json, inputs, attempt, cancel_requested",
        placeholder(kind, 1),
        ids_sql.join(", ")
    );
    Ok(with_pool!(db, pool => {
        let mut query = sqlx::query_as::<_, TaskToRun>(AssertSqlSafe(sql.as_str())).bind(at_ms);
        for id in ids {
            query = query.bind(id);
        }
        query.fetch_all(pool).await
    })?)
}

/// Writes a progress snapshot of the report (and serves as the attempt's heartbeat). Only the
/// current attempt of a running task may write. Answers whether cancel was requested: the
/// worker learns of a cancel this way too when the cancel signal was lost.
pub async fn save_progress(
    db: &Db,
    id: Uuid,
    attempt: i32,
    report: &RawValue,
    events: &RawValue,
    at_ms: i64,
) -> Result<bool, StoreError> {
    let cancel: Option<(bool,)> = with_pool!(db, pool => sqlx::query_as(
        "UPDATE tasks SET report = $3, events = $5, updated_at = $4 WHERE id = $1 AND attempt = $2 AND status = 'processing'
         RETURNING cancel_requested")
        .bind(id).bind(attempt).bind(JsonText(report)).bind(at_ms).bind(JsonText(events)).fetch_optional(pool).await)?;
    Ok(cancel.is_some_and(|(c,)| c))
}

/// Marks the attempt alive without rewriting the report; answers whether cancel was
/// requested, as [`save_progress`] does.
pub async fn touch_attempt(
    db: &Db,
    id: Uuid,
    attempt: i32,
    at_ms: i64,
) -> Result<bool, StoreError> {
    let cancel: Option<(bool,)> = with_pool!(db, pool => sqlx::query_as(
        "UPDATE tasks SET updated_at = $3 WHERE id = $1 AND attempt = $2 AND status = 'processing'
         RETURNING cancel_requested")
        .bind(id).bind(attempt).bind(at_ms).fetch_optional(pool).await)?;
    Ok(cancel.is_some_and(|(c,)| c))
}

/// The final state of an attempt.
#[derive(Clone)]
pub struct FinishedTask {
    pub id: Uuid,
    pub attempt: i32,
    pub status: TaskStatus,
    pub outputs: Map<String, Value>,
    /// The report as JSON text ([`crate::workflow::ReportHandle::to_json`]).
    pub report: Box<RawValue>,
    /// The attempt's event log ([`crate::workflow::events`]).
    pub events: Box<RawValue>,
    pub at_ms: i64,
}

/// The final write of a run: status, result and report in one statement. Returns whether this
/// attempt still owned the task (a newer attempt or a cancel of a queued task wins).
pub async fn finish_task(db: &Db, task: FinishedTask) -> Result<bool, StoreError> {
    Ok(!finish_tasks(db, std::slice::from_ref(&task))
        .await?
        .is_empty())
}

/// [`finish_task`] for many tasks in one statement; returns the (id, attempt) pairs that still
/// owned their task (and so were written).
pub async fn finish_tasks(db: &Db, tasks: &[FinishedTask]) -> Result<Vec<(Uuid, i32)>, StoreError> {
    if tasks.is_empty() {
        return Ok(Vec::new());
    }
    // Postgres types a VALUES list from its first row and would take untyped parameters for
    // text; SQLite has no `::` casts. So the casts are there on Postgres only.
    let casts: [&str; 7] = match db {
        Db::Postgres(_) => [
            "::uuid", "::int4", "::text", "::json", "::json", "::int8", "::json",
        ],
        Db::Sqlite { .. } => [""; 7],
    };
    let sql = format!(
        "WITH v (id, attempt, status, outputs, report, at, events) AS (VALUES {})
         UPDATE tasks SET status = v.status, outputs = v.outputs, report = v.report,
                          events = v.events, updated_at = v.at, finished_at = v.at
         FROM v
         WHERE tasks.id = v.id AND tasks.attempt = v.attempt AND tasks.status = 'processing'
         RETURNING tasks.id, tasks.attempt",
        rows_sql(db.kind(), tasks.len(), 7, |p| {
            let typed: Vec<String> = p
                .iter()
                .zip(casts)
                .map(|(p, c)| format!("{p}{c}"))
                .collect();
            format!("({})", typed.join(", "))
        })
    );
    Ok(with_pool!(db, pool => {
        let mut query = sqlx::query_as(AssertSqlSafe(sql.as_str()));
        for task in tasks {
            query = query
                .bind(task.id)
                .bind(task.attempt)
                .bind(task.status)
                .bind(JsonText(&task.outputs))
                .bind(JsonText(&task.report))
                .bind(task.at_ms)
                .bind(JsonText(&task.events));
        }
        query.fetch_all(pool).await
    })?)
}

/// Fails a task outright (attempts exhausted, undecodable schema), whatever attempt holds it.
pub async fn fail_task(db: &Db, id: Uuid, report: &Value, at_ms: i64) -> Result<bool, StoreError> {
    let done = with_pool!(db, pool => sqlx::query(
        "UPDATE tasks SET status = 'failed', outputs = $2, report = $3, updated_at = $4, finished_at = $4
         WHERE id = $1 AND status IN ('pending', 'processing')")
        .bind(id).bind(JsonText(Map::new())).bind(JsonText(report)).bind(at_ms)
        .execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

/// Cancels a queued task at once, or flags a running one for its worker (see
/// [`super::interrupt`]).
pub async fn request_cancel(
    db: &Db,
    id: Uuid,
    canceled_report: impl FnOnce() -> Value,
    at_ms: i64,
) -> Result<Interrupt, StoreError> {
    let report = canceled_report();
    interrupt(
        async {
            let ended = with_pool!(db, pool => sqlx::query(
                "UPDATE tasks SET status = 'canceled', cancel_requested = TRUE, outputs = $2, report = $3, updated_at = $4, finished_at = $4
                 WHERE id = $1 AND status = 'pending'")
                .bind(id).bind(JsonText(Map::new())).bind(JsonText(&report)).bind(at_ms).execute(pool).await.map(|r| r.rows_affected()))?;
            Ok(ended == 1)
        },
        async {
            let flagged: Option<(Uuid,)> = with_pool!(db, pool => sqlx::query_as(
                "UPDATE tasks SET cancel_requested = TRUE WHERE id = $1 AND status = 'processing' RETURNING id")
                .bind(id).fetch_optional(pool).await)?;
            Ok(flagged.is_some())
        },
        async {
            let found: Option<(Uuid,)> = with_pool!(db, pool => sqlx::query_as(
                "SELECT id FROM tasks WHERE id = $1").bind(id).fetch_optional(pool).await)?;
            Ok(found.is_some())
        },
    )
    .await
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
