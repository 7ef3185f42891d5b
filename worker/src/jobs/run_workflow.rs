//! Runs one workflow task through the engine and writes its result and report to the store.
//!
//! A run costs a handful of writes: claiming the attempt, a progress snapshot at most every
//! [`FLUSH_EVERY`] while the report changes (less often when the report is large, see
//! [`PROGRESS_TIME_SHARE`]; a heartbeat when it does not change), and the final
//! state in one statement. The claim and the final write are batched with the process's
//! other runs (group commit). Cancel arrives as a signal (from any API replica) and cancels
//! the engine's token: in-flight requests are dropped and the run ends `canceled`. The
//! cancel flag is also read back with every progress write and heartbeat, so a cancel whose
//! signal was lost still stops the run within [`HEARTBEAT_EVERY`].

use std::time::Duration;

use apalis::prelude::*;
use futures::StreamExt;
use serde_json::{Map, Value};
use shared::{
    queue::RunWorkflow,
    signals::{TaskDone, channel},
    store::{
        batch::refuses_a_value,
        now_ms,
        tasks::{self, TaskStatus},
    },
    workflow::{Report, ReportHandle, parse_schema_cached},
};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use uuid::Uuid;

use super::{
    JobError,
    run_deltas::{self, RunDeltas},
};
use crate::state::WorkerState;

/// How often a changing report is written while the run is in progress.
pub const FLUSH_EVERY: Duration = tasks::PROGRESS_EVERY;
/// A run spends at most one part in this many of its time writing progress: when storing a
/// report takes longer than a tenth of [`FLUSH_EVERY`], progress is written less often. A
/// 10,000-iteration loop's report grows to megabytes; written every 100 ms whatever its size,
/// it made the run's cost per iteration grow with the run's length.
pub const PROGRESS_TIME_SHARE: u32 = 10;
/// How often a listened run whose only change is new llm tokens is written: the tokens
/// reach its streams live; the store has them for resumes and late subscribers.
pub const TOKENS_FLUSH_EVERY: Duration = Duration::from_millis(500);
/// How often a run whose report is not changing proves its attempt is alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);

pub async fn run_workflow(job: RunWorkflow, state: Data<WorkerState>) -> Result<(), BoxDynError> {
    // One span per run, in the submitting request's trace when traces are exported.
    let span = tracing::info_span!("run", task_id = %job.task_id);
    shared::telemetry::continue_trace(&span, job.traceparent.as_deref());
    execute(job, &state).instrument(span).await.map_err(|e| {
        tracing::error!(error = %e, "workflow job failed");
        e.into()
    })
}

