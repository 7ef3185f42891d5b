//! Who is calling the task API: `LLMOPS_TASK_AUTH=optional` takes a bearer token when given
//! (the run then belongs to that account), `required` refuses calls without one.

use axum::{extract::FromRequestParts, http::request::Parts};
use shared::config::TaskAuth;
use uuid::Uuid;

use super::error::TaskError;
use crate::{extract::auth::MaybeAccount, state::AppState};

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

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let account = MaybeAccount::from_request_parts(parts, state)
            .await
            .map_err(|e| TaskError::Unauthorized(e.to_string()))?;
        match (account.id(), state.config.task_auth) {
            (None, TaskAuth::Required) => Err(TaskError::Unauthorized(
                "an access token is required (Authorization: Bearer <access_token>)".into(),
            )),
            (id, _) => Ok(TaskCaller(id)),
        }
    }
}
