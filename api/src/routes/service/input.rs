//! Request bodies and parameters of the service API, with Dify's field names, and the
//! extractors that render their rejections in the service API's shape. Bodies accept fields
//! they do not know (Dify's clients send `inputs`, `files`, `auto_generate_name`; OpenAI's
//! send sampling options the app's config overrides).

use axum::{
    extract::{FromRequest, FromRequestParts, Request},
    http::request::Parts,
};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::Value;
use shared::store::messages::Rating;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    error::{ApiError, Dify, FieldErrors},
    extract::{ApiJson, ApiQuery},
    routes::apps::parse_query,
};

/// Longest `user`, in characters.
pub const MAX_USER: usize = 255;
/// Default and largest `limit` of a listing.
pub const DEFAULT_LIMIT: i64 = 20;
pub const MAX_LIMIT: i64 = 100;
pub const CONVERSATION_NOT_FOUND: &str = "conversation not found";
pub const MESSAGE_NOT_FOUND: &str = "message not found";

/// A JSON body with the service API's rejection.
pub struct ServiceJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ServiceJson<T> {
    type Rejection = Dify;

    async fn from_request(req: Request, state: &S) -> Result<Self, Dify> {
        let ApiJson(value) = ApiJson::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// Query parameters with the service API's rejection.
pub struct ServiceQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ServiceQuery<T> {
    type Rejection = Dify;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Dify> {
        let ApiQuery(value) = ApiQuery::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// The end user: trimmed, 1–255 characters.
pub fn parse_user(raw: Option<&str>) -> Result<String, FieldErrors> {
    let user = raw.unwrap_or_default().trim();
    if user.is_empty() {
        return Err(FieldErrors::single("user", "user is required"));
    }
    if user.chars().count() > MAX_USER {
        return Err(FieldErrors::single(
            "user",
            format!("user must be at most {MAX_USER} characters"),
        ));
    }
    Ok(user.to_owned())
}

/// An optional id: absent or `""` is none; anything not a UUID names nothing, so it is
/// `not_found` with `what`.
fn parse_optional_id(raw: Option<&str>, what: &str) -> Result<Option<Uuid>, ApiError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(raw) => Uuid::parse_str(raw)
            .map(Some)
            .map_err(|_| ApiError::not_found(what)),
    }
}

/// `limit`: 1–100, default 20.
fn parse_limit(raw: Option<&str>) -> Result<i64, FieldErrors> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(DEFAULT_LIMIT),
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(FieldErrors::single(
                "limit",
                format!("limit must be an integer from 1 to {MAX_LIMIT}"),
            )),
        },
    }
}

/// `POST /v1/chat-messages`. Dify's `inputs`, `files` and `auto_generate_name` are accepted
/// and ignored (apps have no input variables).
#[derive(Debug, Deserialize, ToSchema)]
pub struct ChatMessageRequest {
    /// The question, 1–2000 characters.
    #[schema(required = true, example = "What can you do?")]
    pub query: Option<String>,
    /// The end user's identifier, chosen by the caller (1–255 characters).
    #[schema(required = true, example = "user-123")]
    pub user: Option<String>,
    /// Continue this conversation of the same user; absent or `""` starts a new one.
    pub conversation_id: Option<String>,
    /// `blocking` (default) or `streaming`.
    #[schema(example = "blocking")]
    pub response_mode: Option<String>,
}

/// A chat request that passed every rule.
pub struct ChatMessage {
    pub query: String,
    pub user: String,
    pub conversation_id: Option<Uuid>,
    pub streaming: bool,
}

impl ChatMessageRequest {
    pub fn parse(self) -> Result<ChatMessage, ApiError> {
        let mut errors = FieldErrors::new();
        let query = errors.check("query", parse_query("query", self.query));
        let user = parse_user(self.user.as_deref())
            .map_err(|e| errors.add("user", e.first_message().to_owned()))
            .ok();
        let streaming = match self.response_mode.as_deref().map(str::trim) {
            None | Some("" | "blocking") => Some(false),
            Some("streaming") => Some(true),
            Some(_) => {
                errors.add(
                    "response_mode",
                    "response_mode must be `blocking` or `streaming`",
                );
                None
            }
        };
        errors.into_result()?;
        let conversation_id =
            parse_optional_id(self.conversation_id.as_deref(), CONVERSATION_NOT_FOUND)?;
        match (query, user, streaming) {
            (Some(query), Some(user), Some(streaming)) => Ok(ChatMessage {
                query,
                user,
                conversation_id,
                streaming,
            }),
            _ => Err(ApiError::invalid("body", "invalid request")),
        }
    }
}

/// A body naming only the end user (stop, delete a conversation).
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserBody {
    #[schema(required = true, example = "user-123")]
    pub user: Option<String>,
}

impl UserBody {
    pub fn user(&self) -> Result<String, ApiError> {
        parse_user(self.user.as_deref()).map_err(ApiError::Validation)
    }
}

/// `POST /v1/messages/{message_id}/feedbacks` (Dify's `content` is accepted and ignored).
#[derive(Debug, Deserialize, ToSchema)]
pub struct FeedbackRequest {
    /// `like`, `dislike`, or `null` to withdraw the rating.
    #[schema(value_type = Option<String>, example = "like")]
    pub rating: Option<Value>,
    #[schema(required = true, example = "user-123")]
    pub user: Option<String>,
}

