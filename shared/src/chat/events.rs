//! What a running chat publishes on `message:<id>:events` (see
//! [`crate::signals::channel::message_events`]): JSON objects tagged by `event`. The worker
//! publishes deltas only when the caller streams; the final event always, after the store
//! holds the outcome. A final event carries the message as stored, so the waiting request
//! need not read it back (it does when the event comes without it, or never comes).

use serde::{Deserialize, Serialize};

use crate::store::messages::Message;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ChatEvent {
    /// A piece of the answer.
    AnswerDelta { delta: String },
    /// The answer is stored (status `normal`).
    MessageEnd {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stored: Option<Message>,
    },
    /// The provider call failed; the message is stored with status `error` and this text.
    Error { message: String },
    /// Stopped on request; the partial answer is stored (status `stopped`).
    Stopped {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stored: Option<Message>,
    },
}

impl ChatEvent {
    /// Whether this event ends the chat.
    pub fn is_final(&self) -> bool {
        !matches!(self, ChatEvent::AnswerDelta { .. })
    }

    /// The stored message the event carries, if any.
    pub fn into_stored(self) -> Option<Message> {
        match self {
            ChatEvent::MessageEnd { stored } | ChatEvent::Stopped { stored } => stored,
            _ => None,
        }
    }

    pub fn to_payload(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// `None` for a payload that is not a chat event.
    pub fn from_payload(payload: &str) -> Option<Self> {
        serde_json::from_str(payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::store::messages::MessageStatus;

    fn stored() -> Message {
        Message {
            id: Uuid::nil(),
            app_id: Uuid::nil(),
            conversation_id: Uuid::nil(),
            query: "hi".into(),
            answer: "hello".into(),
            answer_tokens: 1,
            prompt_tokens: 3,
            total_tokens: 4,
            response_latency: 2.5,
            status: MessageStatus::Normal,
            error: String::new(),
            rating: None,
            created_at: 1,
            updated_at: 2,
            deleted_at: None,
        }
    }

    #[test]
    fn events_round_trip_as_tagged_json() {
        let delta = ChatEvent::AnswerDelta {
            delta: "Hi ".into(),
        };
        assert_eq!(
            delta.to_payload(),
            r#"{"event":"answer_delta","delta":"Hi "}"#
        );
        assert_eq!(
            ChatEvent::Stopped { stored: None }.to_payload(),
            r#"{"event":"stopped"}"#
        );
        for event in [
            delta,
            ChatEvent::MessageEnd {
                stored: Some(stored()),
            },
            ChatEvent::Stopped { stored: None },
            ChatEvent::Error {
                message: "boom".into(),
            },
        ] {
            assert_eq!(
                ChatEvent::from_payload(&event.to_payload()),
                Some(event.clone())
            );
        }
        assert_eq!(ChatEvent::from_payload("nonsense"), None);
        assert_eq!(
            ChatEvent::from_payload(r#"{"event":"message_end"}"#),
            Some(ChatEvent::MessageEnd { stored: None })
        );
    }

    #[test]
    fn only_deltas_are_not_final_and_final_events_may_carry_the_message() {
        assert!(
            !ChatEvent::AnswerDelta {
                delta: String::new()
            }
            .is_final()
        );
        let end = ChatEvent::MessageEnd {
            stored: Some(stored()),
        };
        assert!(end.is_final());
        assert_eq!(end.into_stored(), Some(stored()));
        assert!(ChatEvent::Stopped { stored: None }.is_final());
        let error = ChatEvent::Error {
            message: String::new(),
        };
        assert!(error.is_final());
        assert_eq!(error.into_stored(), None);
    }
}
