//! `POST /v1/chat-messages` (blocking or streaming) and stop: an end user asks the app's
//! published config, through the same `chat` queue and workers as the debug chat
//! ([`crate::services::chat`]). The conversation is the user's own: given, it must be theirs;
//! absent, a new one is started, named after the question.

use std::{convert::Infallible, time::Duration};

use axum::{
    Json,
    extract::State,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use shared::{
    chat::{self, NO_PROVIDER, Round},
    store::{
        Db,
        conversations::{self, NewConversation},
        messages::{self, Message, MessageSource, MessageStatus, NewMessage},
        now_ms,
    },
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::ServiceApp,
    input::{CONVERSATION_NOT_FOUND, ChatMessageRequest, MESSAGE_NOT_FOUND, ServiceJson, UserBody},
    views::{ChatAnswer, Done, message_end},
};
use crate::{
    error::{ApiError, Dify, DifyErrorBody},
    routes::apps::MessageId,
    services::chat::{self as chat_service, Relayed, STILL_ANSWERING, Submitted},
    state::AppState,
};

/// Interval of the `ping` event on a stream (Dify's).
pub const PING_EVERY: Duration = Duration::from_secs(10);
/// The code of a failed answer.
pub const COMPLETION_ERROR: &str = "completion_request_error";
/// The code when no provider is configured.
pub const PROVIDER_NOT_INITIALIZED: &str = "provider_not_initialize";
/// Longest conversation name taken from its first question, in characters.
const NAME_CHARS: usize = 40;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(chat_messages))
        .routes(routes!(stop_chat_message))
}

/// What a service chat asks.
pub struct Question<'a> {
    pub query: &'a str,
    pub streaming: bool,
    /// The rounds the request carried (OpenAI-compatible), instead of the stored ones.
    pub history: Option<&'a [Round]>,
}

/// The end user's conversation: the given one (which must be theirs), or a new one named
/// `name`.
pub async fn conversation_for(
    state: &AppState,
    app: &ServiceApp,
    user: &str,
    given: Option<Uuid>,
    name: &str,
) -> Result<Uuid, ApiError> {
    if let Some(id) = given {
        return conversations::end_user_conversation(&state.db, app.id(), user, id)
            .await?
            .map(|c| c.id)
            .ok_or_else(|| ApiError::not_found(CONVERSATION_NOT_FOUND));
    }
    let id = Uuid::now_v7();
    let created = conversations::insert_conversation(
        &state.db,
        NewConversation {
            id,
            app_id: app.id(),
            account_id: app.detail.app.account_id,
            end_user: user,
            name,
            at_ms: now_ms(),
        },
    )
    .await?;
    if !created {
        return Err(ApiError::unauthorized(
            "the app key is invalid or was deleted",
        ));
    }
    Ok(id)
}

/// A conversation's name from its first question.
pub fn name_from(query: &str) -> String {
    query.trim().chars().take(NAME_CHARS).collect()
}

/// Stores the question with the published config and queues it.
pub async fn ask(
    state: &AppState,
    app: &ServiceApp,
    conversation_id: Uuid,
    question: Question<'_>,
) -> Result<Submitted, ApiError> {
    let config = app.published()?;
    let id = Uuid::now_v7();
    let message = |status, error| NewMessage {
        id,
        app_id: app.id(),
        conversation_id,
        account_id: app.detail.app.account_id,
        query: question.query,
        model_config: &config.model_config.0,
        memory_mode: config.memory_mode,
        stream_deltas: question.streaming,
        source: MessageSource::Service,
        history: question.history,
        status,
        error,
        at_ms: now_ms(),
    };
    if chat::provider_base_url(&state.config).is_none() {
        messages::insert_message(&state.db, message(MessageStatus::Error, NO_PROVIDER)).await?;
        return Err(ApiError::Refused {
            code: PROVIDER_NOT_INITIALIZED,
            message: NO_PROVIDER.into(),
        });
    }
    let submitted = chat_service::submit(state, message(MessageStatus::Pending, "")).await?;
    tracing::debug!(message_id = %id, key_id = %app.key_id, "service chat queued");
    Ok(submitted)
}

/// The end of an answer as the caller sees it: the message, or why it has none.
pub fn answered(message: Message) -> Result<Message, ApiError> {
    match message.status {
        MessageStatus::Normal | MessageStatus::Stopped => Ok(message),
        MessageStatus::Error => Err(ApiError::Refused {
            code: COMPLETION_ERROR,
            message: message.error,
        }),
        MessageStatus::Pending | MessageStatus::Streaming => Err(ApiError::Refused {
            code: COMPLETION_ERROR,
            message: STILL_ANSWERING.into(),
        }),
    }
}

