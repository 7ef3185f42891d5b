//! The FlowGram task API (`shared/spec/flowgram-runtime.md` §1.1, §6 and decisions 1–6, 12),
//! on the queue: the API validates and stores the task and pushes its id; workers run it and
//! write the result and report, which these routes read back from the store.
//!
//! Success bodies are bare JSON, exactly as the reference server answers, so the FlowGram
//! editor's client works unchanged; errors are `{code, message}` with real statuses.

mod caller;
mod input;
mod run_node;
mod stream;
mod submit;

use std::{sync::Arc, time::Duration};

use axum::{
    Json,
    body::Bytes,
    extract::{Query, State, rejection::QueryRejection},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Map, Value};
use shared::{
    signals::{TaskDone, channel},
    store::{
        interrupt::Interrupt,
        now_ms,
        tasks::{self, TaskStatus, TaskView},
    },
    workflow::{Report, StatusData, WorkflowStatus, parse_schema_cached, validate_inputs},
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub use caller::TaskCaller;
use caller::may_see;
use input::{TaskCancelInput, TaskQuery, TaskRunInput, task_not_found};
use submit::{MAX_WAIT, store_and_queue};

use crate::{
    error::{ApiError, Bare, TaskErrorBody},
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(run_task))
        .routes(routes!(get_task_result))
        .routes(routes!(get_task_report))
        .routes(routes!(get_task_stream))
        .routes(routes!(run_node::run_node))
        .routes(routes!(cancel_task))
        .routes(routes!(validate_task))
}

#[derive(Serialize, ToSchema)]
pub struct TaskRunOutput {
    #[serde(rename = "taskID")]
    pub task_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct TaskCancelOutput {
    pub success: bool,
}

#[derive(Serialize, ToSchema)]
pub struct TaskValidateOutput {
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<String>>,
}

/// Validation of a run request: schema (the four validators), then the start inputs.
fn validate(input: &TaskRunInput) -> Result<(), Vec<String>> {
    let schema = parse_schema_cached(&input.schema)?;
    validate_inputs(&schema, &input.inputs)
}

/// Run a workflow: stores the task and queues it (TaskRun).
///
/// A schema that fails validation still gets a taskID: the task is stored as `failed` with the
/// errors in its report's `messages.error`, and never queued.
///
/// With `Accept: text/event-stream` the request runs and streams in one: the answer is the
/// run's event stream, as `GET /api/task/stream` sends it (every event carries the `taskID`).
#[utoipa::path(post, path = "/api/task/run", tag = "task",
    request_body = TaskRunInput,
    responses(
        (status = 200, description = "the taskID; with `Accept: text/event-stream`, the run's events (see `GET /api/task/stream`)",
            content((TaskRunOutput = "application/json"), (String = "text/event-stream"))),
        (status = 400, body = TaskErrorBody, description = "malformed request (`validate_error`)"),
        (status = 401, body = TaskErrorBody, description = "a token is required or invalid"),
        (status = 413, body = TaskErrorBody, description = "body larger than LLMOPS_BODY_LIMIT"),
        (status = 503, body = TaskErrorBody, description = "store unavailable (`fail`); with the queue down the run is accepted and queued when it returns")),
    security((), ("bearer" = [])))]
