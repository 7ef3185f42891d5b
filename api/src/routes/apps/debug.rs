//! Debug chat (seed 1.5; spec `llmops-api.md`, Debug chat) and stop.
//!
//! The API never calls the LLM: it stores the question (`pending`, with the draft config) and
//! queues it on the `chat` queue ([`crate::services::chat`], shared with the service API).
//! Then it either waits for the final event and answers the stored message (blocking call),
//! or relays the events as Server-Sent Events (`Accept: text/event-stream`).
//!
//! Stop sets a flag in the store and signals `chat:<id>:stop`, which reaches whichever
//! worker holds the chat in either deployment; a question still queued is stopped on the spot.

use std::{convert::Infallible, time::Duration};

use axum::{
    extract::State,
    http::{HeaderMap, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::{Stream, StreamExt, stream};
use serde_json::json;
use shared::{
    chat::{self, NO_PROVIDER},
    store::{
        Db,
        messages::{self, Message, MessageSource, MessageStatus, NewMessage},
        now_ms,
    },
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    access::{self, AppId, MessageId, debug_message, owned_app},
    input::DebugRequest,
    views::MessageView,
};
use crate::{
    envelope::{Empty, Envelope, ErrorEnvelope},
    error::{ApiError, ApiResult},
    extract::{ApiJson, CurrentAccount},
    services::chat::{self as chat_service, Relayed, Submitted},
    state::AppState,
};

/// Interval of the `: ping` comment on an event stream.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(debug_chat))
        .routes(routes!(stop_debug_message))
}

/// Whether the caller asked for Server-Sent Events.
fn wants_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/event-stream"))
}

/// Seed 1.5: asks the app's effective config (the draft, else the published one) a question
/// in the debug conversation.
///
/// The blocking call answers the stored message once a worker has answered it (`fail` with
/// the provider's error text when the provider failed or is not configured; the question is
/// stored either way). With `Accept: text/event-stream` the answer is streamed as events, one
/// JSON object per `data:` line: `message_created {id, conversation_id}`, then
/// `answer_delta {id, delta}` for each piece, then one of `message_end {message}`,
/// `error {id, message}` (the error text) or `stopped {id, message}` (the stored message
/// with its partial answer); a `: ping` comment every 15 s keeps the connection open.
#[utoipa::path(post, path = "/api/apps/{app_id}/debug", tag = "apps",
    security(("bearer" = [])),
    params(("app_id" = String, Path, description = "app id (UUID)")),
    request_body = DebugRequest,
    responses(
        (status = 200, description = "the answered message, or (with `Accept: text/event-stream`) its events",
            content((Envelope<MessageView> = "application/json"), ("text/event-stream"))),
        (status = 400, description = "`fail`: the provider failed or is not configured (the question is stored with status `error`); or the body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "no valid access token", body = ErrorEnvelope),
        (status = 403, description = "the app belongs to another account", body = ErrorEnvelope),
        (status = 404, description = "no such app", body = ErrorEnvelope),
        (status = 422, description = "query missing or longer than 2000 characters", body = ErrorEnvelope),
    ))]
#[tracing::instrument(skip_all, fields(app_id = %app_id))]
async fn debug_chat(
    State(state): State<AppState>,
    account: CurrentAccount,
    AppId(app_id): AppId,
    headers: HeaderMap,
    ApiJson(body): ApiJson<DebugRequest>,
) -> Result<Response, ApiError> {
    let query = body.into_query().map_err(ApiError::Validation)?;
    let detail = owned_app(&state, &account, app_id).await?;
    let config = detail.effective_config().ok_or_else(|| {
        ApiError::fail(
            "the app has no config to debug with; save one with PUT /apps/{app_id}/config",
        )
    })?;
    let conversation_id = messages::ensure_debug_conversation(
        &state.db,
        app_id,
        account.id,
        detail.app.debug_conversation_id,
        now_ms(),
    )
    .await?
    .ok_or_else(|| ApiError::not_found(access::APP_NOT_FOUND))?;

    // Time-ordered, like task ids: new rows append to the id index.
    let id = Uuid::now_v7();
    let stream = wants_event_stream(&headers);
    let message = |status, error| NewMessage {
        id,
        app_id,
        conversation_id,
        account_id: account.id,
        query: &query,
        model_config: &config.model_config.0,
        memory_mode: config.memory_mode,
        stream_deltas: stream,
        source: MessageSource::Debug,
        history: None,
        status,
        error,
        at_ms: now_ms(),
    };
    if chat::provider_base_url(&state.config).is_none() {
        // Kept, so the question is not lost; answered with what to configure.
        messages::insert_message(&state.db, message(MessageStatus::Error, NO_PROVIDER)).await?;
        return Err(ApiError::fail(NO_PROVIDER));
    }

    let submitted = chat_service::submit(&state, message(MessageStatus::Pending, "")).await?;
    tracing::debug!(message_id = %id, stream, "debug chat queued");

    if stream {
        return Ok(event_stream(state.db.clone(), conversation_id, submitted).into_response());
    }
    let message = MessageView::from(chat_service::wait_for_answer(&state.db, submitted).await?);
    match message.status {
        MessageStatus::Normal | MessageStatus::Stopped => Ok(Envelope::ok(message).into_response()),
        MessageStatus::Error => Err(ApiError::fail(message.error)),
        MessageStatus::Pending | MessageStatus::Streaming => {
            Err(ApiError::fail(chat_service::STILL_ANSWERING))
        }
    }
}