impl FeedbackRequest {
    pub fn parse(self) -> Result<(Option<Rating>, String), ApiError> {
        let mut errors = FieldErrors::new();
        let rating = match self.rating {
            None | Some(Value::Null) => Some(None),
            Some(Value::String(s)) if s.parse::<Rating>().is_ok() => s.parse().ok().map(Some),
            Some(_) => {
                errors.add("rating", "rating must be `like`, `dislike` or null");
                None
            }
        };
        let user = parse_user(self.user.as_deref())
            .map_err(|e| errors.add("user", e.first_message().to_owned()))
            .ok();
        errors.into_result()?;
        match (rating, user) {
            (Some(rating), Some(user)) => Ok((rating, user)),
            _ => Err(ApiError::invalid("body", "invalid request")),
        }
    }
}

/// `GET /v1/conversations`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationParams {
    /// The end user (required).
    pub user: Option<String>,
    /// The last conversation of the previous page: this page continues after it.
    pub last_id: Option<String>,
    /// 1–100, default 20.
    pub limit: Option<String>,
}

/// A listing request that passed every rule: the user, the cursor and the limit.
pub struct Listing {
    pub user: String,
    pub cursor: Option<Uuid>,
    pub limit: i64,
}

fn listing(
    user: Option<&str>,
    cursor: Option<&str>,
    cursor_what: &str,
    limit: Option<&str>,
) -> Result<Listing, ApiError> {
    let mut errors = FieldErrors::new();
    let user = parse_user(user)
        .map_err(|e| errors.add("user", e.first_message().to_owned()))
        .ok();
    let limit = parse_limit(limit)
        .map_err(|e| errors.add("limit", e.first_message().to_owned()))
        .ok();
    errors.into_result()?;
    let cursor = parse_optional_id(cursor, cursor_what)?;
    match (user, limit) {
        (Some(user), Some(limit)) => Ok(Listing {
            user,
            cursor,
            limit,
        }),
        _ => Err(ApiError::invalid("user", "user is required")),
    }
}

impl ConversationParams {
    pub fn parse(&self) -> Result<Listing, ApiError> {
        listing(
            self.user.as_deref(),
            self.last_id.as_deref(),
            CONVERSATION_NOT_FOUND,
            self.limit.as_deref(),
        )
    }
}

/// `GET /v1/messages`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageParams {
    /// The conversation (required).
    pub conversation_id: Option<String>,
    /// The end user (required).
    pub user: Option<String>,
    /// The oldest message of the previous page: this page holds the ones before it.
    pub first_id: Option<String>,
    /// 1–100, default 20.
    pub limit: Option<String>,
}

impl MessageParams {
    /// The conversation and the listing.
    pub fn parse(&self) -> Result<(Uuid, Listing), ApiError> {
        let conversation = match self.conversation_id.as_deref().map(str::trim) {
            None | Some("") => {
                return Err(ApiError::invalid(
                    "conversation_id",
                    "conversation_id is required",
                ));
            }
            Some(raw) => {
                Uuid::parse_str(raw).map_err(|_| ApiError::not_found(CONVERSATION_NOT_FOUND))?
            }
        };
        let listing = listing(
            self.user.as_deref(),
            self.first_id.as_deref(),
            MESSAGE_NOT_FOUND,
            self.limit.as_deref(),
        )?;
        Ok((conversation, listing))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn chat(body: Value) -> Result<ChatMessage, ApiError> {
        serde_json::from_value::<ChatMessageRequest>(body)
            .unwrap()
            .parse()
    }

    #[test]
    fn chat_requests_name_every_broken_field() {
        let ok = chat(json!({"query": "hi", "user": " u1 ", "inputs": {}, "files": []})).unwrap();
        assert_eq!(
            (ok.user.as_str(), ok.streaming, ok.conversation_id),
            ("u1", false, None)
        );
        assert!(chat(json!({"query": "hi", "user": "u", "response_mode": "streaming", "conversation_id": ""})).unwrap().streaming);
        let Err(ApiError::Validation(errors)) = chat(json!({"response_mode": "fast"})) else {
            panic!("expected a validation error");
        };
        for field in ["query", "user", "response_mode"] {
            assert!(errors.get(field).is_some(), "{field}");
        }
        assert!(matches!(
            chat(json!({"query": "hi", "user": "u", "conversation_id": "nope"})),
            Err(ApiError::NotFound(_))
        ));
        assert!(chat(json!({"query": "hi", "user": "x".repeat(256)})).is_err());
    }

    #[test]
    fn feedback_ratings_are_like_dislike_or_null() {
        let parse = |v: Value| {
            serde_json::from_value::<FeedbackRequest>(v)
                .unwrap()
                .parse()
        };
        assert_eq!(
            parse(json!({"rating": "like", "user": "u"})).unwrap().0,
            Some(Rating::Like)
        );
        assert_eq!(parse(json!({"rating": null, "user": "u"})).unwrap().0, None);
        assert!(parse(json!({"rating": "meh", "user": "u"})).is_err());
        assert!(parse(json!({"rating": "like"})).is_err());
    }

    #[test]
    fn listings_check_user_and_limit() {
        let params = |user: Option<&str>, limit: Option<&str>| ConversationParams {
            user: user.map(Into::into),
            last_id: None,
            limit: limit.map(Into::into),
        };
        assert_eq!(params(Some("u"), None).parse().unwrap().limit, 20);
        assert!(params(None, None).parse().is_err());
        assert!(params(Some("u"), Some("0")).parse().is_err());
        assert!(params(Some("u"), Some("101")).parse().is_err());
        assert_eq!(params(Some("u"), Some("100")).parse().unwrap().limit, 100);
    }
}
