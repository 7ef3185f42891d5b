//! The black-box suites in one test binary (zero2prod's `tests/api/`): one module per feature,
//! all on `helpers` (the harness: throwaway Postgres and Redis, the app in-process or as real
//! processes, a mock LLM, an echo server).
//!
//! Most suites serve the API in this process (`spawn_app` over `Application::build`);
//! crash, kill, SIGTERM, log, memory and outage tests start the real binaries.

mod helpers;

mod apps;
mod auth;
mod compose;
mod faults;
mod foundation;
mod metrics;
mod queue;
mod run_node;
mod service;
mod store;
mod stream_deltas;
mod streams;
mod tasks;
mod traces;
