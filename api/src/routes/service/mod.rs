//! The service API of published apps (`/v1/…`), authenticated by an app key
//! (`Authorization: Bearer app-…`), in Dify's service-API shapes so that its clients can
//! switch: chat (blocking or streaming) and stop ([`chat`]), an end user's conversations,
//! messages and feedback ([`conversations`]), and an OpenAI-compatible endpoint ([`openai`]).
//! Errors are `{code, message, status}` ([`crate::error::Dify`]). End users only ever see the
//! published config. The keys themselves are managed in the console
//! (`/api/apps/{app_id}/api-keys`).

mod auth;
mod chat;
mod conversations;
mod input;
mod openai;
mod views;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(chat::router())
        .merge(conversations::router())
        .merge(openai::router())
}
