//! Test support for the black-box suites: throwaway Postgres and Redis servers on free ports,
//! the real `llmops-api` / `llmops-worker` binaries in either deployment, and an
//! OpenAI-compatible mock LLM on loopback.
//!
//! When Postgres or Redis binaries are missing, a test says so loudly and skips; with
//! `LLMOPS_REQUIRE_SERVICES=1` (CI) a skip is a failure.

pub mod echo;
pub use loadgen::mock_llm;
pub mod probe;
pub mod runs;
pub mod services;
pub mod stack;

pub use mock_llm::MockLlm;
pub use services::{Postgres, Redis};
pub use stack::{Mode, Stack, StackOptions};

/// Returns a free TCP port on 127.0.0.1 (the listener is closed before the port is used).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on loopback")
}

/// Skips the current test loudly, or fails it when services are required.
#[track_caller]
pub fn skip(reason: &str) {
    if std::env::var("LLMOPS_REQUIRE_SERVICES").is_ok_and(|v| v == "1" || v == "true") {
        panic!("LLMOPS_REQUIRE_SERVICES=1 but {reason}");
    }
    eprintln!(
        "\n!!!!!!!! SKIPPED: {reason} (set LLMOPS_REQUIRE_SERVICES=1 to make this a failure) !!!!!!!!\n"
    );
}

/// Runs the same async test body against the embedded and the distributed stack.
#[macro_export]
macro_rules! both_modes {
    ($(#[$meta:meta])* async fn $name:ident($stack:ident: Stack) $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn body($stack: $crate::Stack) $body

            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                if let Some(stack) = $crate::Stack::start($crate::Mode::Embedded).await {
                    body(stack).await
                }
            }

            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn distributed() {
                if let Some(stack) = $crate::Stack::start($crate::Mode::Distributed { workers: 1 }).await {
                    body(stack).await
                }
            }
        }
    };
}