async fn run_task(
    State(state): State<AppState>,
    caller: TaskCaller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Bare> {
    let input = TaskRunInput::parse(&body)?;
    // Time-ordered: new rows go to the end of the id index instead of a random page of it,
    // which keeps each batch's writes to a few pages (SQLite's WAL, Postgres's B-tree).
    let id = Uuid::now_v7();
    let at = now_ms();
    let validation = validate(&input);
    let (task_status, report) = match &validation {
        Ok(()) => (
            TaskStatus::Pending,
            Report::new(&id.to_string(), input.inputs.clone(), at),
        ),
        Err(errors) => (
            TaskStatus::Failed,
            Report::validation_failed(&id.to_string(), input.inputs.clone(), errors, at),
        ),
    };
    let report =
        serde_json::value::to_raw_value(&report).map_err(|e| ApiError::Internal(e.into()))?;
    let streaming = stream::wants_stream(&headers);
    if streaming && validation.is_ok() {
        // Announced before the job exists, so the worker that takes it already knows that
        // its llm nodes' tokens are wanted.
        if let Err(error) = state.signals.publish_task_listen(id).await {
            tracing::debug!(%error, task_id = %id, "listen announcement failed");
        }
    }
    store_and_queue(&state, &caller, id, task_status, input, report, at).await?;

    if streaming {
        // The task row exists before the stream's first read: nothing can be missed.
        let raw = id.to_string();
        return Ok(stream::open(state, &caller, &raw, id, None)
            .await?
            .into_response());
    }
    Ok(Json(TaskRunOutput {
        task_id: id.to_string(),
    })
    .into_response())
}

/// A run's events, as Server-Sent Events (TaskStream).
///
/// Events, each with an increasing `id:` and a JSON `data:` carrying `taskID`:
/// `workflow_started {inputs, attempt}`, `node_started {nodeID, type, inputs}`,
/// `node_delta {nodeID, delta}` (an llm node's tokens as the provider sends them, when a
/// stream of the task was open as the node started; joined, they are the node's `result`),
/// `node_finished {nodeID, status, outputs | error, timeCost}`,
/// `workflow_finished {status, outputs, timeCost}` (the last; `status` is `succeeded`,
/// `failed` or `canceled`). A `: ping` comment comes every 15 s. A subscriber that arrives late
/// gets the run's events from the start; one that reconnects with `Last-Event-ID` (to any
/// replica, mid-answer too) gets exactly the events after it, during the run and for
/// `LLMOPS_STREAM_RETENTION_SECS` after it. A run retried after its worker died starts again
/// with a second `workflow_started` whose ids are above every id of the failed attempt.
#[utoipa::path(get, path = "/api/task/stream", tag = "task",
    params(TaskQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "resume after this event id")),
    responses(
        (status = 200, content_type = "text/event-stream", body = String,
            description = "the run's events (`workflow_started`, `node_started`, `node_delta`, `node_finished`, `workflow_finished`)"),
        (status = 400, body = TaskErrorBody), (status = 404, body = TaskErrorBody, description = "unknown taskID, or its stream retention has passed")),
    security((), ("bearer" = [])))]
async fn get_task_stream(
    State(state): State<AppState>,
    caller: TaskCaller,
    headers: HeaderMap,
    query: Result<Query<TaskQuery>, QueryRejection>,
) -> Result<Response, Bare> {
    let query = TaskQuery::from_query(query)?;
    let (raw, id) = query.task()?;
    let after = stream::last_event_id(&headers);
    Ok(stream::open(state, &caller, raw, id, after)
        .await?
        .into_response())
}

/// Checks ownership of a stored task: someone else's task is an unknown task.
fn visible(view: Option<TaskView>, caller: &TaskCaller, raw_id: &str) -> Result<TaskView, Bare> {
    match view {
        Some(v) if may_see(v.owner_id, caller) => Ok(v),
        _ => Err(Bare(task_not_found(raw_id))),
    }
}

/// The result body of a stored task: its outputs once terminal, `null` before.
fn result_body(view: TaskView) -> Value {
    if view.status.is_terminal() {
        view.document.map(|d| d.0).unwrap_or(Value::Null)
    } else {
        Value::Null
    }
}

/// The outputs carried by a task's completion message, if it reads as a terminal outcome.
fn outcome_outputs(message: &str) -> Option<Value> {
    let TaskDone { status, outputs } = serde_json::from_str::<TaskDone>(message).ok()?;
    status.is_terminal().then_some(Value::Object(outputs))
}

/// A task's result: the end node's outputs (TaskResult).
///
/// Answers JSON `null` while the task has not finished (its report says why). With `wait`, the
/// request waits up to that many milliseconds for the task to finish first.
#[utoipa::path(get, path = "/api/task/result", tag = "task",
    params(TaskQuery),
    responses(
        (status = 200, body = Object, description = "the outputs, or `null` while not finished"),
        (status = 400, body = TaskErrorBody), (status = 404, body = TaskErrorBody, description = "unknown taskID")),
    security((), ("bearer" = [])))]
