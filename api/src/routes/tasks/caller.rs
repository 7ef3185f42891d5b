//! Who is calling the task API: `LLMOPS_TASK_AUTH=optional` takes a bearer token when given
//! (the run then belongs to that account), `required` refuses calls without one.

use axum::{extract::FromRequestParts, http::request::Parts};
use shared::config::TaskAuth;
use uuid::Uuid;

use crate::{
    error::{ApiError, Bare},
    extract::auth::MaybeAccount,
    state::AppState,
};

/// The caller of a task route: an account, or anonymous.
#[derive(Debug, Clone, Copy)]
pub struct TaskCaller(Option<Uuid>);

impl TaskCaller {
    pub fn account_id(&self) -> Option<Uuid> {
        self.0
    }
}

/// Whether the caller may see a task: one made with a token belongs to that account only.
pub fn may_see(owner: Option<Uuid>, caller: &TaskCaller) -> bool {
    owner.is_none() || owner == caller.account_id()
}

impl FromRequestParts<AppState> for TaskCaller {
    type Rejection = Bare;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // A rejected token stays a 401; a store fault while checking it stays a fault.
        let account = MaybeAccount::from_request_parts(parts, state).await?;
        match (account.id(), state.config.task_auth) {
            (None, TaskAuth::Required) => Err(Bare(ApiError::unauthorized(
                "an access token is required (Authorization: Bearer <access_token>)",
            ))),
            (id, _) => Ok(TaskCaller(id)),
        }
    }
}
