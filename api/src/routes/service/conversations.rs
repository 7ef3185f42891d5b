//! An end user's conversations and messages (Dify's service API): list the user's
//! conversations, page through one's messages, delete a conversation, rate a message. Every
//! route checks that what it touches belongs to the `user` given and to the key's app.

use axum::{Json, extract::State};
use shared::store::{conversations, now_ms};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::ServiceApp,
    chat::users_message,
    input::{
        CONVERSATION_NOT_FOUND, ConversationParams, FeedbackRequest, MESSAGE_NOT_FOUND,
        MessageParams, ServiceJson, ServiceQuery, UserBody,
    },
    views::{ConversationView, Done, Listed, MessageItem},
};
use crate::{
    error::{ApiError, Dify, DifyErrorBody},
    routes::apps::MessageId,
    state::AppState,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_conversations))
        .routes(routes!(delete_conversation))
        .routes(routes!(list_messages))
        .routes(routes!(message_feedback))
}

/// A page: the first `limit` of `items` (fetched one more than `limit` to know whether more
/// follow).
fn page<T, V: From<T>>(mut items: Vec<T>, limit: i64) -> Listed<V> {
    let has_more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    Listed {
        limit,
        has_more,
        data: items.into_iter().map(V::from).collect(),
    }
}

/// The user's conversations of the app, newest first; `last_id` continues after the last
/// one of the previous page.
#[utoipa::path(get, path = "/v1/conversations", tag = "service",
    security(("app_key" = [])),
    params(ConversationParams),
    responses(
        (status = 200, description = "one page", body = Listed<ConversationView>),
        (status = 401, description = "no valid app key", body = DifyErrorBody),
        (status = 404, description = "`last_id` is not a conversation of this user", body = DifyErrorBody),
        (status = 422, description = "`invalid_param`: user or limit", body = DifyErrorBody),
        (status = 429, description = "`too_many_requests`", body = DifyErrorBody),
    ))]
async fn list_conversations(
    State(state): State<AppState>,
    app: ServiceApp,
    ServiceQuery(params): ServiceQuery<ConversationParams>,
) -> Result<Json<Listed<ConversationView>>, Dify> {
    let listing = params.parse()?;
    let items = conversations::list_conversations(
        &state.db,
        app.id(),
        &listing.user,
        listing.cursor,
        listing.limit + 1,
    )
    .await?
    .ok_or_else(|| ApiError::not_found(CONVERSATION_NOT_FOUND))?;
    Ok(Json(page(items, listing.limit)))
}

/// Deletes the user's conversation with its messages.
#[utoipa::path(delete, path = "/v1/conversations/{conversation_id}", tag = "service",
    security(("app_key" = [])),
    params(("conversation_id" = String, Path, description = "conversation id (UUID)")),
    request_body = UserBody,
    responses(
        (status = 200, description = "deleted", body = Done),
        (status = 401, description = "no valid app key", body = DifyErrorBody),
        (status = 404, description = "no such conversation of this user", body = DifyErrorBody),
        (status = 422, description = "`invalid_param`: user", body = DifyErrorBody),
        (status = 429, description = "`too_many_requests`", body = DifyErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(app_id = %app.id()))]
async fn delete_conversation(
    State(state): State<AppState>,
    app: ServiceApp,
    axum::extract::Path(raw_id): axum::extract::Path<String>,
    ServiceJson(body): ServiceJson<UserBody>,
) -> Result<Json<Done>, Dify> {
    let user = body.user()?;
    let not_found = || ApiError::not_found(CONVERSATION_NOT_FOUND);
    let id = uuid::Uuid::parse_str(raw_id.trim()).map_err(|_| not_found())?;
    conversations::end_user_conversation(&state.db, app.id(), &user, id)
        .await?
        .ok_or_else(not_found)?;
    if !conversations::delete_conversation(&state.db, id).await? {
        return Err(not_found().into());
    }
    tracing::info!(conversation_id = %id, "conversation deleted");
    Ok(Json(Done::SUCCESS))
}

/// The messages of the user's conversation, a page at a time going back: each page is in
/// chronological order; `first_id` (the oldest of the previous page) asks for the ones
/// before it.
#[utoipa::path(get, path = "/v1/messages", tag = "service",
    security(("app_key" = [])),
    params(MessageParams),
    responses(
        (status = 200, description = "one page", body = Listed<MessageItem>),
        (status = 401, description = "no valid app key", body = DifyErrorBody),
        (status = 404, description = "no such conversation of this user, or `first_id` is not in it", body = DifyErrorBody),
        (status = 422, description = "`invalid_param`: conversation_id, user or limit", body = DifyErrorBody),
        (status = 429, description = "`too_many_requests`", body = DifyErrorBody),
    ))]
async fn list_messages(
    State(state): State<AppState>,
    app: ServiceApp,
    ServiceQuery(params): ServiceQuery<MessageParams>,
) -> Result<Json<Listed<MessageItem>>, Dify> {
    let (conversation_id, listing) = params.parse()?;
    conversations::end_user_conversation(&state.db, app.id(), &listing.user, conversation_id)
        .await?
        .ok_or_else(|| ApiError::not_found(CONVERSATION_NOT_FOUND))?;
    let items = conversations::list_messages_before(
        &state.db,
        conversation_id,
        listing.cursor,
        listing.limit + 1,
    )
    .await?
    .ok_or_else(|| ApiError::not_found(MESSAGE_NOT_FOUND))?;
    let mut listed: Listed<MessageItem> = page(items, listing.limit);
    // Fetched newest first; a page reads oldest first.
    listed.data.reverse();
    Ok(Json(listed))
}

/// Rates the user's message (`null` withdraws the rating).
#[utoipa::path(post, path = "/v1/messages/{message_id}/feedbacks", tag = "service",
    security(("app_key" = [])),
    params(("message_id" = String, Path, description = "message id (UUID)")),
    request_body = FeedbackRequest,
    responses(
        (status = 200, description = "recorded", body = Done),
        (status = 401, description = "no valid app key", body = DifyErrorBody),
        (status = 404, description = "no such message of this user", body = DifyErrorBody),
        (status = 422, description = "`invalid_param`: rating or user", body = DifyErrorBody),
        (status = 429, description = "`too_many_requests`", body = DifyErrorBody),
    ))]
async fn message_feedback(
    State(state): State<AppState>,
    app: ServiceApp,
    message_id: Result<MessageId, ApiError>,
    ServiceJson(body): ServiceJson<FeedbackRequest>,
) -> Result<Json<Done>, Dify> {
    let (rating, user) = body.parse()?;
    let MessageId(id) = message_id.map_err(|_| ApiError::not_found(MESSAGE_NOT_FOUND))?;
    users_message(&state, &app, &user, id).await?;
    if !conversations::set_rating(&state.db, id, rating, now_ms()).await? {
        return Err(ApiError::not_found(MESSAGE_NOT_FOUND).into());
    }
    Ok(Json(Done::SUCCESS))
}
