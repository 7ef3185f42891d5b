//! Errors of the task routes: `{"code", "message"}` with a real HTTP status (decision 2). The
//! code words are the app API's; success bodies stay bare JSON as the FlowGram client expects.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// The request is malformed: 400 `validate_error`, naming the field.
    #[error("{0}")]
    Invalid(String),
    /// No such task (or not the caller's): 404 `not_found`.
    #[error("task {0} not found")]
    NotFound(String),
    /// A token is required or was rejected: 401 `unauthorized`.
    #[error("{0}")]
    Unauthorized(String),
    /// The store or the queue is down: 503 `fail`. Logged; not echoed.
    #[error("the task service is temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
}

/// The error body of the task routes.
#[derive(Serialize, ToSchema)]
pub struct TaskErrorBody {
    /// `validate_error`, `not_found`, `unauthorized` or `fail`.
    pub code: &'static str,
    pub message: String,
}

impl From<shared::store::StoreError> for TaskError {
    fn from(e: shared::store::StoreError) -> Self {
        TaskError::Unavailable(e.into())
    }
}

impl IntoResponse for TaskError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            TaskError::Invalid(_) => (StatusCode::BAD_REQUEST, "validate_error"),
            TaskError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            TaskError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            TaskError::Unavailable(e) => {
                tracing::error!(error = ?e, "task route failed");
                (StatusCode::SERVICE_UNAVAILABLE, "fail")
            }
        };
        (
            status,
            Json(TaskErrorBody {
                code,
                message: self.to_string(),
            }),
        )
            .into_response()
    }
}
