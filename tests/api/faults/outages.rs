//! Outages of the distributed deployment's services, with runs in flight: Redis restarted
//! without persistence (its queues lost), Redis down at submit, Postgres restarted under
//! load, workers killed under load. Every accepted run must end with exactly one result, and
//! no process may need a restart.

use std::time::{Duration, Instant};

use crate::helpers::{
    MockLlm, Mode, Stack, StackOptions,
    runs::{fixture, provider_holds_a_call, report, result_within, run},
};
use serde_json::{Value, json};

use super::common::{assert_all_succeed, basic_inputs, submit_basic};

/// Runs queued in Redis when it restarts empty.
const QUEUED: usize = 300;
/// Runs submitted while Redis is down.
const DURING_OUTAGE: usize = 30;

async fn readyz(stack: &Stack) -> (u16, Duration) {
    let started = Instant::now();
    let status = stack
        .client
        .get(stack.url("/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    (status, started.elapsed())
}

/// `GET /api/task/result?wait=…` of a task, and how long it took.
async fn wait_result(stack: &Stack, id: &str, wait_ms: u64) -> (Value, Duration) {
    let started = Instant::now();
    let body = result_within(stack, id, wait_ms).await;
    (body, started.elapsed())
}

/// Redis restarted without its data while 300 runs wait in its queue, and 30 more runs (and
/// a debug chat) submitted while it is down: all are accepted, all run once Redis is back,
/// each exactly once; signals and cancel work again without restarting any process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_without_persistence_loses_no_accepted_run() {
    let llm = MockLlm::start().await;
    let options = StackOptions::new(Mode::Distributed { workers: 0 })
        .processes()
        .env("LLMOPS_LLM_BASE_URL", &llm.base_url);
    let Some(mut stack) = Stack::start_with(options).await else {
        return;
    };
    let token = stack.sign_up("ops@example.com", "passw0rd-long").await;
    let app = create_configured_app(&stack, &token).await;

    // No worker yet: the runs wait in Redis.
    let (mut accepted, refused) = submit_basic(&stack, &llm, "queued", QUEUED, 16).await;
    assert!(refused.is_empty(), "refused: {refused:?}");

    stack.redis.as_mut().unwrap().stop();
    let (status, took) = readyz(&stack).await;
    assert_eq!(status, 503, "not ready while Redis is down");
    assert!(took < Duration::from_secs(1), "/readyz took {took:?}");
    // Accepted while Redis is down: the store has them.
    let (during, refused) = submit_basic(&stack, &llm, "outage", DURING_OUTAGE, 8).await;
    assert!(
        refused.is_empty(),
        "refused while Redis is down: {refused:?}"
    );
    accepted.extend(during);
    let chat = {
        let client = stack.client.clone();
        let url = stack.url(&format!("/api/apps/{app}/debug"));
        let token = token.clone();
        tokio::spawn(async move {
            let r = client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"query": "asked while Redis is down"}))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };

    stack.redis.as_mut().unwrap().start_again();
    let back = Instant::now();
    stack.spawn_worker().await;
    stack.spawn_worker().await;

    assert_all_succeed(&stack, &accepted, Duration::from_secs(60)).await;
    let all_done = back.elapsed();
    let (status, answer) = chat.await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["data"]["status"], "normal", "{answer}");
    // Exactly once: one provider call per run (and the chat's), none repeated.
    assert_eq!(
        llm.requests().len(),
        accepted.len() + 1,
        "every run called the provider once"
    );

    // Signals are back: a fresh run's completion reaches a long poll at once (a store check
    // alone would take 5 s), and a cancel stops a running call.
    let schema = fixture("basic", &llm);
    let id = run(&stack, &schema, basic_inputs("after")).await;
    let (result, first_signal) = wait_result(&stack, &id, 20_000).await;
    assert_eq!(result["llm_task"], "after", "{result}");
    assert!(
        first_signal < Duration::from_secs(4),
        "long poll answered after {first_signal:?}"
    );
    let slow = MockLlm::start().await;
    slow.set_latency(Duration::from_secs(30));
    let id = run(&stack, &fixture("basic", &slow), basic_inputs("canceled")).await;
    provider_holds_a_call(&slow).await;
    let canceled = stack
        .client
        .put(stack.url("/api/task/cancel"))
        .json(&json!({"taskID": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(canceled.status(), 200);
    let (_, took) = wait_result(&stack, &id, 20_000).await;
    let report = report(&stack, &id).await;
    assert_eq!(report["workflowStatus"]["status"], "canceled", "{report}");
    assert!(took < Duration::from_secs(4), "cancel took {took:?}");
    eprintln!(
        "redis restart: {} runs accepted, all succeeded {:.1} s after Redis came back; \
         first long poll after it {first_signal:?}; cancel to canceled {took:?}",
        accepted.len(),
        all_done.as_secs_f64()
    );
}

/// Signals down, runs going: a cancel while Redis is down still reaches the worker (through
/// the store), and a long poll still answers (from the store) when the run ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_long_polls_work_while_redis_is_down() {
    let Some(mut stack) = Stack::start_processes(Mode::Distributed { workers: 1 }).await else {
        return;
    };
    let slow = MockLlm::start().await;
    slow.set_latency(Duration::from_secs(30));
    let id = run(&stack, &fixture("basic", &slow), basic_inputs("c")).await;
    provider_holds_a_call(&slow).await;
    stack.redis.as_mut().unwrap().stop();
    let started = Instant::now();
    let canceled = stack
        .client
        .put(stack.url("/api/task/cancel"))
        .json(&json!({"taskID": id}))
        .send()
        .await
        .unwrap();
    assert_eq!(canceled.status(), 200, "cancel is recorded in the store");
    let (result, _) = wait_result(&stack, &id, 15_000).await;
    let took = started.elapsed();
    assert_eq!(result, json!({}), "a canceled run has no outputs");
    let report = report(&stack, &id).await;
    assert_eq!(report["workflowStatus"]["status"], "canceled", "{report}");
    assert!(
        took < Duration::from_secs(8),
        "cancel without signals took {took:?}"
    );
    stack.redis.as_mut().unwrap().start_again();
}

/// Workers and the API that were running when Redis restarted empty go on without a
/// restart: the API's first push and the workers' fetches reconnect, the workers register
/// again, and new runs (and one submitted during the outage) succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_running_across_a_redis_restart_keep_working() {
    let Some(mut stack) = Stack::start_processes(Mode::Distributed { workers: 2 }).await else {
        return;
    };
    let llm = MockLlm::start().await;
    let (before, _) = submit_basic(&stack, &llm, "before", 20, 4).await;
    assert_all_succeed(&stack, &before, Duration::from_secs(30)).await;
    stack.redis.as_mut().unwrap().stop();
    let (during, refused) = submit_basic(&stack, &llm, "during", 5, 1).await;
    assert!(refused.is_empty(), "{refused:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    stack.redis.as_mut().unwrap().start_again();
    let back = Instant::now();
    let (after, refused) = submit_basic(&stack, &llm, "after", 50, 4).await;
    assert!(
        refused.is_empty(),
        "the first pushes after the restart: {refused:?}"
    );
    assert_all_succeed(&stack, &during, Duration::from_secs(30)).await;
    assert_all_succeed(&stack, &after, Duration::from_secs(30)).await;
    eprintln!(
        "redis restart under running processes: all runs done {:.1} s after it came back",
        back.elapsed().as_secs_f64()
    );
}

/// A fast Postgres restart while runs are submitted and running: every accepted run
/// succeeds (submissions while the store is down may be refused with 503, never lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_loses_no_accepted_run() {
    let Some(stack) = Stack::start_processes(Mode::Distributed { workers: 2 }).await else {
        return;
    };
    let llm = MockLlm::start().await;
    llm.set_latency(Duration::from_millis(300));
    let started = Instant::now();
    // Submitting for 3 s, two at a time; the restart comes after one.
    let submitting = async {
        let (mut accepted, mut refused) = (Vec::new(), Vec::new());
        let mut round = 0;
        while started.elapsed() < Duration::from_secs(3) {
            let (a, r) = submit_basic(&stack, &llm, &format!("pg{round}"), 10, 2).await;
            accepted.extend(a);
            refused.extend(r);
            round += 1;
        }
        ((accepted, refused), started.elapsed())
    };
    let restart = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let postgres = stack.postgres.as_ref().unwrap();
        let at = started.elapsed();
        tokio::task::block_in_place(|| postgres.restart());
        (at, started.elapsed())
    };
    let (((accepted, refused), submitted_by), (restart_at, restarted_by)) =
        tokio::join!(submitting, restart);
    assert!(
        restart_at < submitted_by,
        "the restart came during the submissions"
    );
    assert!(
        refused.iter().all(|&s| s == 503),
        "only an unreachable store refuses: {refused:?}"
    );
    assert_all_succeed(&stack, &accepted, Duration::from_secs(90)).await;
    eprintln!(
        "postgres restart: {} accepted, {} refused with 503, all accepted succeeded \
         (restart {restart_at:?}..{restarted_by:?}, submissions until {submitted_by:?})",
        accepted.len(),
        refused.len()
    );
}

