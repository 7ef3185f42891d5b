//! `llmops-worker`: consumes the `workflow` and `chat` queues. Run any number of them with the
//! same settings as the API (`DATABASE_URL`, `REDIS_URL`, ...).

use llmops_worker::{WorkerState, run_workers};
use shared::{backends::Backends, config::Config};

/// mimalloc: the services allocate many small, short-lived buffers (JSON, HTTP); glibc's
/// allocator spent a fifth of a worker's CPU on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let shutdown = shared::shutdown::signal();
    let config = Config::load_or_exit();
    // Flushes the trace exporter, if any, when main returns.
    let _telemetry = shared::telemetry::init(config.log_format, "llmops-worker");
    let metrics = shared::metrics::install();
    if let Some(listen) = config.metrics_listen {
        let addr = shared::metrics::serve(listen, metrics).await?;
        tracing::info!("metrics on http://{addr}/metrics");
    }
    let backends = Backends::connect(&config).await?;
    if config.metrics_listen.is_some() {
        let db = backends.db.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                db.record_pool();
            }
        });
    }
    let state = WorkerState::new(
        backends.db.clone(),
        backends.signals.clone(),
        std::sync::Arc::new(config),
    );
    tracing::info!(
        concurrency = state.config.worker_concurrency,
        chat_concurrency = state.config.chat_concurrency,
        "llmops-worker started"
    );
    run_workers(
        state,
        backends.queues.backend().clone(),
        backends.queues.settings().clone(),
        shutdown,
    )
    .await?;
    tracing::info!("llmops-worker stopped");
    Ok(())
}