async fn get_task_result(
    State(state): State<AppState>,
    caller: TaskCaller,
    query: Result<Query<TaskQuery>, QueryRejection>,
) -> Result<Json<Value>, Bare> {
    let query = TaskQuery::from_query(query)?;
    let (raw, id) = query.task()?;
    let wait = query
        .wait
        .filter(|w| *w > 0)
        .map(|w| Duration::from_millis(w).min(MAX_WAIT));
    let Some(wait) = wait else {
        return poll_task_result(&state, &caller, raw, id).await;
    };
    // Subscribe before reading, so a completion between the read and the wait is not missed.
    let mut done = state
        .signals
        .subscribe(&channel::task_done(id))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    // Queued by this process: an outcome that came before the subscription is recorded
    // (`RecentTasks`), so the store need not be read while the task is surely unfinished.
    match remembered(&state, &caller, raw, id)? {
        Remembered::Finished(outputs) => return Ok(Json(outputs)),
        Remembered::Unfinished => {}
        Remembered::Unknown => {
            let view = stored_result(&state, &caller, raw, id).await?;
            if view.status.is_terminal() {
                return Ok(Json(result_body(view)));
            }
        }
    }
    // The completion message carries the result. Signals are a fast path only: the store is
    // read too when the signal bus drops or comes back, and every few seconds.
    let deadline = tokio::time::Instant::now() + wait;
    let mut checks = state.signals.store_checks();
    loop {
        tokio::select! {
            message = tokio::time::timeout_at(deadline, done.next()) => {
                if let Ok(Some(message)) = message
                    && let Some(outputs) = outcome_outputs(&message)
                {
                    return Ok(Json(outputs));
                }
                break;
            }
            _ = checks.due() => {
                let view = stored_result(&state, &caller, raw, id).await?;
                if view.status.is_terminal() {
                    return Ok(Json(result_body(view)));
                }
            }
        }
    }
    // No (readable) completion within the wait: the store has the last word.
    let view = stored_result(&state, &caller, raw, id).await?;
    Ok(Json(result_body(view)))
}

/// `result` without `wait`: a task this process queued answers from memory while it is surely
/// unfinished or once its outcome arrived (`RecentTasks`); any other reads the store.
async fn poll_task_result(
    state: &AppState,
    caller: &TaskCaller,
    raw: &str,
    id: Uuid,
) -> Result<Json<Value>, Bare> {
    Ok(Json(match remembered(state, caller, raw, id)? {
        Remembered::Finished(outputs) => outputs,
        Remembered::Unfinished => Value::Null,
        Remembered::Unknown => result_body(stored_result(state, caller, raw, id).await?),
    }))
}

/// What this process knows of a task's result without reading the store.
enum Remembered {
    /// Its outcome arrived: these are its outputs.
    Finished(Value),
    /// It is surely unfinished ([`RecentTasks::surely_unfinished`](crate::services::RecentTasks::surely_unfinished)).
    Unfinished,
    /// Not queued here, or not sure: the store must be read.
    Unknown,
}

/// The task as [`RecentTasks`](crate::services::RecentTasks) knows it; someone else's task is
/// an unknown task.
fn remembered(
    state: &AppState,
    caller: &TaskCaller,
    raw: &str,
    id: Uuid,
) -> Result<Remembered, Bare> {
    let Some(task) = state.recent_tasks.get(id) else {
        return Ok(Remembered::Unknown);
    };
    if !may_see(task.owner, caller) {
        return Err(Bare(task_not_found(raw)));
    }
    if let Some(outputs) = task.outcome.as_deref().and_then(outcome_outputs) {
        return Ok(Remembered::Finished(outputs));
    }
    Ok(if state.recent_tasks.surely_unfinished(&task) {
        Remembered::Unfinished
    } else {
        Remembered::Unknown
    })
}

/// The task's result row from the store; an unfinished one renews the memory's trust in it.
async fn stored_result(
    state: &AppState,
    caller: &TaskCaller,
    raw: &str,
    id: Uuid,
) -> Result<TaskView, Bare> {
    let view = visible(tasks::get_task_result(&state.db, id).await?, caller, raw)?;
    if !view.status.is_terminal() {
        state.recent_tasks.store_says_unfinished(id);
    }
    Ok(view)
}

/// A task's report: statuses, timings, snapshots and messages of every node (TaskReport).
#[utoipa::path(get, path = "/api/task/report", tag = "task",
    params(TaskQuery),
    responses(
        (status = 200, body = Object, description = "the IReport (`id` is the taskID)"),
        (status = 400, body = TaskErrorBody), (status = 404, body = TaskErrorBody, description = "unknown taskID")),
    security((), ("bearer" = [])))]
