//! An app's API keys (console, owner only): create (the key is shown once; the store keeps
//! its SHA-256), list (masked), delete (the next service request with it is refused).

use axum::extract::State;
use serde::Serialize;
use shared::store::{api_keys, now_ms};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::access::{AppId, KEY_NOT_FOUND, KeyId, owned_app};
use crate::{
    envelope::{Empty, Envelope, ErrorEnvelope},
    error::{ApiError, ApiResult},
    extract::CurrentAccount,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_key, list_keys))
        .routes(routes!(delete_key))
}

fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

/// A new key: the only time the key itself is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    pub id: Uuid,
    /// `app-` and 64 hex characters; use it as `Authorization: Bearer <key>` on `/v1/…`.
    #[schema(example = "app-3f2a…")]
    pub key: String,
}

/// A key as listed: masked, with its times (Unix seconds).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyView {
    pub id: Uuid,
    #[schema(example = "app-3f2a…9c1d")]
    pub key: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl From<api_keys::ApiKey> for ApiKeyView {
    fn from(k: api_keys::ApiKey) -> Self {
        Self {
            id: k.id,
            key: k.masked_key,
            created_at: secs(k.created_at),
            last_used_at: k.last_used_at.map(secs),
        }
    }
}

/// `data` of the listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    pub list: Vec<ApiKeyView>,
}

/// Creates an API key for the app's service API. The key is in this answer only.
#[utoipa::path(post, path = "/api/apps/{app_id}/api-keys", tag = "service",
    security(("bearer" = [])),
    params(("app_id" = String, Path, description = "app id (UUID)")),
    responses(
        (status = 200, description = "the new key, shown once", body = Envelope<CreatedKey>),
        (status = 401, description = "no valid access token", body = ErrorEnvelope),
        (status = 403, description = "the app belongs to another account", body = ErrorEnvelope),
        (status = 404, description = "no such app", body = ErrorEnvelope),
    ))]
#[tracing::instrument(skip_all, fields(app_id = %app_id))]
async fn create_key(
    State(state): State<AppState>,
    account: CurrentAccount,
    AppId(app_id): AppId,
) -> ApiResult<CreatedKey> {
    owned_app(&state, &account, app_id).await?;
    let id = Uuid::new_v4();
    let key = api_keys::generate_key();
    api_keys::insert_key(&state.db, id, app_id, &key, now_ms()).await?;
    tracing::info!(key_id = %id, "app key created");
    Ok(Envelope::ok(CreatedKey { id, key }))
}

/// The app's keys, oldest first, masked.
#[utoipa::path(get, path = "/api/apps/{app_id}/api-keys", tag = "service",
    security(("bearer" = [])),
    params(("app_id" = String, Path, description = "app id (UUID)")),
    responses(
        (status = 200, description = "the keys", body = Envelope<ApiKeyList>),
        (status = 401, description = "no valid access token", body = ErrorEnvelope),
        (status = 403, description = "the app belongs to another account", body = ErrorEnvelope),
        (status = 404, description = "no such app", body = ErrorEnvelope),
    ))]
async fn list_keys(
    State(state): State<AppState>,
    account: CurrentAccount,
    AppId(app_id): AppId,
) -> ApiResult<ApiKeyList> {
    owned_app(&state, &account, app_id).await?;
    let list = api_keys::list_keys(&state.db, app_id).await?;
    Ok(Envelope::ok(ApiKeyList {
        list: list.into_iter().map(ApiKeyView::from).collect(),
    }))
}

/// Deletes a key; requests with it are refused from now on.
#[utoipa::path(post, path = "/api/apps/{app_id}/api-keys/{key_id}/delete", tag = "service",
    security(("bearer" = [])),
    params(
        ("app_id" = String, Path, description = "app id (UUID)"),
        ("key_id" = String, Path, description = "key id (UUID)"),
    ),
    responses(
        (status = 200, description = "deleted", body = Envelope<Empty>),
        (status = 401, description = "no valid access token", body = ErrorEnvelope),
        (status = 403, description = "the app belongs to another account", body = ErrorEnvelope),
        (status = 404, description = "no such app, or no such key of it", body = ErrorEnvelope),
    ))]
#[tracing::instrument(skip_all, fields(app_id = %app_id))]
async fn delete_key(
    State(state): State<AppState>,
    account: CurrentAccount,
    AppId(app_id): AppId,
    KeyId(key_id): KeyId,
) -> ApiResult<Empty> {
    owned_app(&state, &account, app_id).await?;
    if !api_keys::delete_key(&state.db, app_id, key_id).await? {
        return Err(ApiError::not_found(KEY_NOT_FOUND));
    }
    tracing::info!(%key_id, "app key deleted");
    Ok(Envelope::empty())
}
