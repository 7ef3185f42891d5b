//! A probe worker: the production queue path (producer push + wake-up signal, apalis worker
//! with push-woken polling) with a handler that only records when each job started. Used to
//! measure pick-up latency and to drain backlogs.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Instant,
};

use apalis::prelude::*;
use shared::{
    queue::{FALLBACK_POLL, QueueBackend, QueueSettings, QueueWaker, RunWorkflow},
    signals::Signals,
};
use tokio::sync::Notify;
use uuid::Uuid;

#[derive(Clone, Default)]
pub struct Probe {
    pub started: Arc<Mutex<HashMap<Uuid, Instant>>>,
    pub count: Arc<AtomicUsize>,
    pub notify: Arc<Notify>,
}

impl Probe {
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

async fn probe_job(job: RunWorkflow, probe: Data<Probe>) -> Result<(), BoxDynError> {
    let now = Instant::now();
    probe.started.lock().unwrap().insert(job.task_id, now);
    probe.count.fetch_add(1, Ordering::SeqCst);
    probe.notify.notify_waiters();
    Ok(())
}

/// Runs a probe worker on the `workflow` queue until `stop` is cancelled; returns the
/// monitor's result.
pub async fn run_probe_worker(
    backend: QueueBackend,
    signals: Signals,
    settings: QueueSettings,
    concurrency: usize,
    probe: Probe,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    llmops_worker::runtime::prepare_backend(&backend).await?;
    let waker = QueueWaker::start(&signals, "llmops-workflow", FALLBACK_POLL).await?;
    let monitor = Monitor::new();
    let monitor = llmops_worker::register_worker!(
        monitor,
        backend,
        settings,
        waker,
        concurrency,
        RunWorkflow,
        probe,
        probe_job
    );
    monitor
        .on_event(|w, e| {
            if let Event::Error(err) = e {
                panic!("probe worker {} failed: {err}", w.name());
            }
        })
        .shutdown_timeout(std::time::Duration::from_secs(5))
        .run_with_signal(async move {
            stop.cancelled().await;
            Ok(())
        })
        .await?;
    Ok(())
}
