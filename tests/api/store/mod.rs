//! The store on both backends (a database of its own on the shared Postgres cluster and a
//! SQLite file). Tasks, here: retention deletes only old terminated tasks, in batches; the
//! reaper claims each stale run once; an attempt that lost the task cannot overwrite it; a
//! value the store refuses fails only its own item of a group commit; strings with NUL
//! round-trip in every task document. Accounts, apps and messages in their own files.

mod accounts;
mod apps;
mod messages;

use crate::helpers::Postgres;
use llmops_worker::task_writes::TaskWrites;
use serde_json::{Map, json};
use shared::{
    config::{Config, StoreKind},
    store::{
        Db,
        batch::{Batcher, refuses_a_value},
        recovery,
        tasks::{self, FinishedTask, NewTask, TaskStatus},
    },
    with_pool,
};
use uuid::Uuid;

async fn sqlite() -> (Db, std::path::PathBuf) {
    crate::helpers::embedded_store("store").await
}

async fn postgres(url: &str) -> Db {
    let config = Config::try_parse_from([
        "t".to_string(),
        format!("--database-url={url}"),
        "--jwt-secret=0123456789abcdef0123".to_string(),
    ])
    .unwrap();
    Db::connect(&config).await.unwrap()
}

/// A store on a fresh database of the shared Postgres cluster, or `None` after the harness's
/// loud skip.
async fn fresh_postgres() -> Option<Db> {
    let url = Postgres::fresh_database().await?;
    Some(postgres(&url).await)
}

/// The one way to run a store check on both backends: `on_both_stores!(check)` makes a module
/// named for the check, with a `sqlite` test (a fresh file) and a `postgres` test (a fresh
/// database), each calling `check(&db)`.
macro_rules! on_both_stores {
    ($check:ident) => {
        mod $check {
            #[tokio::test]
            async fn sqlite() {
                let (db, dir) = crate::store::sqlite().await;
                super::$check(&db).await;
                std::fs::remove_dir_all(dir).unwrap();
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(db) = crate::store::fresh_postgres().await {
                    super::$check(&db).await;
                }
            }
        }
    };
}
pub(crate) use on_both_stores;

fn new_task(task_status: TaskStatus, at_ms: i64) -> NewTask {
    NewTask {
        id: Uuid::new_v4(),
        owner_id: None,
        status: task_status,
        schema_json: "{}".into(),
        inputs: Map::new(),
        outputs: None,
        report: serde_json::value::to_raw_value(&json!({})).unwrap(),
        at_ms,
        traceparent: None,
    }
}

async fn insert(db: &Db, task_status: TaskStatus, at_ms: i64) -> Uuid {
    let task = new_task(task_status, at_ms);
    let id = task.id;
    tasks::insert_task(db, task).await.unwrap();
    id
}

fn finished(id: Uuid, attempt: i32, report: serde_json::Value, at_ms: i64) -> FinishedTask {
    FinishedTask {
        id,
        attempt,
        status: TaskStatus::Succeeded,
        outputs: Map::new(),
        report: serde_json::value::to_raw_value(&report).unwrap(),
        events: serde_json::value::to_raw_value(&json!({"attempt": attempt, "log": []})).unwrap(),
        at_ms,
    }
}

async fn retention_reaper_and_attempt_ownership(db: &Db) {
    let day = 24 * 3600 * 1000;
    let now = shared::store::now_ms();
    // 1,200 old finished tasks (more than two batches), plus ones that must survive.
    for _ in 0..1200 {
        insert(db, TaskStatus::Succeeded, now - 10 * day).await;
    }
    let recent = insert(db, TaskStatus::Failed, now - day).await;
    let old_pending = insert(db, TaskStatus::Pending, now - 10 * day).await;
    let deleted = llmops_worker::maintenance::delete_expired(db, 7)
        .await
        .unwrap();
    assert_eq!(deleted, 1200);
    assert!(
        tasks::get_task_report(db, recent).await.unwrap().is_some(),
        "younger than the retention"
    );
    assert!(
        tasks::get_task_report(db, old_pending)
            .await
            .unwrap()
            .is_some(),
        "never deletes unfinished work"
    );

    // A run whose attempt stopped writing long ago is claimed once.
    let stale = insert(db, TaskStatus::Pending, now - day).await;
    let run = tasks::start_attempt(db, stale, now - day)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.attempt, 1);
    let claimed = tasks::claim_stale_tasks(db, now - 60_000, now, 100)
        .await
        .unwrap();
    assert_eq!(claimed, vec![stale]);
    assert!(
        tasks::claim_stale_tasks(db, now - 60_000, now, 100)
            .await
            .unwrap()
            .is_empty(),
        "claimed once"
    );

    // Attempt 2 takes over; attempt 1's late result is refused.
    let second = tasks::start_attempt(db, stale, now).await.unwrap().unwrap();
    assert_eq!(second.attempt, 2);
    assert!(
        !tasks::finish_task(db, finished(stale, 1, json!({}), now))
            .await
            .unwrap()
    );
    assert!(
        tasks::finish_task(db, finished(stale, 2, json!({"ok": true}), now))
            .await
            .unwrap()
    );
    assert!(
        tasks::start_attempt(db, stale, now)
            .await
            .unwrap()
            .is_none(),
        "a finished task is never run again"
    );
}

