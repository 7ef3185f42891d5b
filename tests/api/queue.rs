//! The queues under load that once broke apalis: a backlog pushed while no worker runs must
//! drain completely once workers start (apalis-redis 1.0's fetch used to fail on thousands of
//! due jobs at once), on Redis and on the embedded SQLite queue. Every job is then
//! acknowledged, and the vacuum leaves the queue empty (nothing grows without bound).

use std::time::{Duration, Instant};

use crate::helpers::{
    Redis, embedded_store,
    probe::{Probe, run_probe_worker},
};
use apalis::prelude::{TaskBuilder, TaskSink};
use shared::{
    queue::{
        QueueBackend, QueueSettings, Queues, RunWorkflow, WORKFLOW_QUEUE, redis_storage,
        sqlite_storage, vacuum,
    },
    signals::Signals,
};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn settings() -> QueueSettings {
    QueueSettings {
        max_attempts: 1,
        heartbeat: Duration::from_secs(2),
        fetch_batch: shared::queue::fetch_batch(64),
    }
}

async fn drain(backend: QueueBackend, signals: Signals, expected: usize) {
    let probe = Probe::default();
    let stop = CancellationToken::new();
    let worker = tokio::spawn(run_probe_worker(
        backend,
        signals,
        settings(),
        64,
        probe.clone(),
        stop.clone(),
    ));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(300);
    while probe.count() < expected {
        assert!(
            !worker.is_finished(),
            "the worker stopped after {} of {expected} jobs",
            probe.count()
        );
        assert!(
            Instant::now() < deadline,
            "only {} of {expected} jobs drained",
            probe.count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("drained {expected} jobs in {:?}", started.elapsed());
    stop.cancel();
    worker.await.unwrap().unwrap();
    assert_eq!(probe.count(), expected, "every job ran exactly once");
}

/// Jobs of the workflow queue in each state, as the backend records them.
async fn queue_state(backend: &QueueBackend) -> (u64, u64) {
    match backend {
        QueueBackend::Sqlite(pool) => {
            let count = |status: &'static str| {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM Jobs WHERE job_type = $1 AND status = $2",
                )
                .bind(WORKFLOW_QUEUE)
                .bind(status)
                .fetch_one(pool)
            };
            (count("Done").await.unwrap() as u64, {
                let all: i64 = sqlx::query_scalar("SELECT count(*) FROM Jobs WHERE job_type = $1")
                    .bind(WORKFLOW_QUEUE)
                    .fetch_one(pool)
                    .await
                    .unwrap();
                all as u64
            })
        }
        QueueBackend::Redis(conn) => {
            let mut c = conn.clone();
            let done: u64 = redis::cmd("SCARD")
                .arg(format!("{WORKFLOW_QUEUE}:done"))
                .query_async(&mut c)
                .await
                .unwrap();
            let stored: u64 = redis::cmd("HLEN")
                .arg(format!("{WORKFLOW_QUEUE}:data"))
                .query_async(&mut c)
                .await
                .unwrap();
            (done, stored)
        }
    }
}

