//! What every job handler needs, shared by all of a process's workers.

use std::{sync::Arc, time::Duration};

use shared::{
    config::Config,
    llm::LlmClient,
    signals::Signals,
    store::Db,
    workflow::{Engine, EngineConfig},
};

use crate::task_writes::TaskWrites;

/// apalis hands each job its own clone of the state, so it is one `Arc`.
#[derive(Clone)]
pub struct WorkerState(Arc<WorkerStateInner>);

pub struct WorkerStateInner {
    pub db: Db,
    /// Task claims and final writes, batched across this process's concurrent runs.
    pub tasks: TaskWrites,
    pub signals: Signals,
    pub config: Arc<Config>,
    pub engine: Engine,
    /// The provider client of debug chats (one connection pool per process).
    pub llm: LlmClient,
}

impl WorkerState {
    pub fn new(db: Db, signals: Signals, config: Arc<Config>) -> Self {
        let engine = Engine::new(engine_config(&config));
        let llm = shared::chat::llm_client(&config);
        Self(Arc::new(WorkerStateInner {
            tasks: TaskWrites::new(db.clone()),
            db,
            signals,
            config,
            engine,
            llm,
        }))
    }
}

impl std::ops::Deref for WorkerState {
    type Target = WorkerStateInner;
    fn deref(&self) -> &WorkerStateInner {
        &self.0
    }
}

/// The engine's limits and node settings from the process configuration.
pub fn engine_config(config: &Config) -> EngineConfig {
    EngineConfig {
        max_nodes_per_run: config.max_nodes_per_run,
        max_loop_iterations: config.max_loop_iterations,
        max_run_time: Duration::from_secs(config.max_run_secs),
        http_allow_private: config.http_allow_private,
        code_timeout: Duration::from_secs(config.code_timeout_secs),
        llm_timeout: Duration::from_secs(config.llm_timeout_secs),
        max_node_output_bytes: config.max_node_output_bytes.0,
        max_report_bytes: config.max_report_bytes.0,
        ..EngineConfig::default()
    }
}
