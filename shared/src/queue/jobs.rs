//! The jobs: what travels on each queue. A job carries the id of its store row and nothing
//! else; the data lives in the store.

use apalis::prelude::TaskId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Queue names (Redis key prefixes / SQLite `job_type`).
pub const WORKFLOW_QUEUE: &str = "llmops-workflow";
pub const CHAT_QUEUE: &str = "llmops-chat";

/// Run one workflow task (`tasks.id`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunWorkflow {
    pub task_id: Uuid,
    /// The submitting request's trace (W3C `traceparent`) when traces are exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// Answer one chat message (`messages.id`): a debug chat or a service API chat. The message
/// row carries everything that differs (the config snapshot, the conversation, the source).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AnswerMessage {
    pub message_id: Uuid,
    /// The asking request's trace (W3C `traceparent`) when traces are exported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl RunWorkflow {
    /// A job outside any request's trace (the re-queue sweep's).
    pub fn untraced(task_id: Uuid) -> Self {
        Self {
            task_id,
            traceparent: None,
        }
    }
}

impl AnswerMessage {
    /// A job outside any request's trace (the re-queue sweep's).
    pub fn untraced(message_id: Uuid) -> Self {
        Self {
            message_id,
            traceparent: None,
        }
    }
}

/// A job type and the queue it travels on.
pub trait Job: Serialize + for<'de> Deserialize<'de> + Send + Sync + Unpin + 'static {
    const QUEUE: &'static str;

    /// The id of the store row the job runs.
    fn row_id(&self) -> Uuid;

    /// The job's id in the queue, derived from its row's id: one row, one queue id, so a
    /// second push of the same row is recognised and ignored (both UUIDs and ULIDs are 128
    /// bits; a UUIDv7's leading 48 bits are a millisecond timestamp, as a ULID's are).
    fn queue_id(&self) -> TaskId {
        TaskId::from_ulid(ulid::Ulid::from(self.row_id().as_u128()))
    }
}
impl Job for RunWorkflow {
    const QUEUE: &'static str = WORKFLOW_QUEUE;
    fn row_id(&self) -> Uuid {
        self.task_id
    }
}
impl Job for AnswerMessage {
    const QUEUE: &'static str = CHAT_QUEUE;
    fn row_id(&self) -> Uuid {
        self.message_id
    }
}
