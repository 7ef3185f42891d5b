//! Ids in app paths and the ownership rule: a malformed or unknown id is `not_found` (never a
//! 400 or 500 from the path parser), an app of another account is `forbidden`, and a message
//! counts only inside its app's debug conversation.

use std::collections::HashMap;

use axum::{
    extract::{FromRequestParts, Path},
    http::request::Parts,
};
use shared::store::{
    accounts::Account,
    apps::{self, AppDetail},
    messages::{self, Message},
};
use uuid::Uuid;

use crate::{error::ApiError, state::AppState};

pub const APP_NOT_FOUND: &str = "app not found";
pub const APP_FORBIDDEN: &str = "this app belongs to another account";
pub const KEY_NOT_FOUND: &str = "API key not found";
pub const MESSAGE_NOT_FOUND: &str = "message not found in this app's debug conversation";

/// The `{app_id}` of the path.
#[derive(Clone, Copy, Debug)]
pub struct AppId(pub Uuid);

/// The `{message_id}` of the path.
#[derive(Clone, Copy, Debug)]
pub struct MessageId(pub Uuid);

/// The `{key_id}` of the path.
#[derive(Clone, Copy, Debug)]
pub struct KeyId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for KeyId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        path_uuid(parts, state, "key_id")
            .await?
            .map(KeyId)
            .ok_or_else(|| ApiError::not_found(KEY_NOT_FOUND))
    }
}

async fn path_uuid<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    name: &str,
) -> Result<Option<Uuid>, ApiError> {
    let params = Path::<HashMap<String, String>>::from_request_parts(parts, state)
        .await
        .map(|Path(p)| p)
        .unwrap_or_default();
    Ok(params
        .get(name)
        .and_then(|raw| Uuid::parse_str(raw.trim()).ok()))
}

impl<S: Send + Sync> FromRequestParts<S> for AppId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        path_uuid(parts, state, "app_id")
            .await?
            .map(AppId)
            .ok_or_else(|| ApiError::not_found(APP_NOT_FOUND))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for MessageId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        path_uuid(parts, state, "message_id")
            .await?
            .map(MessageId)
            .ok_or_else(|| ApiError::not_found(MESSAGE_NOT_FOUND))
    }
}

/// The app with its configs, when it exists and belongs to `account`.
pub async fn owned_app(
    state: &AppState,
    account: &Account,
    id: Uuid,
) -> Result<AppDetail, ApiError> {
    let detail = apps::get_app(&state.db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(APP_NOT_FOUND))?;
    if detail.app.account_id != account.id {
        return Err(ApiError::forbidden(APP_FORBIDDEN));
    }
    Ok(detail)
}

/// A message of the app's debug conversation that is not deleted.
pub async fn debug_message(
    state: &AppState,
    detail: &AppDetail,
    id: Uuid,
) -> Result<Message, ApiError> {
    let not_found = || ApiError::not_found(MESSAGE_NOT_FOUND);
    let conversation = detail.app.debug_conversation_id.ok_or_else(not_found)?;
    messages::get_message(&state.db, id)
        .await?
        .filter(|m| m.conversation_id == conversation && m.deleted_at.is_none())
        .ok_or_else(not_found)
}
