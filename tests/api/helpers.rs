//! What the suites share: the harness (`Stack`, `spawn_app`, `both_deployments!`, the
//! services, the mock LLM) and the assertions on the API's answers.

pub use harness::*;
use reqwest::StatusCode;
use serde_json::Value;

/// The six codes of the envelope.
pub const CODES: [&str; 6] = [
    "success",
    "fail",
    "not_found",
    "unauthorized",
    "forbidden",
    "validate_error",
];

/// Asserts the body is exactly `{code, message, data}` with one of the six codes, a string
/// message and an object as data, and that the HTTP status follows the code.
#[track_caller]
pub fn assert_envelope(status: StatusCode, body: &Value) {
    let obj = body
        .as_object()
        .unwrap_or_else(|| panic!("not a JSON object: {body}"));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "data", "message"], "{body}");
    let code = body["code"].as_str().unwrap_or_default();
    assert!(CODES.contains(&code), "unknown code: {body}");
    assert!(body["message"].is_string(), "{body}");
    assert!(body["data"].is_object(), "{body}");
    let allowed: &[u16] = match code {
        "success" => &[200],
        "validate_error" => &[400, 413, 422],
        "unauthorized" => &[401],
        "forbidden" => &[403],
        "not_found" => &[404],
        _ => &[400, 405, 429, 500, 503],
    };
    assert!(
        allowed.contains(&status.as_u16()),
        "status {status} for {body}"
    );
}

/// The embedded stack's own store with its queue refusing every new job (a trigger), for tests
/// that a row and its job commit together; [`JobsRefused::accept`] lifts it.
pub struct JobsRefused {
    pub store: sqlx::SqlitePool,
}

impl JobsRefused {
    pub async fn on(stack: &Stack) -> Self {
        let file = stack.dir.join("data").join("llmops.db");
        let store = sqlx::SqlitePool::connect(&format!("sqlite://{}", file.display()))
            .await
            .unwrap();
        sqlx::query(
            "CREATE TRIGGER refuse_jobs BEFORE INSERT ON Jobs
             BEGIN SELECT RAISE(ABORT, 'the queue refuses jobs'); END",
        )
        .execute(&store)
        .await
        .unwrap();
        Self { store }
    }

    /// How many rows `table` holds.
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&self.store)
            .await
            .unwrap()
    }

    pub async fn accept(self) {
        sqlx::query("DROP TRIGGER refuse_jobs")
            .execute(&self.store)
            .await
            .unwrap();
    }
}
