//! `llmops-api`: with no settings it serves on 127.0.0.1:4000 from a SQLite file under
//! `./data/` and runs the workers in-process; with `DATABASE_URL` (Postgres) and `REDIS_URL`
//! it serves only, and `llmops-worker` processes do the work.

use llmops_api::Application;
use shared::config::Config;

/// mimalloc: the services allocate many small, short-lived buffers (JSON, HTTP); glibc's
/// allocator spent a fifth of a worker's CPU on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let shutdown = shared::shutdown::signal();
    let config = Config::load_or_exit();
    // Flushes the trace exporter, if any, when main returns.
    let _telemetry = shared::telemetry::init(config.log_format, "llmops-api");
    let app = Application::build(config).await?;
    app.run_until(shutdown).await
}
