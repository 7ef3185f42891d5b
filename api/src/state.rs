//! The state every handler can take with `State<AppState>`.

use std::{sync::Arc, time::Duration};

use shared::{
    auth::jwt::JwtKeys,
    backends::Backends,
    config::{Config, Secret},
    queue::Queues,
    signals::Signals,
    store::Db,
};
use uuid::Uuid;

use crate::{
    rate_limit::RateLimiter,
    services::{RecentTasks, ReportCache, TaskSubmitter, submitter, task_feeds::TaskFeeds},
};

/// Shared by every request: axum clones the state for each handler, so it is one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

pub struct AppStateInner {
    pub db: Db,
    pub queues: Queues,
    /// Stores and queues new workflow runs, batched across concurrent requests.
    pub submit: TaskSubmitter,
    /// The tasks this process queued recently, their owners and outcomes, for result requests.
    pub recent_tasks: Arc<RecentTasks>,
    /// Reports read recently, for the many clients that poll one report.
    pub reports: Arc<ReportCache>,
    pub signals: Signals,
    /// One reader per streamed task, shared by its open streams.
    pub task_feeds: TaskFeeds,
    pub config: Arc<Config>,
    /// Signing and verifying keys for access tokens, built once from the secret.
    pub jwt: Arc<JwtKeys>,
    /// Login attempts per email and per client address (`LLMOPS_LOGIN_RATE_LIMIT` a minute).
    pub login_limiter: Arc<RateLimiter>,
    /// Service API requests per app key (`LLMOPS_SERVICE_RATE_LIMIT` a minute).
    pub service_limiter: Arc<RateLimiter>,
}

impl AppState {
    pub fn new(backends: Backends, config: Arc<Config>, jwt_secret: Secret) -> Self {
        let jwt = Arc::new(JwtKeys::new(
            &jwt_secret,
            Duration::from_secs(config.jwt_ttl_secs),
        ));
        let login_limiter = Arc::new(RateLimiter::per_minute(config.login_rate_limit));
        let service_limiter = Arc::new(RateLimiter::per_minute(config.service_rate_limit));
        let recent_tasks = Arc::new(RecentTasks::new(backends.signals.link()));
        let reports = Arc::new(ReportCache::default());
        let (recent, ended) = (recent_tasks.clone(), reports.clone());
        backends
            .signals
            .observe_task_done(move |id, outcome| record_outcome(&recent, &ended, id, outcome));
        Self(Arc::new(AppStateInner {
            submit: submitter(backends.db.clone(), backends.queues.clone()),
            recent_tasks,
            reports,
            task_feeds: TaskFeeds::new(backends.db.clone(), backends.signals.clone()),
            db: backends.db,
            queues: backends.queues,
            signals: backends.signals,
            config,
            jwt,
            login_limiter,
            service_limiter,
        }))
    }
}

impl AppState {
    /// Records the outcome of a task that ended without its worker announcing it (canceled
    /// while queued), as an announced outcome is recorded.
    pub fn task_ended(&self, id: Uuid, outcome: &Arc<str>) {
        record_outcome(&self.recent_tasks, &self.reports, id, outcome);
    }
}

/// A task's outcome reached this process. The report goes first: a client that sees the
/// outcome and then asks for the report must not be served the running one.
fn record_outcome(recent: &RecentTasks, reports: &ReportCache, id: Uuid, outcome: &Arc<str>) {
    reports.forget(id);
    recent.finished(id, outcome);
}

impl std::ops::Deref for AppState {
    type Target = AppStateInner;
    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}
