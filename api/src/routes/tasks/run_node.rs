//! `POST /api/task/run-node`: one node of a workflow run alone with given inputs (the
//! FlowGram roadmap's single-node test run, Dify's draft node run).
//!
//! The node runs as an ordinary task whose schema is that node between a start node giving
//! the inputs and an end node (`shared::workflow::single_node`): queued, run by a worker,
//! reported and streamable like any run. The request waits for it (up to `wait`
//! milliseconds, 30 s at most) and answers the node's outputs or error; a node still running
//! then answers 202 with its taskID, to follow with `/api/task/report` or `/api/task/stream`.

use std::time::Duration;

use axum::{Json, body::Bytes, http::StatusCode};
use futures::StreamExt;
use serde::Serialize;
use serde_json::{Map, Value};
use shared::{
    signals::channel,
    store::{
        now_ms,
        tasks::{self, TaskStatus},
    },
    workflow::{Report, parse_schema_cached, single_node::single_node_schema, validate_inputs},
};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    caller::TaskCaller,
    input::{TaskRunInput, json_object},
    submit::{MAX_WAIT, store_and_queue},
};
use crate::{
    error::{ApiError, Bare},
    state::AppState,
};

/// `{schema, nodeID, inputs, wait?}`.
#[derive(Debug, ToSchema)]
pub struct RunNodeInput {
    /// The workflow schema holding the node: a JSON string (as `POST /api/task/run` takes it)
    /// or the object itself.
    #[schema(value_type = Object)]
    pub schema: Value,
    /// The node to run (at any depth, loop bodies included). An llm, code or http node: the
    /// others are structure, or read other nodes' variables directly.
    #[serde(rename = "nodeID")]
    pub node_id: String,
    /// The node's inputs by name (its `inputsValues` keys), typed as its `inputs` declare.
    /// An input not given keeps its constant; one given replaces it.
    #[schema(value_type = Object)]
    pub inputs: Map<String, Value>,
    /// How long to wait for the node, in milliseconds (default and most: 30000).
    pub wait: Option<u64>,
}

impl RunNodeInput {
    fn parse(body: &Bytes) -> Result<Self, Bare> {
        let malformed = |field: &str, message: &str| Bare(ApiError::malformed(field, message));
        let mut fields = json_object(
            body,
            "request body must be a JSON object: {\"schema\", \"nodeID\", \"inputs\"}",
        )?;
        let schema = match fields.remove("schema") {
            None | Some(Value::Null) => return Err(malformed("schema", "schema is required")),
            Some(Value::String(text)) => serde_json::from_str(&text).map_err(|e| {
                Bare(ApiError::malformed(
                    "schema",
                    format!("schema is not valid JSON: {e}"),
                ))
            })?,
            Some(object @ Value::Object(_)) => object,
            Some(_) => {
                return Err(malformed(
                    "schema",
                    "schema must be the workflow JSON (a string or an object)",
                ));
            }
        };
        let node_id = match fields.remove("nodeID") {
            Some(Value::String(id)) if !id.is_empty() => id,
            None | Some(Value::Null) => return Err(malformed("nodeID", "nodeID is required")),
            Some(_) => return Err(malformed("nodeID", "nodeID must be a non-empty string")),
        };
        let inputs = match fields.remove("inputs") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(inputs)) => inputs,
            Some(_) => return Err(malformed("inputs", "inputs must be an object")),
        };
        let wait = match fields.remove("wait") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
            Some(_) => {
                return Err(malformed(
                    "wait",
                    "wait must be a whole number of milliseconds",
                ));
            }
        };
        Ok(Self {
            schema,
            node_id,
            inputs,
            wait,
        })
    }
}

/// What the node did.
#[derive(Serialize, ToSchema)]
pub struct RunNodeOutput {
    /// The run's task (its report and stream are there).
    #[serde(rename = "taskID")]
    pub task_id: String,
    #[serde(rename = "nodeID")]
    pub node_id: String,
    /// `succeeded`, `failed`, `canceled`; `processing` (answered 202) while it still runs.
    pub status: String,
    /// The node's outputs, when it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub outputs: Option<Map<String, Value>>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The node's time, in milliseconds.
    #[serde(rename = "timeCost", skip_serializing_if = "Option::is_none")]
    pub time_cost: Option<i64>,
}

