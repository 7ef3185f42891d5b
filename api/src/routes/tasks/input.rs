//! Request bodies of the task routes, parsed by hand so that every mistake gets a message that
//! names the field (the FlowGram client sends JSON without always saying so).

use axum::{body::Bytes, extract::Query};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::error::{ApiError, Bare};

/// `{schema, inputs}` of run and validate.
#[derive(Debug, ToSchema)]
pub struct TaskRunInput {
    /// The FlowGram workflow schema, as a JSON **string** (as the FlowGram client sends it).
    pub schema: String,
    /// Start-node inputs.
    #[schema(value_type = Object)]
    pub inputs: Map<String, Value>,
}

/// The request body as a JSON object; `not_an_object` says what is expected otherwise.
pub(super) fn json_object(body: &Bytes, not_an_object: &str) -> Result<Map<String, Value>, Bare> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        Bare(ApiError::malformed(
            "body",
            format!("request body is not valid JSON: {e}"),
        ))
    })?;
    match value {
        Value::Object(fields) => Ok(fields),
        _ => Err(Bare(ApiError::malformed("body", not_an_object))),
    }
}

impl TaskRunInput {
    pub fn parse(body: &Bytes) -> Result<Self, Bare> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(Bare(ApiError::malformed(
                "body",
                "request body is required: {\"schema\": string, \"inputs\": object}",
            )));
        }
        let mut fields = json_object(body, "request body must be a JSON object")?;
        let schema = match fields.remove("schema") {
            None | Some(Value::Null) => {
                return Err(Bare(ApiError::malformed("schema", "schema is required")));
            }
            Some(Value::String(s)) => s,
            Some(_) => {
                return Err(Bare(ApiError::malformed(
                    "schema",
                    "schema must be a string holding the workflow JSON",
                )));
            }
        };
        let inputs = match fields.remove("inputs") {
            None | Some(Value::Null) => {
                return Err(Bare(ApiError::malformed("inputs", "inputs is required")));
            }
            Some(Value::Object(m)) => m,
            Some(_) => {
                return Err(Bare(ApiError::malformed(
                    "inputs",
                    "inputs must be an object",
                )));
            }
        };
        // The document itself must at least be a JSON object; the workflow validators judge
        // the rest (and a task that fails them is stored as failed, decision 5).
        // Checked without building the document: the validators parse it (or find it cached).
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&schema) {
            return Err(Bare(ApiError::malformed(
                "schema",
                format!("schema is not valid JSON: {e}"),
            )));
        }
        if !schema.trim_start().starts_with('{') {
            return Err(Bare(ApiError::malformed(
                "schema",
                "schema must be a JSON object",
            )));
        }
        Ok(Self { schema, inputs })
    }
}

/// `{taskID}` of cancel.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TaskCancelInput {
    #[serde(rename = "taskID")]
    pub task_id: String,
}

impl TaskCancelInput {
    pub fn parse(body: &Bytes) -> Result<Self, Bare> {
        let value: Value = serde_json::from_slice(body).map_err(|_| {
            Bare(ApiError::malformed(
                "body",
                "request body must be JSON: {\"taskID\": string}",
            ))
        })?;
        match value.get("taskID") {
            Some(Value::String(s)) => Ok(Self { task_id: s.clone() }),
            Some(_) => Err(Bare(ApiError::malformed(
                "taskID",
                "taskID must be a string",
            ))),
            None => Err(Bare(ApiError::malformed("taskID", "taskID is required"))),
        }
    }
}

/// `?taskID=` of result and report.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    /// The id `POST /api/task/run` returned.
    #[serde(rename = "taskID")]
    #[param(rename = "taskID")]
    pub task_id: Option<String>,
    /// Result only: wait up to this many milliseconds (at most 30000) for the task to finish
    /// before answering. Without it the answer is immediate.
    pub wait: Option<u64>,
}

impl TaskQuery {
    pub fn from_query(
        query: Result<Query<TaskQuery>, axum::extract::rejection::QueryRejection>,
    ) -> Result<Self, Bare> {
        query.map(|Query(q)| q).map_err(|e| {
            Bare(ApiError::malformed(
                "query",
                format!("invalid query: {}", e.body_text()),
            ))
        })
    }

    /// The task named by `taskID`: the raw text (for messages) and its id.
    pub fn task(&self) -> Result<(&str, Uuid), Bare> {
        let raw = self
            .task_id
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Bare(ApiError::malformed("taskID", "taskID is required")))?;
        Ok((raw, parse_task_id(raw)?))
    }
}

/// A task id from the wire: anything that is not a UUID names no task.
fn parse_task_id(raw: &str) -> Result<Uuid, Bare> {
    Uuid::parse_str(raw).map_err(|_| Bare(task_not_found(raw)))
}

/// The answer for a task id that names no task the caller may see.
pub fn task_not_found(raw_id: &str) -> ApiError {
    ApiError::not_found(format!("task {raw_id} not found"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &str) -> Result<TaskRunInput, String> {
        TaskRunInput::parse(&Bytes::from(body.to_owned())).map_err(|e| e.to_string())
    }

    #[test]
    fn each_malformed_run_body_names_its_problem() {
        assert!(run("").unwrap_err().contains("required"));
        assert!(run("{").unwrap_err().contains("not valid JSON"));
        assert!(run("[]").unwrap_err().contains("JSON object"));
        assert_eq!(run(r#"{"inputs":{}}"#).unwrap_err(), "schema is required");
        assert!(
            run(r#"{"schema":1,"inputs":{}}"#)
                .unwrap_err()
                .starts_with("schema must be a string")
        );
        assert!(
            run(r#"{"schema":"{nope","inputs":{}}"#)
                .unwrap_err()
                .starts_with("schema is not valid JSON")
        );
        assert_eq!(
            run(r#"{"schema":"[1]","inputs":{}}"#).unwrap_err(),
            "schema must be a JSON object"
        );
        assert_eq!(run(r#"{"schema":"{}"}"#).unwrap_err(), "inputs is required");
        assert_eq!(
            run(r#"{"schema":"{}","inputs":[]}"#).unwrap_err(),
            "inputs must be an object"
        );
        assert!(run(r#"{"schema":"{}","inputs":{"a":1}}"#).is_ok());
    }
}
