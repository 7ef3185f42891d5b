//! What a running chat publishes on `message:<id>:events` (see
//! [`crate::signals::channel::message_events`]): JSON objects tagged by `event`. The worker
//! publishes deltas only when the caller streams; the final event always. The store holds
//! the outcome before the final event is published, so a listener reads the message back.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ChatEvent {
    /// A piece of the answer.
    AnswerDelta { delta: String },
    /// The answer is stored (status `normal`).
    MessageEnd,
    /// The provider call failed; the message is stored with status `error` and this text.
    Error { message: String },
    /// Stopped on request; the partial answer is stored (status `stopped`).
    Stopped,
}

impl ChatEvent {
    /// Whether this event ends the chat.
    pub fn is_final(&self) -> bool {
        !matches!(self, ChatEvent::AnswerDelta { .. })
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
    use super::*;

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
            ChatEvent::MessageEnd.to_payload(),
            r#"{"event":"message_end"}"#
        );
        for event in [
            delta,
            ChatEvent::MessageEnd,
            ChatEvent::Stopped,
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
    }

    #[test]
    fn only_deltas_are_not_final() {
        assert!(
            !ChatEvent::AnswerDelta {
                delta: String::new()
            }
            .is_final()
        );
        assert!(ChatEvent::MessageEnd.is_final());
        assert!(ChatEvent::Stopped.is_final());
        assert!(
            ChatEvent::Error {
                message: String::new()
            }
            .is_final()
        );
    }
}
