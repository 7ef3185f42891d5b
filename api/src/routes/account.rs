//! The signed-in account (spec `llmops-api.md`, Accounts).

use serde::Serialize;
use shared::store::accounts::Account;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::{
    envelope::{Envelope, ErrorEnvelope},
    error::ApiResult,
    extract::CurrentAccount,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_account))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    /// Avatar URL; `""` when none is set.
    pub avatar: String,
    /// Last successful password login, Unix seconds; 0 when never.
    pub last_login_at: i64,
    /// Unix seconds.
    pub created_at: i64,
}

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        Self {
            id: a.id,
            name: a.name.clone(),
            email: a.email.clone(),
            avatar: a.avatar.clone(),
            last_login_at: a.last_login_at.map_or(0, |ms| ms / 1000),
            created_at: a.created_at / 1000,
        }
    }
}

/// The account of the bearer token.
#[utoipa::path(get, path = "/api/account", tag = "account",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "the account", body = Envelope<AccountView>),
        (status = 401, description = "no valid access token", body = ErrorEnvelope),
    ))]
async fn get_account(account: CurrentAccount) -> ApiResult<AccountView> {
    Ok(Envelope::ok(AccountView::from(&account.0)))
}
