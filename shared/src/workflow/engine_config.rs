//! Engine limits and node settings (decision 11: every limit configurable, safe defaults).

use std::time::Duration;

/// Settings for [`Engine`](super::Engine). `Default` gives safe production values.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    /// Node executions per run, loop iterations included.
    pub max_nodes_per_run: u64,
    /// Iterations of one loop node execution.
    pub max_loop_iterations: u64,
    /// Wall-clock time of a whole run.
    pub max_run_time: Duration,
    /// Let the http node reach loopback, private, link-local and metadata addresses.
    pub http_allow_private: bool,
    /// Response bodies larger than this fail the http node.
    pub http_max_response_bytes: usize,
    /// Timeout of an http request whose node sets none.
    pub http_default_timeout: Duration,
    /// First retry delay of the http node; it doubles per attempt (the reference waits 2^n s).
    pub http_retry_backoff: Duration,
    /// Wall-clock limit of one code node execution.
    pub code_timeout: Duration,
    /// Heap limit of one code node execution.
    pub code_memory_bytes: usize,
    /// JavaScript stack limit of one code node execution.
    pub code_stack_bytes: usize,
    /// Timeout of one LLM request attempt.
    pub llm_timeout: Duration,
    /// Attempts per LLM call (connect errors, 429 and 5xx are retried).
    pub llm_max_attempts: u32,
    /// First retry delay of the LLM client; it doubles per attempt.
    pub llm_retry_backoff: Duration,
    /// Largest output of one node execution, as JSON bytes; beyond, the node fails.
    pub max_node_output_bytes: usize,
    /// Largest report of one run, as JSON bytes (the run's inputs and every node execution's
    /// data, inputs and outputs); the node that would pass it fails.
    pub max_report_bytes: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_nodes_per_run: 10_000,
            max_loop_iterations: 10_000,
            max_run_time: Duration::from_secs(60 * 60),
            http_allow_private: false,
            http_max_response_bytes: 10 * 1024 * 1024,
            http_default_timeout: Duration::from_secs(60),
            http_retry_backoff: Duration::from_secs(1),
            code_timeout: Duration::from_secs(60),
            code_memory_bytes: 32 * 1024 * 1024,
            code_stack_bytes: 512 * 1024,
            llm_timeout: Duration::from_secs(120),
            llm_max_attempts: 3,
            llm_retry_backoff: Duration::from_millis(500),
            max_node_output_bytes: 1024 * 1024,
            max_report_bytes: 16 * 1024 * 1024,
        }
    }
}