async fn get_task_report(
    State(state): State<AppState>,
    caller: TaskCaller,
    headers: HeaderMap,
    query: Result<Query<TaskQuery>, QueryRejection>,
) -> Result<Response, Bare> {
    let query = TaskQuery::from_query(query)?;
    let (raw, id) = query.task()?;
    let report = match state.reports.get(id) {
        Some(report) => report,
        None => {
            let view = visible(tasks::get_task_report(&state.db, id).await?, &caller, raw)?;
            if view.status.is_terminal() {
                // Its outcome may not have reached this process yet (or may never: a lost
                // signal): the result must not look unfinished to whoever saw this report.
                state.recent_tasks.store_says_finished(id);
            }
            let body = serde_json::to_vec(&view.document.map(|d| d.0).unwrap_or(Value::Null))
                .map_err(|e| ApiError::Internal(e.into()))?;
            state
                .reports
                .keep(id, view.owner_id, view.status, Bytes::from(body))
        }
    };
    if !may_see(report.owner, &caller) {
        return Err(Bare(task_not_found(raw)));
    }
    let json = (header::CONTENT_TYPE, "application/json");
    let vary = (header::VARY, "accept-encoding");
    let worth_it = report.body.len() >= usize::from(crate::http::COMPRESS_FROM_BYTES);
    Ok(if worth_it && crate::http::accepts_gzip(&headers) {
        let gzip = (header::CONTENT_ENCODING, "gzip");
        ([json, gzip, vary], report.gzipped()).into_response()
    } else {
        ([json, vary], report.body).into_response()
    })
}

/// Cancel a task (TaskCancel): a queued task never runs; a running one stops within a second
/// on whichever worker holds it. `success` is `false` only for an unknown task.
#[utoipa::path(put, path = "/api/task/cancel", tag = "task",
    request_body = TaskCancelInput,
    responses((status = 200, body = TaskCancelOutput), (status = 400, body = TaskErrorBody)),
    security((), ("bearer" = [])))]
async fn cancel_task(
    State(state): State<AppState>,
    caller: TaskCaller,
    body: Bytes,
) -> Result<Json<TaskCancelOutput>, Bare> {
    let input = TaskCancelInput::parse(&body)?;
    let Ok(id) = Uuid::parse_str(&input.task_id) else {
        return Ok(Json(TaskCancelOutput { success: false }));
    };
    // Someone else's task is an unknown task.
    let Ok(view) = visible(
        tasks::get_task_report(&state.db, id).await?,
        &caller,
        &input.task_id,
    ) else {
        return Ok(Json(TaskCancelOutput { success: false }));
    };
    let at = now_ms();
    let outcome = tasks::request_cancel(
        &state.db,
        id,
        || canceled_report(id, view.document.map(|d| d.0), at),
        at,
    )
    .await?;
    // The request is in the store, where the worker also finds it (at its next progress
    // write); the signal only makes it immediate, so a bus outage does not fail the cancel.
    // A queued task is canceled in the store at once; the worker that meets its job
    // announces the outcome.
    match outcome {
        Interrupt::Unknown => return Ok(Json(TaskCancelOutput { success: false })),
        Interrupt::Requested => {
            if let Err(error) = state.signals.publish_task_cancel(id).await {
                tracing::warn!(%error, task_id = %id, "cancel recorded, but not signalled");
            }
        }
        // Its worker announces it when it meets the job, which may be a while: polls here
        // see it at once.
        Interrupt::EndedWhileQueued => state.task_ended(id, &canceled_outcome()),
        Interrupt::AlreadyFinished => {}
    }
    Ok(Json(TaskCancelOutput { success: true }))
}

/// The `task:<id>:done` payload of a task canceled before any worker took it.
fn canceled_outcome() -> Arc<str> {
    let done = TaskDone {
        status: TaskStatus::Canceled,
        outputs: Map::new(),
    };
    serde_json::to_string(&done).unwrap_or_default().into()
}

/// The report of a task canceled before any worker took it: its pending report, terminated.
fn canceled_report(id: Uuid, pending: Option<Value>, at: i64) -> Value {
    let mut report = pending
        .and_then(|v| serde_json::from_value::<Report>(v).ok())
        .unwrap_or_else(|| Report::new(&id.to_string(), Map::new(), at));
    report.workflow_status = StatusData {
        status: WorkflowStatus::Canceled,
        terminated: true,
        start_time: report.workflow_status.start_time,
        end_time: Some(at),
        time_cost: at - report.workflow_status.start_time,
    };
    serde_json::to_value(report).unwrap_or(Value::Null)
}

/// Validate a schema and inputs without running (TaskValidate).
#[utoipa::path(post, path = "/api/task/validate", tag = "task",
    request_body = TaskRunInput,
    responses((status = 200, body = TaskValidateOutput), (status = 400, body = TaskErrorBody)))]
async fn validate_task(body: Bytes) -> Result<Json<TaskValidateOutput>, Bare> {
    let input = TaskRunInput::parse(&body)?;
    Ok(Json(match validate(&input) {
        Ok(()) => TaskValidateOutput {
            valid: true,
            errors: None,
        },
        Err(errors) => TaskValidateOutput {
            valid: false,
            errors: Some(errors),
        },
    }))
}