/// Asks the app's published config. `blocking` answers the whole message with its usage;
/// `streaming` sends Server-Sent Events, one JSON object per `data:` line: `message`
/// `{message_id, conversation_id, answer}` with each piece of the answer, then
/// `message_end {message_id, conversation_id, metadata: {usage}}` (also after a stop, with the
/// partial answer) or `error {message_id, status, code, message}`; an `event: ping` every
/// 10 s keeps the connection open. A draft reaches end users only once published.
#[utoipa::path(post, path = "/v1/chat-messages", tag = "service",
    security(("app_key" = [])),
    request_body = ChatMessageRequest,
    responses(
        (status = 200, description = "the answer, or (`response_mode: streaming`) its events",
            content((ChatAnswer = "application/json"), ("text/event-stream"))),
        (status = 400, description = "`app_unavailable`: nothing is published; `completion_request_error`: the provider failed; `provider_not_initialize`; or the body is not JSON (`invalid_param`)", body = DifyErrorBody),
        (status = 401, description = "no valid app key", body = DifyErrorBody),
        (status = 404, description = "the conversation is not this user's", body = DifyErrorBody),
        (status = 422, description = "`invalid_param`: query, user or response_mode", body = DifyErrorBody),
        (status = 429, description = "`too_many_requests`: the key's rate limit", body = DifyErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(app_id = %app.id()))]
async fn chat_messages(
    State(state): State<AppState>,
    app: ServiceApp,
    ServiceJson(body): ServiceJson<ChatMessageRequest>,
) -> Result<Response, Dify> {
    let request = body.parse()?;
    app.published()?;
    let conversation_id = conversation_for(
        &state,
        &app,
        &request.user,
        request.conversation_id,
        &name_from(&request.query),
    )
    .await?;
    let question = Question {
        query: &request.query,
        streaming: request.streaming,
        history: None,
    };
    let submitted = ask(&state, &app, conversation_id, question).await?;
    if request.streaming {
        return Ok(event_stream(state.db.clone(), conversation_id, submitted).into_response());
    }
    let message = answered(chat_service::wait_for_answer(&state.db, submitted).await?)?;
    Ok(Json(ChatAnswer::from(message)).into_response())
}

fn data(value: Value) -> Event {
    Event::default()
        .json_data(value)
        .unwrap_or_else(|_| Event::default().data("{}"))
}

/// Dify's events for a relayed chat.
fn event_stream(
    db: Db,
    conversation_id: Uuid,
    submitted: Submitted,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let id = submitted.id;
    let created_at = now_ms().div_euclid(1000);
    let events = chat_service::relay(db, submitted).map(move |relayed| {
        Ok(match relayed {
            Relayed::Delta(delta) => data(json!({
                "event": "message", "task_id": id, "id": id, "message_id": id,
                "conversation_id": conversation_id, "answer": delta, "created_at": created_at,
            })),
            Relayed::End(end) => match end.and_then(answered) {
                Ok(message) => data(message_end(&message)),
                Err(error) => {
                    let body = Dify(error).body();
                    data(json!({
                        "event": "error", "task_id": id, "message_id": id,
                        "conversation_id": conversation_id,
                        "status": body.status, "code": body.code, "message": body.message,
                    }))
                }
            },
        })
    });
    Sse::new(events).keep_alive(
        KeepAlive::new()
            .interval(PING_EVERY)
            .event(Event::default().event("ping")),
    )
}

/// The end user's message of the app: not deleted, in one of the user's conversations.
pub async fn users_message(
    state: &AppState,
    app: &ServiceApp,
    user: &str,
    id: Uuid,
) -> Result<Message, ApiError> {
    let not_found = || ApiError::not_found(MESSAGE_NOT_FOUND);
    let message = messages::get_message(&state.db, id)
        .await?
        .filter(|m| m.app_id == app.id() && m.deleted_at.is_none())
        .ok_or_else(not_found)?;
    conversations::end_user_conversation(&state.db, app.id(), user, message.conversation_id)
        .await?
        .ok_or_else(not_found)?;
    Ok(message)
}

/// Stops the generation of the user's message; the partial answer is kept (status
/// `stopped`). A message that already finished is left as it is.
#[utoipa::path(post, path = "/v1/chat-messages/{message_id}/stop", tag = "service",
    security(("app_key" = [])),
    params(("message_id" = String, Path, description = "the message id (Dify's task_id)")),
    request_body = UserBody,
    responses(
        (status = 200, description = "stop requested (or nothing left to stop)", body = Done),
        (status = 401, description = "no valid app key", body = DifyErrorBody),
        (status = 404, description = "no such message of this user", body = DifyErrorBody),
        (status = 422, description = "`invalid_param`: user", body = DifyErrorBody),
        (status = 429, description = "`too_many_requests`", body = DifyErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(app_id = %app.id()))]
async fn stop_chat_message(
    State(state): State<AppState>,
    app: ServiceApp,
    message_id: Result<MessageId, ApiError>,
    ServiceJson(body): ServiceJson<UserBody>,
) -> Result<Json<Done>, Dify> {
    let user = body.user()?;
    let MessageId(message_id) = message_id.map_err(|_| ApiError::not_found(MESSAGE_NOT_FOUND))?;
    users_message(&state, &app, &user, message_id).await?;
    chat_service::stop(&state, message_id).await?;
    Ok(Json(Done::SUCCESS))
}
