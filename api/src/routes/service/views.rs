//! What the service API answers, in Dify's shapes. Times are Unix seconds.

use serde::Serialize;
use serde_json::{Value, json};
use shared::store::messages::{Conversation, Message, MessageStatus, Rating};
use utoipa::ToSchema;
use uuid::Uuid;

fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

/// A message's token usage and latency.
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    /// Seconds from the worker's start to the last token.
    pub latency: f64,
}

impl From<&Message> for Usage {
    fn from(m: &Message) -> Self {
        Self {
            prompt_tokens: m.prompt_tokens,
            completion_tokens: m.answer_tokens,
            total_tokens: m.total_tokens,
            latency: m.response_latency / 1000.0,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Metadata {
    pub usage: Usage,
}

/// The blocking answer of `POST /v1/chat-messages`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChatAnswer {
    /// Always `message`.
    #[schema(example = "message")]
    pub event: &'static str,
    /// The message id again (Dify's `task_id`, what stop takes).
    pub task_id: Uuid,
    pub id: Uuid,
    pub message_id: Uuid,
    pub conversation_id: Uuid,
    /// Always `chat`.
    pub mode: &'static str,
    pub answer: String,
    pub metadata: Metadata,
    pub created_at: i64,
}

impl From<Message> for ChatAnswer {
    fn from(m: Message) -> Self {
        Self {
            event: "message",
            task_id: m.id,
            id: m.id,
            message_id: m.id,
            conversation_id: m.conversation_id,
            mode: "chat",
            metadata: Metadata {
                usage: Usage::from(&m),
            },
            answer: m.answer,
            created_at: secs(m.created_at),
        }
    }
}

/// `message_end` of a stream.
pub fn message_end(m: &Message) -> Value {
    json!({
        "event": "message_end",
        "task_id": m.id,
        "id": m.id,
        "message_id": m.id,
        "conversation_id": m.conversation_id,
        "metadata": {"usage": Usage::from(m)},
    })
}

/// A conversation of `GET /v1/conversations`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConversationView {
    pub id: Uuid,
    pub name: String,
    #[schema(value_type = Object)]
    pub inputs: Value,
    /// Always `normal`.
    pub status: &'static str,
    pub introduction: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Conversation> for ConversationView {
    fn from(c: Conversation) -> Self {
        Self {
            id: c.id,
            name: c.name,
            inputs: json!({}),
            status: "normal",
            introduction: String::new(),
            created_at: secs(c.created_at),
            updated_at: secs(c.updated_at),
        }
    }
}

/// The end user's rating of a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct Feedback {
    #[schema(value_type = String, example = "like")]
    pub rating: Rating,
}

/// A message of `GET /v1/messages`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageItem {
    pub id: Uuid,
    pub conversation_id: Uuid,
    #[schema(value_type = Object)]
    pub inputs: Value,
    pub query: String,
    pub answer: String,
    /// `pending`, `streaming`, `normal`, `error` or `stopped`.
    #[schema(value_type = String, example = "normal")]
    pub status: MessageStatus,
    /// Why the answer failed; `""` otherwise.
    pub error: String,
    pub feedback: Option<Feedback>,
    pub metadata: Metadata,
    pub created_at: i64,
}

impl From<Message> for MessageItem {
    fn from(m: Message) -> Self {
        Self {
            id: m.id,
            conversation_id: m.conversation_id,
            inputs: json!({}),
            metadata: Metadata {
                usage: Usage::from(&m),
            },
            feedback: m.rating.map(|rating| Feedback { rating }),
            query: m.query,
            answer: m.answer,
            status: m.status,
            error: m.error,
            created_at: secs(m.created_at),
        }
    }
}

/// A page of a cursor listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct Listed<T> {
    pub limit: i64,
    /// Whether older items follow.
    pub has_more: bool,
    pub data: Vec<T>,
}

/// `{"result": "success"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Done {
    #[schema(example = "success")]
    pub result: &'static str,
}

impl Done {
    pub const SUCCESS: Done = Done { result: "success" };
}
