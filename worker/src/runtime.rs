//! Runs the job handlers under apalis: one worker per queue per process, each with the
//! configured concurrency, push-woken polling, heartbeats and graceful shutdown.

use std::time::Duration;

use apalis::prelude::*;
use shared::queue::{
    AnswerMessage, FALLBACK_POLL, Job, QueueBackend, QueueSettings, QueueWaker, Queues, RunWorkflow,
};

use crate::{jobs, state::WorkerState};

/// How long in-flight jobs get to finish after a shutdown signal before the process exits
/// anyway (their jobs are then handed to another worker after the heartbeat timeout).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// A unique worker name per process and restart: apalis refuses a name that is still live.
pub fn worker_name(queue: &str, restarts: usize) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".into());
    format!("{queue}-{host}-{}-{restarts}", std::process::id())
}

/// Registers one apalis worker for job type `$job` on whichever backend is configured.
/// (A macro rather than a generic function: apalis's builder bounds do not name well.)
#[macro_export]
macro_rules! register_worker {
    ($monitor:expr, $backend:expr, $settings:expr, $waker:expr, $concurrency:expr, $job:ty, $data:expr, $handler:expr) => {{
        let settings: ::shared::queue::QueueSettings = $settings.clone();
        let waker: ::shared::queue::QueueWaker = $waker.clone();
        let data = $data.clone();
        let concurrency: usize = $concurrency;
        match $backend.clone() {
            ::shared::queue::QueueBackend::Redis(conn) => $monitor.register(move |restarts| {
                ::apalis::prelude::WorkerBuilder::new($crate::runtime::worker_name(
                    <$job as ::shared::queue::Job>::QUEUE,
                    restarts,
                ))
                .backend(
                    ::shared::queue::redis_storage::<$job>(conn.clone(), &settings)
                        .poll_with_stream(waker.stream()),
                )
                .data(data.clone())
                .concurrency(concurrency)
                .parallelize(::tokio::spawn)
                .build($handler)
            }),
            ::shared::queue::QueueBackend::Sqlite(pool) => $monitor.register(move |restarts| {
                ::apalis::prelude::WorkerBuilder::new($crate::runtime::worker_name(
                    <$job as ::shared::queue::Job>::QUEUE,
                    restarts,
                ))
                .backend(
                    ::shared::queue::sqlite_storage::<$job>(&pool, &settings)
                        .poll_with_stream(waker.stream()),
                )
                .data(data.clone())
                .concurrency(concurrency)
                .parallelize(::tokio::spawn)
                .build($handler)
            }),
        }
    }};
}

/// Runs the workflow and chat workers until `shutdown` resolves, then lets in-flight jobs
/// finish (up to [`SHUTDOWN_GRACE`]).
pub async fn run_workers(
    state: WorkerState,
    backend: QueueBackend,
    settings: QueueSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    prepare_backend(&backend).await?;
    let maintenance = tokio::spawn(crate::maintenance::run(
        state.db.clone(),
        Queues::new(backend.clone(), state.signals.clone(), settings.clone()),
        crate::maintenance::Settings::from_config(&state.config),
    ));
    let workflow_waker =
        QueueWaker::start(&state.signals, RunWorkflow::QUEUE, FALLBACK_POLL).await?;
    let chat_waker = QueueWaker::start(&state.signals, AnswerMessage::QUEUE, FALLBACK_POLL).await?;
    let (concurrency, chat_concurrency) = (
        state.config.worker_concurrency,
        state.config.chat_concurrency,
    );

    let monitor = Monitor::new();
    let monitor = register_worker!(
        monitor,
        backend,
        settings,
        workflow_waker,
        concurrency,
        RunWorkflow,
        state,
        jobs::run_workflow::run_workflow
    );
    let monitor = register_worker!(
        monitor,
        backend,
        settings,
        chat_waker,
        chat_concurrency,
        AnswerMessage,
        state,
        jobs::answer_message::answer_message
    );
    monitor
        .should_restart(|worker, error| {
            tracing::error!(worker = worker.name(), %error, "queue worker failed; restarting");
            // The callback is synchronous; a short pause keeps a dead backend from turning
            // restarts into a busy loop.
            std::thread::sleep(Duration::from_millis(500));
            true
        })
        .on_event(|worker, event| {
            if let Event::Error(e) = event {
                tracing::warn!(worker = worker.name(), error = %e, "queue worker error");
            }
        })
        .shutdown_timeout(SHUTDOWN_GRACE)
        .run_with_signal(async move {
            shutdown.await;
            tracing::info!("stopping queue workers");
            Ok(())
        })
        .await?;
    maintenance.abort();
    Ok(())
}

/// Gets a queue backend ready for workers. On Redis: drains any backlog from the scheduled
/// sets before apalis's fetch sees it, and keeps promoting retries scheduled for later (see
/// [`shared::queue::promote_due`]).
pub async fn prepare_backend(backend: &QueueBackend) -> anyhow::Result<()> {
    if let QueueBackend::Redis(conn) = backend {
        for queue in [RunWorkflow::QUEUE, AnswerMessage::QUEUE] {
            let moved = shared::queue::promote_due(conn.clone(), queue).await?;
            if moved > 0 {
                tracing::info!(queue, moved, "promoted queued jobs");
            }
        }
        tokio::spawn(keep_promoting(conn.clone()));
    }
    Ok(())
}

/// Retries that apalis schedules for later land in the scheduled set; promote them in chunks
/// too (see [`shared::queue::promote_due`]).
async fn keep_promoting(conn: redis::aio::ConnectionManager) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        for queue in [RunWorkflow::QUEUE, AnswerMessage::QUEUE] {
            if let Err(e) = shared::queue::promote_due(conn.clone(), queue).await {
                tracing::warn!(queue, error = %e, "promoting due jobs failed");
            }
        }
    }
}