on_both_stores!(retention_reaper_and_attempt_ownership);

/// The group-committed writes: a burst of concurrent claims and finishes goes to the store in
/// multi-row statements, and every caller still gets exactly its own answer.
async fn batched_writes(db: &Db) {
    let now = shared::store::now_ms();
    // One multi-row insert of more rows than a batch holds.
    let new: Vec<NewTask> = (0..100)
        .map(|_| new_task(TaskStatus::Pending, now))
        .collect();
    let ids: Vec<Uuid> = new.iter().map(|t| t.id).collect();
    tasks::insert_tasks(db, &new).await.unwrap();
    let finished_early = ids[0];
    assert!(
        tasks::start_attempt(db, finished_early, now)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        tasks::finish_task(db, finished(finished_early, 1, json!({}), now))
            .await
            .unwrap()
    );

    let writes = TaskWrites::new(db.clone());
    // Every task claimed at once, one of them twice in the same burst, plus an unknown id.
    // (The test runtime is single-threaded, so the first 64 claims form the first batch.)
    let unknown = Uuid::new_v4();
    let mut claims: Vec<Uuid> = vec![ids[1], ids[1]];
    claims.extend(&ids[2..]);
    claims.extend([finished_early, unknown]);
    let claimed =
        futures::future::join_all(claims.iter().map(|id| writes.start_attempt(*id))).await;
    let claimed: Vec<_> = claimed.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(
        claimed[0].as_ref().map(|t| (t.id, t.attempt)),
        Some((ids[1], 1))
    );
    assert!(
        claimed[1].is_none(),
        "a task delivered twice in one burst is claimed once"
    );
    for (id, task) in claims[2..100].iter().zip(&claimed[2..100]) {
        let task = task.as_ref().expect("a pending task is claimed");
        assert_eq!((task.id, task.attempt), (*id, 1));
    }
    assert!(claimed[100].is_none(), "a finished task is not claimed");
    assert!(claimed[101].is_none(), "unknown task");

    // All finished at once; a stale attempt number is refused, the others written.
    let finishes = ids[1..].iter().enumerate().map(|(i, id)| {
        let attempt = if i == 0 { 7 } else { 1 };
        writes.finish(finished(*id, attempt, json!({"n": i}), now))
    });
    let owned: Vec<bool> = futures::future::join_all(finishes)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert!(!owned[0], "attempt 7 does not own the task");
    assert!(owned[1..].iter().all(|o| *o));
    let view = tasks::get_task_report(db, ids[50]).await.unwrap().unwrap();
    assert_eq!(view.status, TaskStatus::Succeeded);
    assert_eq!(view.document.unwrap().0, json!({"n": 49}));
    let view = tasks::get_task_report(db, ids[1]).await.unwrap().unwrap();
    assert_eq!(view.status, TaskStatus::Processing);
}

on_both_stores!(batched_writes);

