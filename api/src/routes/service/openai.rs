//! The OpenAI-compatible endpoint: any OpenAI SDK or tool uses a published app by pointing
//! its base URL at `<server>/v1` with the app key as its API key. The app's published config
//! supplies the model, temperature, preset prompt and memory; the request's `messages` give
//! the query (the last user message) and the history (earlier user/assistant pairs, the last
//! `dialog_round` of them). The request's `model` and sampling options are accepted and
//! ignored; its system messages too (the preset prompt is the app's). Long-term memory is kept
//! per end user (`user`, default `openai`) in a conversation of its own.
//!
//! Same queue, workers and relay as every chat ([`crate::services::chat`]).

use std::convert::Infallible;

use axum::{
    Json,
    extract::State,
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures::{Stream, StreamExt, stream};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::{
    chat::{ModelConfig, Round},
    store::{conversations, messages::Message, now_ms},
};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::ServiceApp,
    chat::{Question, answered, ask, conversation_for},
    input::{ServiceJson, parse_user},
};
use crate::{
    error::{ApiError, Dify, DifyErrorBody, FieldErrors},
    routes::apps::parse_query,
    services::chat::{self as chat_service, Relayed, Submitted},
    state::AppState,
};

/// The end user of requests without `user`.
pub const DEFAULT_USER: &str = "openai";
/// The name of each end user's conversation on this endpoint.
pub const CONVERSATION_NAME: &str = "OpenAI-compatible";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(chat_completions))
        .routes(routes!(list_models))
}

/// `POST /v1/chat/completions`: the fields read; others (`model`, sampling options) are
/// accepted and ignored, as the app's published config rules.
#[derive(Debug, Deserialize, ToSchema)]
pub struct CompletionRequest {
    /// `[{role, content}]`; the last must be the user's. `content` is a string or an array
    /// of `{type: "text", text}` parts.
    #[schema(required = true, value_type = Vec<Object>,
        example = json!([{"role": "user", "content": "Hello"}]))]
    pub messages: Option<Value>,
    /// Stream OpenAI chunks, ending with `data: [DONE]`.
    pub stream: Option<bool>,
    /// The end user (default `openai`): whose long-term memory applies.
    pub user: Option<String>,
}

/// The text of a message's `content`: a string, or the text parts of an array.
fn content_text(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        _ => None,
    }
}

/// The query (the last message, the user's) and the earlier user/assistant rounds.
pub fn split_messages(messages: Option<Value>) -> Result<(String, Vec<Round>), FieldErrors> {
    let invalid = |m: &str| FieldErrors::single("messages", m);
    let Some(Value::Array(list)) = messages else {
        return Err(invalid("messages must be a non-empty array"));
    };
    let mut turns = Vec::with_capacity(list.len());
    for (i, m) in list.iter().enumerate() {
        let role = m["role"].as_str();
        let text = content_text(&m["content"]);
        match (role, text) {
            (Some(role), Some(text)) => turns.push((role, text)),
            _ => {
                return Err(invalid(&format!(
                    "messages[{i}] must have a string role and a string or text-part content"
                )));
            }
        }
    }
    let Some((last_role, last)) = turns.pop() else {
        return Err(invalid("messages must be a non-empty array"));
    };
    if last_role != "user" {
        return Err(invalid("the last of messages must be the user's"));
    }
    let query = parse_query("messages", Some(last)).map_err(|m| invalid(&m))?;
    let mut rounds = Vec::new();
    let mut pending: Option<String> = None;
    for (role, text) in turns {
        match role {
            "user" => {
                pending = Some(match pending.take() {
                    Some(earlier) => format!("{earlier}\n{text}"),
                    None => text,
                });
            }
            "assistant" => {
                if let Some(query) = pending.take() {
                    rounds.push(Round {
                        query,
                        answer: text,
                    });
                }
            }
            // System, developer and tool messages: the app's preset prompt rules.
            _ => {}
        }
    }
    Ok((query, rounds))
}

fn usage(m: &Message) -> Value {
    json!({
        "prompt_tokens": m.prompt_tokens,
        "completion_tokens": m.answer_tokens,
        "total_tokens": m.total_tokens,
    })
}

fn completion_id(id: Uuid) -> String {
    format!("chatcmpl-{}", id.simple())
}

/// A chat completion answered by the app's published config (OpenAI's request and response
/// shapes; `stream: true` answers `chat.completion.chunk` events ending with `data: [DONE]`,
/// the last chunk carrying `usage`).
#[utoipa::path(post, path = "/v1/chat/completions", tag = "service",
    security(("app_key" = [])),
    request_body = CompletionRequest,
    responses(
        (status = 200, description = "a `chat.completion`, or (with `stream: true`) its chunks",
            content(("application/json"), ("text/event-stream"))),
        (status = 400, description = "`app_unavailable`: nothing is published; `completion_request_error`: the provider failed", body = DifyErrorBody),
        (status = 401, description = "no valid app key", body = DifyErrorBody),
        (status = 422, description = "`invalid_param`: messages or user", body = DifyErrorBody),
        (status = 429, description = "`too_many_requests`", body = DifyErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(app_id = %app.id()))]
