//! LLM apps' chat logic, free of HTTP and SQL: the app config (`model_config`, `memory_mode`)
//! with its validation, prompt assembly for a debug chat, the long-term memory summarising
//! request, a token estimate, and the events a chat publishes while it runs.
//!
//! The API validates with [`config`]; the worker builds requests with [`prompt`] and reports
//! progress with [`events`]. Everything here is a pure function, unit-tested in place.

pub mod config;
pub mod events;
pub mod prompt;

use std::time::Duration;

pub use config::{MemoryMode, ModelConfig};
pub use events::ChatEvent;
pub use prompt::Round;

use crate::{config::Config, llm::LlmClient};

/// Attempts per provider call (connect errors, 429 and 5xx are retried).
pub const LLM_ATTEMPTS: u32 = 2;
/// Pause before the retry.
pub const LLM_RETRY_BACKOFF: Duration = Duration::from_millis(250);

/// Longest long-term memory summary, in characters: what `POST .../long-term-memory`
/// accepts, and where a summary the LLM wrote is cut (a model that ignores the summarising
/// prompt's length limit would otherwise grow every later prompt without bound).
pub const MAX_SUMMARY_CHARS: usize = 10_000;

/// `summary` cut to [`MAX_SUMMARY_CHARS`] characters.
pub fn bounded_summary(summary: &str) -> &str {
    match summary.char_indices().nth(MAX_SUMMARY_CHARS) {
        Some((end, _)) => &summary[..end],
        None => summary,
    }
}

/// The message a debug chat answers when no provider is configured.
pub const NO_PROVIDER: &str = "no LLM provider is configured: set LLMOPS_LLM_BASE_URL (and LLMOPS_LLM_API_KEY if the provider needs one)";

/// The client debug chats use: one connection pool per process, the configured timeout
/// (`LLMOPS_LLM_TIMEOUT_SECS`: until the response starts, then between streamed events).
/// The provider is the operator's own (`LLMOPS_LLM_BASE_URL`), so no egress policy applies;
/// NUL characters are dropped from its text, which is stored in text columns.
pub fn llm_client(config: &Config) -> LlmClient {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .unwrap_or_default();
    LlmClient::new(http)
        .with_timeout(Duration::from_secs(config.llm_timeout_secs.max(1)))
        .with_retry(LLM_ATTEMPTS, LLM_RETRY_BACKOFF)
        .without_nul()
}

/// The configured provider's base URL, if any (an empty value counts as none).
pub fn provider_base_url(config: &Config) -> Option<&str> {
    config
        .llm_base_url
        .as_deref()
        .map(str::trim)
        .filter(|url| !url.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_cut_at_the_character_limit() {
        assert_eq!(bounded_summary("short"), "short");
        let long = "记".repeat(MAX_SUMMARY_CHARS + 5);
        assert_eq!(bounded_summary(&long).chars().count(), MAX_SUMMARY_CHARS);
        let exact = "x".repeat(MAX_SUMMARY_CHARS);
        assert_eq!(bounded_summary(&exact), exact);
    }
}
