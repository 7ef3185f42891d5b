//! What every job handler needs, shared by all of a process's workers.

use std::sync::Arc;

use shared::{config::Config, signals::Signals, store::Db};

#[derive(Clone)]
pub struct WorkerState {
    pub db: Db,
    pub signals: Signals,
    pub config: Arc<Config>,
}
