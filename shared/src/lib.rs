//! The library both llmops binaries stand on. One module per concern; see DESIGN.md.

pub mod auth;
pub mod backends;
pub mod chat;
pub mod clock;
pub mod config;
pub mod llm;
pub mod metrics;
pub mod queue;
pub mod redis_conn;
pub mod shutdown;
pub mod signals;
pub mod store;
pub mod submission;
pub mod telemetry;
pub mod text_enum;
pub mod workflow;
