//! Pick-up latency: time from calling `Queues::push` to the job's handler starting, on an
//! idle system, in both deployments (embedded SQLite queue + in-process signals; Redis queue +
//! Redis pub/sub). Run with `cargo bench -p llmops-tests --bench pickup`.
//!
//! Each sample pushes one job onto an idle worker and waits for it to start, then pauses so
//! the worker is idle again for the next sample.

use std::time::{Duration, Instant};

use harness::{
    Redis,
    probe::{Probe, run_probe_worker},
};
use shared::{
    queue::{QueueBackend, QueueSettings, Queues, RunWorkflow},
    signals::Signals,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const SAMPLES: usize = 300;

fn settings() -> QueueSettings {
    QueueSettings {
        max_attempts: 1,
        heartbeat: Duration::from_secs(2),
        fetch_batch: shared::queue::fetch_batch(64),
    }
}

async fn measure(label: &str, backend: QueueBackend, signals: Signals) {
    let probe = Probe::default();
    let stop = CancellationToken::new();
    let worker = tokio::spawn(run_probe_worker(
        backend.clone(),
        signals.clone(),
        settings(),
        8,
        probe.clone(),
        stop.clone(),
    ));
    let queues = Queues::new(backend, signals, settings());
    // Let the worker register and go idle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let id = Uuid::new_v4();
        let notified = probe.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // Measured from the call to push, so the push itself (and its wake-up signal) counts.
        let pushed = Instant::now();
        queues.push(RunWorkflow::untraced(id)).await.expect("push");
        loop {
            if let Some(started) = probe.started.lock().unwrap().get(&id).copied() {
                samples.push(started.saturating_duration_since(pushed));
                break;
            }
            tokio::time::timeout(Duration::from_secs(5), notified.as_mut())
                .await
                .expect("job not picked up within 5 s");
            notified.set(probe.notify.notified());
            notified.as_mut().enable();
        }
        // Idle gap between samples, well under the fallback poll so it cannot help.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    let _ = worker.await;
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "{label:<34} n={SAMPLES}  p50={:>8.3} ms  p95={:>8.3} ms  p99={:>8.3} ms  max={:>8.3} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.95).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
    );
}

#[tokio::main]
async fn main() {
    let (db, dir) = harness::embedded_store("pickup").await;
    let pool = db.as_sqlite().expect("sqlite").clone();
    measure(
        "embedded (SQLite queue, in-process)",
        QueueBackend::Sqlite(pool),
        Signals::in_process(),
    )
    .await;
    let _ = std::fs::remove_dir_all(&dir);

    match Redis::start() {
        Some(redis) => {
            let conn = shared::queue::connect_redis(&redis.url())
                .await
                .expect("redis");
            let signals = Signals::redis(&redis.url()).await.expect("redis signals");
            measure(
                "distributed (Redis queue, pub/sub)",
                QueueBackend::Redis(conn),
                signals,
            )
            .await;
        }
        None => println!("distributed: skipped (no redis-server)"),
    }
}