/// Every drained job is acknowledged as done, and the vacuum then deletes them all.
async fn assert_acked_then_vacuumed(backend: &QueueBackend, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (done, stored) = queue_state(backend).await;
        if done == expected {
            assert_eq!(stored, expected);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {expected} jobs acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(vacuum(backend, WORKFLOW_QUEUE).await.unwrap(), expected);
    assert_eq!(
        queue_state(backend).await,
        (0, 0),
        "the queue is empty after the vacuum"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_backlog_of_50000_jobs_drains_when_workers_start_afterwards() {
    let Some(redis) = Redis::start() else { return };
    let conn = shared::queue::connect_redis(&redis.url()).await.unwrap();
    // Push through apalis's own producer in bulk: every job lands in the `scheduled` set,
    // exactly the state that made apalis-redis's fetch fail.
    let mut storage = redis_storage::<RunWorkflow>(conn.clone(), &settings());
    for _ in 0..50 {
        let chunk: Vec<_> = (0..1000)
            .map(|_| {
                TaskBuilder::new(RunWorkflow::untraced(Uuid::new_v4()))
                    .max_attempts(1)
                    .build()
            })
            .collect();
        for task in chunk {
            storage.push_task(task).await.unwrap();
        }
    }
    let mut c = conn.clone();
    let scheduled: u64 = redis::cmd("ZCARD")
        .arg("llmops-workflow:scheduled")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(scheduled, 50_000, "the backlog sits in the scheduled set");

    let signals = Signals::redis(&redis.url()).await.unwrap();
    drain(QueueBackend::Redis(conn.clone()), signals, 50_000).await;

    let active: u64 = redis::cmd("LLEN")
        .arg("llmops-workflow:active")
        .query_async(&mut c)
        .await
        .unwrap();
    let scheduled: u64 = redis::cmd("ZCARD")
        .arg("llmops-workflow:scheduled")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!((active, scheduled), (0, 0));
    let backend = QueueBackend::Redis(conn);
    assert_acked_then_vacuumed(&backend, 50_000).await;
    let inflight: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{WORKFLOW_QUEUE}:inflight:*"))
        .query_async(&mut c)
        .await
        .unwrap();
    for set in inflight {
        let held: u64 = redis::cmd("SCARD")
            .arg(&set)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(held, 0, "{set} still holds jobs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_backlog_drains_when_workers_start_afterwards() {
    let (db, dir) = embedded_store("queue").await;
    let pool = db.as_sqlite().unwrap().clone();
    let signals = Signals::in_process();
    let queues = Queues::new(
        QueueBackend::Sqlite(pool.clone()),
        signals.clone(),
        settings(),
    );
    for _ in 0..5000 {
        queues
            .push(RunWorkflow::untraced(Uuid::new_v4()))
            .await
            .unwrap();
    }
    let _ = sqlite_storage::<RunWorkflow>;
    drain(QueueBackend::Sqlite(pool.clone()), signals, 5000).await;
    assert_acked_then_vacuumed(&QueueBackend::Sqlite(pool), 5000).await;
    std::fs::remove_dir_all(dir).unwrap();
}

/// Every statement the embedded queue runs on its hot path or in its sweeps finds its rows
/// through an index, with the store's migrations applied (0010 drops three of apalis's
/// indexes that none of them uses): a full scan of `Jobs` would grow with the queue. The
/// statements are the real ones: apalis-sqlite's files (vendored) and ours.
#[tokio::test]
async fn the_embedded_queue_statements_are_served_by_indexes() {
    let (db, dir) = embedded_store("plans").await;
    let pool = db.as_sqlite().unwrap().clone();

    let indexes: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'Jobs'")
            .fetch_all(&pool)
            .await
            .unwrap();
    let indexes: Vec<&str> = indexes.iter().map(|(name,)| name.as_str()).collect();
    for dropped in [
        "idx_jobs_running",
        "idx_jobs_completed_done_at",
        "idx_jobs_idempotency_key",
    ] {
        assert!(
            !indexes.contains(&dropped),
            "{dropped} is still there: {indexes:?}"
        );
    }

    let apalis = |file: &str| {
        std::fs::read_to_string(format!(
            "{}/../vendor/apalis-sqlite/queries/{file}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    // (what, SQL, how many parameters it binds)
    let statements = [
        ("fetch", apalis("backend/fetch_next.sql"), 4),
        ("ack", apalis("task/ack.sql"), 2),
        (
            "orphan re-queue",
            apalis("backend/reenqueue_orphaned.sql"),
            4,
        ),
        (
            "shutdown re-queue",
            apalis("backend/reenqueue_abandoned.sql"),
            3,
        ),
        ("vacuum", shared::queue::sqlite::VACUUM_SQL.to_owned(), 2),
        ("depth", shared::queue::sqlite::DEPTH_SQL.to_owned(), 1),
    ];
    for (what, sql, params) in statements {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query =
            sqlx::query_as::<_, (i64, i64, i64, String)>(sqlx::AssertSqlSafe(explain.as_str()));
        for n in 0..params {
            query = query.bind(if n == 0 {
                "[]".to_owned()
            } else {
                "x".to_owned()
            });
        }
        let plan: Vec<String> = query
            .fetch_all(&pool)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .into_iter()
            .map(|(_, _, _, detail)| detail)
            .collect();
        assert!(
            plan.iter().any(|step| step.contains("USING")),
            "{what} uses no index: {plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.starts_with("SCAN Jobs")),
            "{what} scans the whole Jobs table: {plan:?}"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}