fn sse_event(name: &str, data: serde_json::Value) -> Event {
    Event::default()
        .event(name)
        .json_data(data)
        .unwrap_or_else(|_| Event::default().event(name))
}

/// The last event of a stream.
fn final_event(id: Uuid, end: Result<Message, ApiError>) -> Event {
    let message = match end {
        Ok(message) => MessageView::from(message),
        Err(ApiError::Internal(e)) => {
            tracing::error!(error.cause_chain = ?e, "reading the answered message failed");
            return sse_event("error", json!({"id": id, "message": "internal error"}));
        }
        Err(e) => return sse_event("error", json!({"id": id, "message": e.to_string()})),
    };
    match message.status {
        MessageStatus::Normal => sse_event("message_end", json!({ "message": message })),
        MessageStatus::Stopped => sse_event("stopped", json!({"id": id, "message": message})),
        MessageStatus::Error => sse_event("error", json!({"id": id, "message": message.error})),
        MessageStatus::Pending | MessageStatus::Streaming => sse_event(
            "error",
            json!({"id": id, "message": chat_service::STILL_ANSWERING}),
        ),
    }
}

/// `message_created`, the deltas as they come, then the final event; the stream ends there.
fn event_stream(
    db: Db,
    conversation_id: Uuid,
    submitted: Submitted,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let id = submitted.id;
    let created = sse_event(
        "message_created",
        json!({"id": id, "conversation_id": conversation_id}),
    );
    let relayed = chat_service::relay(db, submitted).map(move |relayed| match relayed {
        Relayed::Delta(delta) => sse_event("answer_delta", json!({"id": id, "delta": delta})),
        Relayed::End(end) => final_event(id, end),
    });
    Sse::new(stream::once(async move { created }).chain(relayed).map(Ok))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("ping"))
}

/// Stops the generation of a debug message: the worker holding it closes the provider
/// request and keeps the partial answer (status `stopped`); a question not yet picked up is
/// stopped at once. A message that already finished is left as it is.
#[utoipa::path(post, path = "/api/apps/{app_id}/messages/{message_id}/stop", tag = "messages",
    security(("bearer" = [])),
    params(
        ("app_id" = String, Path, description = "app id (UUID)"),
        ("message_id" = String, Path, description = "message id (UUID)"),
    ),
    responses(
        (status = 200, description = "stop requested (or nothing left to stop)", body = Envelope<Empty>),
        (status = 401, description = "no valid access token", body = ErrorEnvelope),
        (status = 403, description = "the app belongs to another account", body = ErrorEnvelope),
        (status = 404, description = "no such app, or no such message in its debug conversation", body = ErrorEnvelope),
    ))]
#[tracing::instrument(skip_all, fields(message_id = %message_id))]
async fn stop_debug_message(
    State(state): State<AppState>,
    account: CurrentAccount,
    AppId(app_id): AppId,
    MessageId(message_id): MessageId,
) -> ApiResult<Empty> {
    let detail = owned_app(&state, &account, app_id).await?;
    debug_message(&state, &detail, message_id).await?;
    chat_service::stop(&state, message_id).await?;
    Ok(Envelope::empty())
}