/// apalis-sqlite's ack joins the acknowledged ids to `Jobs`; it must look each one up by id,
/// not walk every job the worker ever held (which made each ack slower as the table grew).
#[tokio::test]
async fn sqlite_queue_acks_look_jobs_up_by_id() {
    let (db, dir) = sqlite().await;
    let pool = db.as_sqlite().unwrap();
    // The statement the vendored crate runs, read from its source rather than copied.
    let ack = include_str!("../../../vendor/apalis-sqlite/queries/task/ack.sql");
    let plan: Vec<(i64, i64, i64, String)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {ack}")))
            .bind("[]")
            .bind("worker")
            .fetch_all(pool)
            .await
            .unwrap();
    let steps: Vec<&str> = plan.iter().map(|(_, _, _, step)| step.as_str()).collect();
    assert!(
        steps
            .iter()
            .any(|s| s.contains("Jobs USING INDEX sqlite_autoindex_Jobs_1 (id=?)")),
        "{steps:?}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// The embedded store's writer keeps our settings (apalis-sqlite's setup switches its
/// connection to `synchronous = OFF` and a 64,000-page cache), and committed pages reach the
/// database file through the background checkpointer, long before the writer's own
/// checkpoint threshold.
#[tokio::test]
async fn sqlite_writer_settings_and_background_checkpoints() {
    let (db, dir) = sqlite().await;
    let pool = db.as_sqlite().unwrap();
    for (pragma, expected) in [
        ("synchronous", 1), // NORMAL
        ("cache_size", -8192),
        ("wal_autocheckpoint", 10_000),
    ] {
        let value: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("PRAGMA {pragma}")))
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(value, expected, "PRAGMA {pragma}");
    }

    let file = dir.join("llmops.db");
    let before = std::fs::metadata(&file).unwrap().len();
    // About 1 MB of rows: a few hundred WAL pages, far below the writer's threshold.
    let tasks: Vec<NewTask> = (0..500)
        .map(|_| NewTask {
            schema_json: "x".repeat(2_000),
            ..new_task(TaskStatus::Pending, 1)
        })
        .collect();
    for chunk in tasks.chunks(50) {
        tasks::insert_tasks(&db, chunk).await.unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::fs::metadata(&file).unwrap().len() < before + 1_000_000 {
        assert!(
            std::time::Instant::now() < deadline,
            "the WAL was not checkpointed into the database file"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// A group commit that the store refuses because of one value in it: only the item holding
/// that value fails, with the store's own error; every other item of the batch is written.
async fn a_refused_value_fails_only_its_item(db: &Db) {
    with_pool!(db, pool => sqlx::query(
        "CREATE TABLE batch_probe (id BIGINT PRIMARY KEY, v TEXT NOT NULL CHECK (v <> 'bad'))")
        .execute(pool).await.map(|_| ()))
    .unwrap();
    let kind = db.kind();
    let writer = Batcher::spawn("batch_probe", {
        let db = db.clone();
        move |rows: Vec<(i64, &'static str)>| {
            let db = db.clone();
            async move {
                let values: Vec<String> = (0..rows.len())
                    .map(|r| match kind {
                        StoreKind::Postgres => format!("(${}, ${})", 2 * r + 1, 2 * r + 2),
                        StoreKind::Sqlite => "(?, ?)".to_owned(),
                    })
                    .collect();
                let sql = format!(
                    "INSERT INTO batch_probe (id, v) VALUES {}",
                    values.join(", ")
                );
                with_pool!(&db, pool => {
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                    for (id, v) in &rows {
                        query = query.bind(*id).bind(*v);
                    }
                    query.execute(pool).await.map(|_| ())
                })?;
                Ok(rows.iter().map(|(id, _)| *id).collect())
            }
        }
    });
    // The test runtime is single-threaded: all 20 are queued before the writer takes them,
    // so they form one batch.
    let bad = [3, 11];
    let outcomes = futures::future::join_all((0..20).map(|i| {
        let v = if bad.contains(&i) { "bad" } else { "good" };
        writer.submit((i, v))
    }))
    .await;
    for (i, outcome) in outcomes.iter().enumerate() {
        if bad.contains(&(i as i64)) {
            let error = outcome.as_ref().expect_err("a refused row fails");
            assert!(refuses_a_value(error), "{error}");
            assert!(
                error.to_string().to_lowercase().contains("check"),
                "{error}"
            );
        } else {
            assert_eq!(outcome.as_ref().ok(), Some(&(i as i64)), "{outcome:?}");
        }
    }
    let stored: i64 = with_pool!(db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM batch_probe")
        .fetch_one(pool).await)
    .unwrap();
    assert_eq!(stored, 18);
}

on_both_stores!(a_refused_value_fails_only_its_item);

/// The real group-committed final write on Postgres, where a check constraint refuses one
/// report: the run whose value is refused fails alone; the others of its batch are written.
#[tokio::test]
async fn postgres_a_refused_finish_fails_only_its_task() {
    let Some(db) = fresh_postgres().await else {
        return;
    };
    let now = shared::store::now_ms();
    let new: Vec<NewTask> = (0..10)
        .map(|_| new_task(TaskStatus::Pending, now))
        .collect();
    let ids: Vec<Uuid> = new.iter().map(|t| t.id).collect();
    tasks::insert_tasks(&db, &new).await.unwrap();
    with_pool!(&db, pool => sqlx::query(
        "ALTER TABLE tasks ADD CONSTRAINT refuse_marked CHECK (report::text NOT LIKE '%refuse-me%')")
        .execute(pool).await.map(|_| ()))
    .unwrap();
    let writes = TaskWrites::new(db.clone());
    for id in &ids {
        assert!(writes.start_attempt(*id).await.unwrap().is_some());
    }
    let finishes = ids.iter().enumerate().map(|(i, id)| {
        let report = if i == 4 {
            json!({"n": i, "mark": "refuse-me"})
        } else {
            json!({"n": i})
        };
        writes.finish(finished(*id, 1, report, now))
    });
    let outcomes = futures::future::join_all(finishes).await;
    for (i, outcome) in outcomes.into_iter().enumerate() {
        let view = tasks::get_task_report(&db, ids[i]).await.unwrap().unwrap();
        if i == 4 {
            let error = outcome.expect_err("the refused value fails its task");
            assert!(refuses_a_value(&error), "{error}");
            assert_eq!(view.status, TaskStatus::Processing);
        } else {
            assert!(outcome.unwrap(), "task {i} is written");
            assert_eq!(view.status, TaskStatus::Succeeded);
            assert_eq!(view.document.unwrap().0, json!({"n": i}));
        }
    }
}

/// The task's stored report.
async fn stored_report(db: &Db, id: Uuid) -> serde_json::Value {
    let view = tasks::get_task_report(db, id)
        .await
        .unwrap()
        .expect("the task");
    view.document.expect("a report").0
}

/// Strings holding NUL round-trip through every task document on both backends: inputs,
/// progress and final reports, outputs, and the reports of failed and canceled tasks.
async fn nul_round_trips_in_task_documents(db: &Db) {
    let now = shared::store::now_ms();
    let nul = json!({"text": "a\u{0}b", "k\u{0}ey": ["\u{0}"]});
    let map = nul.as_object().unwrap().clone();
    let raw = |v: &serde_json::Value| serde_json::value::to_raw_value(v).unwrap();
    let task = NewTask {
        inputs: map.clone(),
        report: raw(&nul),
        ..new_task(TaskStatus::Pending, now)
    };
    let id = task.id;
    tasks::insert_task(db, task).await.unwrap();
    let run = tasks::start_attempt(db, id, now).await.unwrap().unwrap();
    assert_eq!(run.inputs.0, map);
    assert_eq!(stored_report(db, id).await, nul);
    let log = raw(&json!({"attempt": 1, "log": []}));
    tasks::save_progress(db, id, 1, &raw(&json!({"progress": "\u{0}"})), &log, now)
        .await
        .unwrap();
    assert_eq!(stored_report(db, id).await, json!({"progress": "\u{0}"}));
    let writes = TaskWrites::new(db.clone());
    let done = FinishedTask {
        outputs: map.clone(),
        ..finished(id, 1, nul.clone(), now)
    };
    assert!(writes.finish(done).await.unwrap());
    let result = tasks::get_task_result(db, id).await.unwrap().unwrap();
    assert_eq!(result.document.unwrap().0, nul);
    assert_eq!(stored_report(db, id).await, nul);

    let failed = insert(db, TaskStatus::Pending, now).await;
    assert!(tasks::fail_task(db, failed, &nul, now).await.unwrap());
    assert_eq!(stored_report(db, failed).await, nul);
    let canceled = insert(db, TaskStatus::Pending, now).await;
    let outcome = tasks::request_cancel(db, canceled, || nul.clone(), now)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        shared::store::interrupt::Interrupt::EndedWhileQueued
    );
    assert_eq!(stored_report(db, canceled).await, nul);
}

on_both_stores!(nul_round_trips_in_task_documents);

/// The re-queue sweep runs in one process at a time: while one holds the lock, another
/// process's attempt is refused; once it is released (or its holder dies), it is free.
#[tokio::test]
async fn postgres_one_sweep_at_a_time() {
    let Some(db) = fresh_postgres().await else {
        return;
    };
    let held = recovery::try_lock_sweep(&db).await.unwrap();
    assert!(held.is_some(), "a free lock is taken");
    assert!(
        recovery::try_lock_sweep(&db).await.unwrap().is_none(),
        "a held lock is refused"
    );
    drop(held);
    assert!(
        recovery::try_lock_sweep(&db).await.unwrap().is_some(),
        "a released lock is free"
    );
}

/// The sweep finds pending rows older than the grace, oldest first, page after page.
async fn pending_tasks_are_listed_oldest_first_in_pages(db: &Db) {
    for at in [30, 10, 20, 40] {
        insert(db, TaskStatus::Pending, at).await;
    }
    insert(db, TaskStatus::Succeeded, 5).await;
    let page = |after| recovery::Page {
        created_before: 35,
        after,
        limit: 2,
    };
    let first = recovery::pending_tasks(db, page(None)).await.unwrap();
    assert_eq!(
        first.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
        [10, 20],
        "oldest first, only pending, only before the grace"
    );
    let second = recovery::pending_tasks(db, page(first.last().copied()))
        .await
        .unwrap();
    assert_eq!(second.iter().map(|(at, _)| *at).collect::<Vec<_>>(), [30]);
}

on_both_stores!(pending_tasks_are_listed_oldest_first_in_pages);