/// One unit of work, callable without apalis (tests step it directly).
pub async fn execute(job: RunWorkflow, state: &WorkerState) -> Result<(), JobError> {
    let id = job.task_id;
    let db = &state.db;
    // Subscribe before claiming the task: a cancel published after the claim is then seen,
    // and one stored before it comes back in the claim's `cancel_requested`.
    let mut cancel_signal = state.signals.subscribe(&channel::task_cancel(id)).await?;
    let Some(task) = state.tasks.start_attempt(id).await? else {
        // Unknown, canceled while queued, or already finished by an earlier delivery: the
        // outcome is announced again (the cancel of a queued task is announced only here).
        tracing::debug!("task is not runnable; job dropped");
        announce_outcome(state, id).await?;
        return Ok(());
    };
    tracing::info!("task {id} attempt {} started", task.attempt);
    let started = std::time::Instant::now();
    // Queued-to-started: the task id is a UUIDv7 made when the row was created (`created_at`).
    if task.attempt == 1
        && let Some((secs, nanos)) = id.get_timestamp().map(|t| t.to_unix())
    {
        super::record_pickup(
            "workflow",
            secs as i64 * 1000 + i64::from(nanos / 1_000_000),
        );
    }
    if task.attempt > 1 {
        metrics::counter!(shared::metrics::REDELIVERIES, "queue" => "workflow").increment(1);
    }
    let max_attempts = state.config.task_max_attempts as i32;
    if task.attempt > max_attempts {
        metrics::counter!(shared::metrics::REAPED).increment(1);
        let message = format!(
            "Task failed after {} attempts: the worker running it stopped before it finished",
            max_attempts
        );
        let report =
            Report::validation_failed(&id.to_string(), task.inputs.0.clone(), &[message], now_ms());
        tasks::fail_task(db, id, &serde_json::to_value(&report)?, now_ms()).await?;
        record_finished(TaskStatus::Failed, started);
        notify_done(state, id, TaskStatus::Failed, Map::new()).await;
        return Ok(());
    }

    let cancel = CancellationToken::new();
    if task.cancel_requested {
        cancel.cancel();
    }

    let inputs = task.inputs.0;
    let report = ReportHandle::new(&id.to_string(), inputs.clone());
    // An llm node streams its tokens when someone listens (see `run_deltas`).
    let live = RunDeltas {
        signals: state.signals.clone(),
        task_id: id,
    };
    report.set_live(std::sync::Arc::new(live), task.attempt);
    let schema = match parse_schema_cached(&task.schema_json) {
        Ok(schema) => schema,
        Err(errors) => {
            // The API validated it before queueing; only a corrupted row gets here.
            let failed = Report::validation_failed(&id.to_string(), inputs, &errors, now_ms());
            tasks::fail_task(db, id, &serde_json::to_value(&failed)?, now_ms()).await?;
            record_finished(TaskStatus::Failed, started);
            notify_done(state, id, TaskStatus::Failed, Map::new()).await;
            return Ok(());
        }
    };

    let run = state
        .engine
        .run(schema, inputs, cancel.clone(), report.clone());
    tokio::pin!(run);
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    flush.tick().await;
    let mut flushed_version = report.version();
    let mut flushed_tokens = report.tokens_version();
    let mut last_write = tokio::time::Instant::now();
    // When the last progress write began and what it took, serializing included (see
    // PROGRESS_TIME_SHARE); heartbeats do not count.
    let (mut last_progress, mut write_cost) = (last_write, Duration::ZERO);
    let outcome = loop {
        tokio::select! {
            outcome = &mut run => break outcome,
            Some(_) = cancel_signal.next(), if !cancel.is_cancelled() => {
                tracing::info!("cancel requested");
                cancel.cancel();
            }
            _ = flush.tick() => {
                let (version, tokens) = (report.version(), report.tokens_version());
                let paced = last_progress.elapsed() >= write_cost * PROGRESS_TIME_SHARE;
                let due = paced
                    && (version != flushed_version
                        || (tokens != flushed_tokens
                            && last_write.elapsed() >= TOKENS_FLUSH_EVERY));
                let cancel_stored = if due {
                    last_progress = tokio::time::Instant::now();
                    last_write = last_progress;
                    let (snapshot, events) = report.to_json_with_events(task.attempt)?;
                    (flushed_version, flushed_tokens) = (version, tokens);
                    let cancel_stored =
                        tasks::save_progress(db, id, task.attempt, &snapshot, &events, now_ms())
                            .await?;
                    write_cost = last_progress.elapsed();
                    run_deltas::note_stored(&state.signals, id).await;
                    cancel_stored
                } else if last_write.elapsed() >= HEARTBEAT_EVERY {
                    last_write = tokio::time::Instant::now();
                    tasks::touch_attempt(db, id, task.attempt, now_ms()).await?
                } else {
                    false
                };
                // The cancel signal is a fast path; the store's flag reaches us even when
                // the signal was lost.
                if cancel_stored && !cancel.is_cancelled() {
                    tracing::info!("cancel requested (seen in the store)");
                    cancel.cancel();
                }
            }
        }
    };

    let final_status = TaskStatus::from(outcome.status);
    let (final_report, final_events) = report.to_json_with_events(task.attempt)?;
    let finished = state
        .tasks
        .finish(tasks::FinishedTask {
            id,
            attempt: task.attempt,
            status: final_status,
            outputs: outcome.outputs.clone(),
            report: final_report,
            events: final_events,
            at_ms: now_ms(),
        })
        .await;
    let owned = match finished {
        Ok(owned) => owned,
        // The store refuses something in this result: another attempt would produce it
        // again, so the task fails now, saying why (its batch-mates were written).
        Err(error) if refuses_a_value(&error) => {
            tracing::warn!(%error, "the store refused the run's result");
            let message = format!("The run's result could not be stored: {error}");
            // The task row keeps its inputs; the report says why the run failed.
            let failed =
                Report::validation_failed(&id.to_string(), Map::new(), &[message], now_ms());
            if tasks::fail_task(db, id, &serde_json::to_value(&failed)?, now_ms()).await? {
                record_finished(TaskStatus::Failed, started);
                notify_done(state, id, TaskStatus::Failed, Map::new()).await;
            }
            return Ok(());
        }
        Err(error) => return Err(error.into()),
    };
    if owned {
        record_finished(final_status, started);
        notify_done(state, id, final_status, outcome.outputs).await;
    } else {
        tracing::warn!(
            attempt = task.attempt,
            "a newer attempt owns the task; result discarded"
        );
    }
    Ok(())
}

/// Counts a run this worker ended, with its time since the claim.
fn record_finished(status: TaskStatus, started: std::time::Instant) {
    let status = status.as_str();
    metrics::counter!(shared::metrics::RUNS_FINISHED, "status" => status).increment(1);
    metrics::histogram!(shared::metrics::RUN_DURATION, "status" => status)
        .record(started.elapsed().as_secs_f64());
}

/// Wakes API requests waiting for this task. The store already holds the state; the message
/// carries the status and result too, so a waiting request need not read them back.
async fn notify_done(
    state: &WorkerState,
    id: Uuid,
    status: TaskStatus,
    outputs: Map<String, Value>,
) {
    let done = TaskDone { status, outputs };
    if let Err(e) = state.signals.publish_task_done(id, &done).await {
        tracing::warn!(error = %e, "could not publish task completion");
    }
}

/// Announces the outcome of a task that is already terminal (see [`notify_done`]).
async fn announce_outcome(state: &WorkerState, id: Uuid) -> Result<(), JobError> {
    if let Some(view) = tasks::get_task_result(&state.db, id).await?
        && view.status.is_terminal()
    {
        let outputs = match view.document.map(|d| d.0) {
            Some(Value::Object(outputs)) => outputs,
            _ => Map::new(),
        };
        notify_done(state, id, view.status, outputs).await;
    }
    Ok(())
}
