//! The task store on both backends (a throwaway Postgres and a SQLite file): retention deletes
//! only old terminated tasks, in batches; the reaper claims each stale run once; an attempt
//! that lost the task cannot overwrite it.

use harness::Postgres;
use serde_json::{Map, json};
use shared::{
    config::Config,
    store::{
        Db,
        tasks::{self, NewTask, status},
    },
};
use uuid::Uuid;

async fn sqlite() -> (Db, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("llmops-store-{}", Uuid::new_v4()));
    let config =
        Config::try_parse_from(["t".to_string(), format!("--data-dir={}", dir.display())]).unwrap();
    (Db::connect(&config).await.unwrap(), dir)
}

async fn postgres(pg: &Postgres) -> Db {
    let config = Config::try_parse_from([
        "t".to_string(),
        format!("--database-url={}", pg.url()),
        "--jwt-secret=0123456789abcdef0123".to_string(),
    ])
    .unwrap();
    Db::connect(&config).await.unwrap()
}

async fn insert(db: &Db, task_status: &str, at_ms: i64) -> Uuid {
    let id = Uuid::new_v4();
    let inputs = Map::new();
    tasks::insert_task(
        db,
        NewTask {
            id,
            owner_id: None,
            status: task_status,
            schema_json: "{}",
            inputs: &inputs,
            outputs: None,
            report: &json!({}),
            at_ms,
        },
    )
    .await
    .unwrap();
    id
}

async fn check_retention_and_reaper(db: &Db) {
    let day = 24 * 3600 * 1000;
    let now = shared::store::now_ms();
    // 1,200 old finished tasks (more than two batches), plus ones that must survive.
    for _ in 0..1200 {
        insert(db, status::SUCCEEDED, now - 10 * day).await;
    }
    let recent = insert(db, status::FAILED, now - day).await;
    let old_pending = insert(db, status::PENDING, now - 10 * day).await;
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
    let stale = insert(db, status::PENDING, now - day).await;
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
        !tasks::finish_task(
            db,
            stale,
            1,
            status::SUCCEEDED,
            &Map::new(),
            &json!({}),
            now
        )
        .await
        .unwrap()
    );
    assert!(
        tasks::finish_task(
            db,
            stale,
            2,
            status::SUCCEEDED,
            &Map::new(),
            &json!({"ok": true}),
            now
        )
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

#[tokio::test]
async fn sqlite_retention_reaper_and_attempt_ownership() {
    let (db, dir) = sqlite().await;
    check_retention_and_reaper(&db).await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn postgres_retention_reaper_and_attempt_ownership() {
    let Some(pg) = tokio::task::spawn_blocking(Postgres::start).await.unwrap() else {
        return;
    };
    let db = postgres(&pg).await;
    check_retention_and_reaper(&db).await;
}
