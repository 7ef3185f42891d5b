//! The service API's caller: `Authorization: Bearer <app key>`. The key is looked up by its
//! SHA-256 (see `shared::store::api_keys` for why a fast hash is right for random keys), the
//! per-key rate limit is applied, and the key's app comes with its configs. A missing,
//! malformed, unknown or deleted key is `unauthorized`; every rejection is rendered in the
//! service API's shape.

use axum::{extract::FromRequestParts, http::request::Parts};
use shared::store::{
    api_keys,
    apps::{self, AppConfig, AppDetail},
    now_ms,
};
use uuid::Uuid;

use crate::{
    error::{ApiError, Dify},
    extract::auth::bearer_token,
    state::AppState,
};

/// How stale `last_used_at` may get before a request refreshes it: a write per request would
/// cost every call a store round trip for a listing's sake.
const TOUCH_EVERY_MS: i64 = 60_000;

/// The code of an app that has nothing published.
pub const APP_UNAVAILABLE: &str = "app_unavailable";

/// The app a valid key belongs to.
pub struct ServiceApp {
    pub key_id: Uuid,
    pub detail: AppDetail,
}

impl ServiceApp {
    pub fn id(&self) -> Uuid {
        self.detail.app.id
    }

    /// The published config, which is all end users ever see; `app_unavailable` without one.
    pub fn published(&self) -> Result<&AppConfig, ApiError> {
        self.detail
            .published
            .as_ref()
            .ok_or_else(|| ApiError::Refused {
                code: APP_UNAVAILABLE,
                message: "the app is not published; publish it to serve end users".into(),
            })
    }
}

impl FromRequestParts<AppState> for ServiceApp {
    type Rejection = Dify;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Dify> {
        let key = bearer_token(parts)?.ok_or_else(|| {
            ApiError::unauthorized("an app key is required (Authorization: Bearer <app key>)")
        })?;
        let found = api_keys::find_by_key(&state.db, key)
            .await?
            .ok_or_else(|| ApiError::unauthorized("the app key is invalid or was deleted"))?;
        state
            .service_limiter
            .check(&[found.id.to_string()])
            .map_err(|wait| {
                tracing::warn!(key_id = %found.id, "service rate limit reached");
                ApiError::RateLimited {
                    retry_after_secs: wait.as_secs().max(1),
                }
            })?;
        let detail = apps::get_app(&state.db, found.app_id)
            .await?
            .ok_or_else(|| ApiError::unauthorized("the app key is invalid or was deleted"))?;
        let now = now_ms();
        if found
            .last_used_at
            .is_none_or(|at| now.saturating_sub(at) >= TOUCH_EVERY_MS)
        {
            let db = state.db.clone();
            tokio::spawn(async move {
                if let Err(error) = api_keys::touch_key(&db, found.id, now).await {
                    tracing::warn!(%error, "could not record the key's use");
                }
            });
        }
        Ok(Self {
            key_id: found.id,
            detail,
        })
    }
}
