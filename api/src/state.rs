//! The state every handler can take with `State<AppState>`.

use std::sync::Arc;

use shared::{
    backends::Backends,
    config::{Config, Secret},
    queue::Queues,
    signals::Signals,
    store::Db,
};

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub queues: Queues,
    pub signals: Signals,
    pub config: Arc<Config>,
    pub jwt_secret: Secret,
}

impl AppState {
    pub fn new(backends: Backends, config: Arc<Config>, jwt_secret: Secret) -> Self {
        Self {
            db: backends.db,
            queues: backends.queues,
            signals: backends.signals,
            config,
            jwt_secret,
        }
    }
}
