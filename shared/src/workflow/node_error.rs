//! [`NodeError`], the one failure type of a node, in a module of its own: the scope returns it
//! when an input cannot be resolved and executors return it when they fail, so it sits below
//! both (and below the engine, which reports it).

/// A node failure; the message is what the report shows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NodeError {
    message: String,
}

impl NodeError {
    pub fn new(message: impl Into<String>) -> Self {
        NodeError {
            message: message.into(),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<String> for NodeError {
    fn from(message: String) -> Self {
        NodeError::new(message)
    }
}

impl From<&str> for NodeError {
    fn from(message: &str) -> Self {
        NodeError::new(message)
    }
}
