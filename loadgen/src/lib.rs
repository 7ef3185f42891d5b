//! The llmops load generator's parts: the OpenAI-compatible mock LLM and the HTTP echo server
//! (also used by the test suites), latency statistics and server CPU accounting.

pub mod cpu;
pub mod echo;
pub mod mock_llm;
pub mod stats;