/// Two of three workers killed with SIGKILL while 300 runs are going: every run succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_workers_under_load_loses_no_run() {
    let Some(mut stack) = Stack::start_processes(Mode::Distributed { workers: 3 }).await else {
        return;
    };
    let llm = MockLlm::start().await;
    llm.set_latency(Duration::from_secs(1));
    let (accepted, refused) = submit_basic(&stack, &llm, "kill", 300, 16).await;
    assert!(refused.is_empty(), "{refused:?}");
    // Killed while they hold runs: every worker takes up to 64 at a time.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack.workers[0].kill9();
    stack.workers[1].kill9();
    let dropped = llm.requests().len() - llm.completed();
    assert_all_succeed(&stack, &accepted, Duration::from_secs(90)).await;
    assert!(
        llm.requests().len() >= accepted.len(),
        "every run reached the provider"
    );
    eprintln!(
        "workers killed: {} runs, all succeeded; {dropped} provider calls were in flight at the kill, {} calls in all",
        accepted.len(),
        llm.requests().len()
    );
}

/// An app with a config, for a debug chat.
async fn create_configured_app(stack: &Stack, token: &str) -> String {
    let created: Value = stack
        .client
        .post(stack.url("/api/apps"))
        .bearer_auth(token)
        .json(&json!({"name": "Ops", "icon": "https://a.com/1.png", "description": "d"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let app = created["data"]["id"].as_str().expect("app id").to_owned();
    let configured = stack
        .client
        .put(stack.url(&format!("/api/apps/{app}/config")))
        .bearer_auth(token)
        .json(&json!({"model_config": {"dialog_round": 1}, "memory_mode": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(configured.status(), 200);
    app
}

/// A result the store refuses (here a trigger refuses one marked output) fails that run at
/// once, saying why; runs written in the same batch are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_the_store_refuses_fails_only_its_run_saying_why() {
    let Some(stack) = Stack::start(Mode::Distributed { workers: 1 }).await else {
        return;
    };
    let database_url = stack
        .env()
        .iter()
        .find(|(key, _)| key == "DATABASE_URL")
        .map(|(_, url)| url.clone())
        .expect("the stack's DATABASE_URL");
    let store = sqlx::PgPool::connect(&database_url).await.unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_marked() RETURNS trigger AS $$
         BEGIN
             IF NEW.outputs::text LIKE '%refuse-me%' THEN
                 RAISE EXCEPTION 'refused by the test' USING ERRCODE = 'check_violation';
             END IF;
             RETURN NEW;
         END $$ LANGUAGE plpgsql;
         CREATE TRIGGER refuse_marked BEFORE UPDATE ON tasks
             FOR EACH ROW EXECUTE FUNCTION refuse_marked();",
    )
    .execute(&store)
    .await
    .unwrap();
    let llm = MockLlm::start().await;
    let (mut runs, refused) = submit_basic(&stack, &llm, "fine", 10, 10).await;
    assert!(refused.is_empty());
    let bad = run(&stack, &fixture("basic", &llm), basic_inputs("refuse-me")).await;
    let (result, _) = wait_result(&stack, &bad, 20_000).await;
    assert_eq!(result, json!({}), "no outputs stored");
    let report = report(&stack, &bad).await;
    assert_eq!(report["workflowStatus"]["status"], "failed", "{report}");
    assert!(
        report.to_string().contains("could not be stored"),
        "the report says why: {report}"
    );
    runs.retain(|(id, _)| id != &bad);
    assert_all_succeed(&stack, &runs, Duration::from_secs(30)).await;
}

/// The embedded deployment: a task stored `pending` without its queue job (as when a process
/// dies between its insert and its push) is queued by the sweep and runs, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_task_without_its_job_runs_on_the_embedded_store() {
    let Some(stack) = Stack::start(Mode::Embedded).await else {
        return;
    };
    let llm = MockLlm::start().await;
    let file = stack.dir.join("data").join("llmops.db");
    let store = sqlx::SqlitePool::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    let id = uuid::Uuid::now_v7();
    let now = shared::store::now_ms();
    sqlx::query(
        "INSERT INTO tasks (id, owner_id, status, schema_json, inputs, outputs, report, created_at, updated_at, finished_at)
         VALUES ($1, NULL, 'pending', $2, $3, NULL, '{}', $4, $4, NULL)",
    )
    .bind(id)
    .bind(fixture("basic", &llm).to_string())
    .bind(basic_inputs("orphan").to_string())
    .bind(now)
    .execute(&store)
    .await
    .unwrap();
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM Jobs")
        .fetch_one(&store)
        .await
        .unwrap();
    assert_eq!(jobs, 0, "no job queued for it");
    let id = id.to_string();
    assert_all_succeed(
        &stack,
        &[(id, "orphan".to_owned())],
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(llm.requests().len(), 1, "run once");
}