/// Run one node alone with the given inputs, through the queue like a run (TaskRunNode).
///
/// Answers synchronously, like FlowGram's single-node test run and Dify's draft node run:
/// 200 with the node's `outputs`, or its `error` (`status: failed`) when the node itself
/// failed. A node still running after `wait` ms answers 202 with `status: processing` and the
/// `taskID` to follow (`/api/task/report`, `/api/task/stream`, `/api/task/cancel`).
#[utoipa::path(post, path = "/api/task/run-node", tag = "task",
    request_body = RunNodeInput,
    responses(
        (status = 200, body = RunNodeOutput, description = "the node ran: its outputs, or its error"),
        (status = 202, body = RunNodeOutput, description = "still running after `wait`: follow the taskID"),
        (status = 400, body = crate::error::TaskErrorBody,
            description = "`validate_error` naming the field: schema, nodeID (unknown, or a node that cannot run alone), inputs (unknown or of the wrong type), wait"),
        (status = 401, body = crate::error::TaskErrorBody, description = "a token is required or invalid"),
        (status = 503, body = crate::error::TaskErrorBody, description = "store unavailable")),
    security((), ("bearer" = [])))]
pub async fn run_node(
    axum::extract::State(state): axum::extract::State<AppState>,
    caller: TaskCaller,
    body: Bytes,
) -> Result<(StatusCode, Json<RunNodeOutput>), Bare> {
    let input = RunNodeInput::parse(&body)?;
    let derived =
        single_node_schema(&input.schema, &input.node_id, &input.inputs).map_err(|error| {
            Bare(ApiError::malformed(
                error.field(),
                format!("{}: {error}", error.field()),
            ))
        })?;
    let schema_text = derived.to_string();
    let schema = parse_schema_cached(&schema_text).map_err(|errors| {
        Bare(ApiError::malformed(
            "schema",
            format!("schema: {}", errors.join("; ")),
        ))
    })?;
    validate_inputs(&schema, &input.inputs).map_err(|errors| {
        Bare(ApiError::malformed(
            "inputs",
            format!("inputs: {}", errors.join("; ")),
        ))
    })?;

    let id = Uuid::now_v7();
    // Subscribed before the task exists: its end cannot be missed.
    let mut done = state
        .signals
        .subscribe(&channel::task_done(id))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let at = now_ms();
    let report = Report::new(&id.to_string(), input.inputs.clone(), at);
    let report =
        serde_json::value::to_raw_value(&report).map_err(|e| ApiError::Internal(e.into()))?;
    store_and_queue(
        &state,
        &caller,
        id,
        TaskStatus::Pending,
        TaskRunInput {
            schema: schema_text,
            inputs: input.inputs,
        },
        report,
        at,
    )
    .await?;

    let wait = input
        .wait
        .map_or(MAX_WAIT, |ms| Duration::from_millis(ms).min(MAX_WAIT));
    let deadline = tokio::time::Instant::now() + wait;
    let mut checks = state.signals.store_checks();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            message = done.next() => if message.is_some() { break },
            _ = checks.due() => {
                let ended = tasks::get_task_result(&state.db, id).await?
                    .is_some_and(|view| view.status.is_terminal());
                if ended { break }
            }
        }
    }
    let view = tasks::get_task_report(&state.db, id).await?;
    let ended = view.as_ref().is_some_and(|v| v.status.is_terminal());
    let report = view
        .and_then(|v| v.document)
        .and_then(|d| serde_json::from_value::<Report>(d.0).ok());
    let output = node_outcome(id, &input.node_id, report.as_ref(), ended);
    let status = if ended {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(output)))
}

/// The node's part of the run's report.
fn node_outcome(id: Uuid, node_id: &str, report: Option<&Report>, ended: bool) -> RunNodeOutput {
    let mut output = RunNodeOutput {
        task_id: id.to_string(),
        node_id: node_id.to_owned(),
        status: "processing".into(),
        outputs: None,
        error: None,
        time_cost: None,
    };
    if !ended {
        return output;
    }
    let Some(report) = report else {
        output.status = "failed".into();
        output.error = Some("the run left no report".into());
        return output;
    };
    match report.reports.get(node_id) {
        Some(node) => {
            output.status = node.status.status.as_str().into();
            output.time_cost = Some(node.status.time_cost);
            let snapshot = node.snapshots.last();
            output.error = snapshot.and_then(|s| s.error.clone());
            if output.error.is_none() {
                output.outputs = snapshot.and_then(|s| s.outputs.clone());
            }
        }
        // The run ended before the node started (canceled while queued, or refused).
        None => {
            output.status = report.workflow_status.status.as_str().into();
            output.error = report.messages.error.first().map(|m| m.message.clone());
        }
    }
    output
}