async fn chat_completions(
    State(state): State<AppState>,
    app: ServiceApp,
    ServiceJson(body): ServiceJson<CompletionRequest>,
) -> Result<Response, Dify> {
    let (query, mut rounds) = split_messages(body.messages).map_err(ApiError::Validation)?;
    let user = match body.user.as_deref() {
        None => DEFAULT_USER.to_owned(),
        Some(raw) => parse_user(Some(raw)).map_err(ApiError::Validation)?,
    };
    let published = app.published()?;
    let config = ModelConfig::from_stored(&published.model_config.0, &state.config.llm_model);
    // Only the last `dialog_round` rounds are sent; the message keeps no more.
    let keep = (config.dialog_round as usize).min(rounds.len());
    rounds.drain(..rounds.len() - keep);
    let existing =
        conversations::latest_named(&state.db, app.id(), &user, CONVERSATION_NAME).await?;
    let conversation_id = match existing {
        Some(c) => c.id,
        None => conversation_for(&state, &app, &user, None, CONVERSATION_NAME).await?,
    };
    let stream = body.stream.unwrap_or(false);
    let question = Question {
        query: &query,
        streaming: stream,
        history: Some(&rounds),
    };
    let submitted = ask(&state, &app, conversation_id, question).await?;
    if stream {
        return Ok(chunk_stream(state.db.clone(), config.model, submitted).into_response());
    }
    let message = answered(chat_service::wait_for_answer(&state.db, submitted).await?)?;
    Ok(Json(json!({
        "id": completion_id(message.id),
        "object": "chat.completion",
        "created": message.created_at.div_euclid(1000),
        "model": config.model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": message.answer},
            "finish_reason": "stop",
        }],
        "usage": usage(&message),
    }))
    .into_response())
}

fn data(value: Value) -> Event {
    Event::default()
        .json_data(value)
        .unwrap_or_else(|_| Event::default().data("{}"))
}

/// OpenAI's chunks: the role first, then the deltas, then the finish with `usage` (or an
/// `error` object, which the SDKs raise), then `[DONE]`.
fn chunk_stream(
    db: shared::store::Db,
    model: String,
    submitted: Submitted,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let id = completion_id(submitted.id);
    let created = now_ms().div_euclid(1000);
    let chunk = move |delta: Value, finish: Value| {
        json!({
            "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        })
    };
    let first = data(chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    ));
    let relayed = chat_service::relay(db, submitted).map(move |relayed| match relayed {
        Relayed::Delta(delta) => data(chunk(json!({"content": delta}), Value::Null)),
        Relayed::End(end) => match end.and_then(answered) {
            Ok(message) => {
                let mut last = chunk(json!({}), json!("stop"));
                last["usage"] = usage(&message);
                data(last)
            }
            Err(error) => {
                let body = Dify(error).body();
                data(json!({"error": {"message": body.message, "type": body.code, "code": body.code}}))
            }
        },
    });
    let done = Event::default().data("[DONE]");
    Sse::new(
        stream::once(async move { first })
            .chain(relayed)
            .chain(stream::once(async move { done }))
            .map(Ok),
    )
    .keep_alive(KeepAlive::new())
}

/// The models this key can use: its app, by id.
#[utoipa::path(get, path = "/v1/models", tag = "service",
    security(("app_key" = [])),
    responses(
        (status = 200, description = "`{object: list, data: [{id, object: model, created, owned_by}]}`"),
        (status = 401, description = "no valid app key", body = DifyErrorBody),
        (status = 429, description = "`too_many_requests`", body = DifyErrorBody),
    ))]
async fn list_models(app: ServiceApp) -> Json<Value> {
    let created = app.detail.app.created_at.div_euclid(1000);
    Json(json!({
        "object": "list",
        "data": [{
            "id": app.id(),
            "object": "model",
            "created": created,
            "owned_by": "llmops",
            "name": app.detail.app.name,
        }],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_user_message_is_the_query_and_earlier_pairs_the_history() {
        let (query, rounds) = split_messages(Some(json!([
            {"role": "system", "content": "ignored"},
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1"},
            {"role": "user", "content": [{"type": "text", "text": "q2"}]},
            {"role": "assistant", "content": "a2"},
            {"role": "user", "content": "now"},
        ])))
        .unwrap();
        assert_eq!(query, "now");
        assert_eq!(
            rounds,
            [
                Round {
                    query: "q1".into(),
                    answer: "a1".into()
                },
                Round {
                    query: "q2".into(),
                    answer: "a2".into()
                },
            ]
        );
        for bad in [
            json!([]),
            json!("hi"),
            json!([{"role": "assistant", "content": "x"}]),
            json!([{"role": "user"}]),
            json!([{"role": "user", "content": "  "}]),
        ] {
            let errors = split_messages(Some(bad.clone())).unwrap_err();
            assert!(errors.get("messages").is_some(), "{bad}");
        }
        assert!(split_messages(None).is_err());
    }
}
