//! The debug conversation's messages (seed 1.6 and 1.7).

use axum::extract::State;
use shared::store::{messages, now_ms};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    access::{self, AppId, MessageId, owned_app},
    views::MessageView,
};
use crate::{
    envelope::{Empty, Envelope, ErrorEnvelope, Page},
    error::{ApiError, ApiResult},
    extract::{CurrentAccount, PageParams, Pagination},
    state::AppState,
};

/// Seed 1.7's success message.
pub const MESSAGE_DELETED: &str = "删除AI应用调试消息成功";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_debug_messages))
        .routes(routes!(delete_debug_message))
}

/// Seed 1.6: the debug conversation's messages, newest first, 20 a page at most; deleted
/// messages are left out.
#[utoipa::path(get, path = "/api/apps/{app_id}/messages", tag = "messages",
    security(("bearer" = [])),
    params(("app_id" = String, Path, description = "app id (UUID)"), PageParams),
    responses(
        (status = 200, description = "one page of messages", body = Envelope<Page<MessageView>>),
        (status = 401, description = "no valid access token", body = ErrorEnvelope),
        (status = 403, description = "the app belongs to another account", body = ErrorEnvelope),
        (status = 404, description = "no such app", body = ErrorEnvelope),
        (status = 422, description = "a bad page parameter (page_size is at most 20)", body = ErrorEnvelope),
    ))]
async fn list_debug_messages(
    State(state): State<AppState>,
    account: CurrentAccount,
    AppId(id): AppId,
    page: Pagination<20>,
) -> ApiResult<Page<MessageView>> {
    let detail = owned_app(&state, &account, id).await?;
    let (list, total) = match detail.app.debug_conversation_id {
        Some(conversation) => {
            messages::list_messages(&state.db, conversation, page.limit(), page.offset()).await?
        }
        None => (Vec::new(), 0),
    };
    Ok(Envelope::ok(page.page(list, total).map(MessageView::from)))
}

/// Seed 1.7: soft-deletes a message of the app's debug conversation. It no longer appears
/// in the list and is no longer sent as history.
#[utoipa::path(post, path = "/api/apps/{app_id}/messages/{message_id}/delete", tag = "messages",
    security(("bearer" = [])),
    params(
        ("app_id" = String, Path, description = "app id (UUID)"),
        ("message_id" = String, Path, description = "message id (UUID)"),
    ),
    responses(
        (status = 200, description = "`删除AI应用调试消息成功`", body = Envelope<Empty>),
        (status = 401, description = "no valid access token", body = ErrorEnvelope),
        (status = 403, description = "the app belongs to another account", body = ErrorEnvelope),
        (status = 404, description = "no such app, or no such message in its debug conversation", body = ErrorEnvelope),
    ))]
async fn delete_debug_message(
    State(state): State<AppState>,
    account: CurrentAccount,
    AppId(app_id): AppId,
    MessageId(message_id): MessageId,
) -> ApiResult<Empty> {
    let detail = owned_app(&state, &account, app_id).await?;
    let conversation = detail
        .app
        .debug_conversation_id
        .ok_or_else(|| ApiError::not_found(access::MESSAGE_NOT_FOUND))?;
    if !messages::soft_delete_message(&state.db, conversation, message_id, now_ms()).await? {
        return Err(ApiError::not_found(access::MESSAGE_NOT_FOUND));
    }
    Ok(Envelope::message(MESSAGE_DELETED))
}
