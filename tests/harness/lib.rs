//! Test support for the black-box suites: throwaway Postgres and Redis servers on free ports,
//! either deployment with the API in-process (`spawn_app`) or as the real `llmops-api`, workers
//! as real `llmops-worker` processes, and an OpenAI-compatible mock LLM on loopback.
//!
//! When Postgres or Redis binaries are missing, a test says so loudly and skips; with
//! `LLMOPS_REQUIRE_SERVICES=1` (CI) a skip is a failure.

pub use loadgen::{echo, mock_llm};
pub mod probe;
pub mod runs;
pub mod services;
pub mod stack;

pub use mock_llm::MockLlm;
pub use services::{Postgres, Redis, embedded_store};
pub use stack::{Mode, Stack, StackOptions, spawn_app};

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

/// The one way to run a test against both deployments: a module named for the test with an
/// `embedded` and a `distributed` (one worker process) case. An optional first line
/// `options = |o| …;` adjusts the `StackOptions` (a mock LLM, settings, more workers, real
/// processes):
///
/// ```ignore
/// both_deployments! {
///     options = |o| o.mock_llm().env("LLMOPS_LLM_TIMEOUT_SECS", "1");
///     /// A sentence saying what holds.
///     async fn a_sentence_saying_what_holds(stack: Stack) { /* stack.llm(), stack.url(..) */ }
/// }
/// ```
#[macro_export]
macro_rules! both_deployments {
    ($(#[$meta:meta])* async fn $name:ident($stack:ident: Stack) $body:block) => {
        $crate::both_deployments! {
            options = |options| options;
            $(#[$meta])* async fn $name($stack: Stack) $body
        }
    };
    (
        options = |$options:ident| $with:expr;
        $(#[$meta:meta])* async fn $name:ident($stack:ident: Stack) $body:block
    ) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($stack: $crate::Stack) $body

            fn deployment_options($options: $crate::StackOptions) -> $crate::StackOptions {
                $with
            }

            async fn start_and_run(mode: $crate::Mode) {
                let options = deployment_options($crate::StackOptions::new(mode));
                if let Some(stack) = $crate::Stack::start_with(options).await {
                    body(stack).await
                }
            }

            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                start_and_run($crate::Mode::Embedded).await
            }

            $(#[$meta])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn distributed() {
                start_and_run($crate::Mode::Distributed { workers: 1 }).await
            }
        }
    };
}
