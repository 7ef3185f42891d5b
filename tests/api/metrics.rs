//! Prometheus metrics: after a known workload the api's and the workers' `/metrics` moved by
//! exactly the expected amounts, and labels are route templates, never raw paths.

use serde_json::{Value, json};

use crate::helpers::{
    MockLlm, Mode, Stack, StackOptions, both_deployments, free_port,
    runs::{fixture, post_run, report, result, run},
};

/// The sum of every sample of `name` whose labels include all of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

async fn scrape(client: &reqwest::Client, url: &str) -> String {
    let r = client.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    r.text().await.unwrap()
}

/// The worker-side metrics: the api's own in the embedded mode, the worker's listener otherwise.
async fn scrape_workers(stack: &Stack) -> String {
    match stack.env_value("LLMOPS_METRICS_LISTEN") {
        Some(addr) if matches!(stack.mode, Mode::Distributed { .. }) => {
            scrape(&stack.client, &format!("http://{addr}/metrics")).await
        }
        _ => scrape(&stack.client, &stack.url("/metrics")).await,
    }
}

both_deployments! {
    options = |o| o.processes().env("LLMOPS_METRICS_LISTEN", format!("127.0.0.1:{}", free_port()));
    async fn metrics_count_runs_and_requests_exactly(stack: Stack) {
        let llm = MockLlm::start().await;
        llm.set_fixed_usage(7, 11);
        let schema = fixture("basic", &llm);
        let inputs = json!({"model_name": "m", "llm_settings": {"temperature": 0.5}, "work": {"role": "Chat", "task": "t"}});
        // One run whose provider refuses connections: it fails after its LLM call fails.
        let unreachable: Value = serde_json::from_str(&schema.to_string().replace(&llm.base_url, "http://127.0.0.1:1")).unwrap();
        let failing = run(&stack, &unreachable, inputs.clone()).await;
        result(&stack, &failing).await;
        assert_eq!(report(&stack, &failing).await["workflowStatus"]["status"], "failed");
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(run(&stack, &schema, inputs.clone()).await);
        }
        for id in &ids {
            let rep = { result(&stack, id).await; report(&stack, id).await };
            assert_eq!(rep["workflowStatus"]["status"], "succeeded");
        }
        // A schema the API refuses is stored as failed and never queued.
        let r = post_run(&stack, &json!({"nodes": "not a list"}), &json!({})).await;
        let _: Value = r.json().await.unwrap();

        let api = scrape(&stack.client, &stack.url("/metrics")).await;
        assert_eq!(sample(&api, "llmops_runs_submitted_total", &[("status", "pending")]), 4.0, "{api}");
        assert_eq!(sample(&api, "llmops_http_requests_total", &[("route", "/api/task/run"), ("method", "POST")]), 5.0, "{api}");
        assert!(!api.contains(&ids[0]), "a task id leaked into a label");
        assert!(sample(&api, "llmops_store_pool_connections", &[]) >= 1.0, "{api}");
        let (in_use, max) = (
            sample(&api, "llmops_store_pool_connections", &[("state", "in_use")]),
            sample(&api, "llmops_store_pool_connections", &[("state", "max")]),
        );
        assert!(max >= 1.0 && in_use <= max, "in use {in_use}, max {max}");
        assert_eq!(sample(&api, "llmops_http_request_duration_seconds_count", &[("route", "/api/task/run")]), 5.0);

        let workers = scrape_workers(&stack).await;
        assert_eq!(sample(&workers, "llmops_runs_finished_total", &[("status", "succeeded")]), 3.0, "{workers}");
        assert_eq!(sample(&workers, "llmops_run_duration_seconds_count", &[("status", "succeeded")]), 3.0);
        assert_eq!(sample(&workers, "llmops_run_pickup_seconds_count", &[("queue", "workflow")]), 4.0);
        assert_eq!(sample(&workers, "llmops_runs_finished_total", &[("status", "failed")]), 1.0);
        assert_eq!(sample(&workers, "llmops_llm_calls_total", &[("host", "127.0.0.1"), ("outcome", "ok")]), 3.0);
        assert_eq!(sample(&workers, "llmops_llm_calls_total", &[("outcome", "error")]), 1.0);
        assert_eq!(sample(&workers, "llmops_llm_tokens_total", &[("kind", "prompt")]), 21.0);
        assert_eq!(sample(&workers, "llmops_llm_tokens_total", &[("kind", "completion")]), 33.0);
        assert_eq!(sample(&workers, "llmops_llm_call_duration_seconds_count", &[]), 4.0);
        // Three runs of start, llm, end; the failed one ran start and failed in llm.
        assert_eq!(sample(&workers, "llmops_node_executions_total", &[("type", "start"), ("status", "succeeded")]), 4.0);
        assert_eq!(sample(&workers, "llmops_node_executions_total", &[("type", "llm"), ("status", "succeeded")]), 3.0);
        assert_eq!(sample(&workers, "llmops_node_executions_total", &[("type", "llm"), ("status", "failed")]), 1.0);
        assert_eq!(sample(&workers, "llmops_node_executions_total", &[("type", "end"), ("status", "succeeded")]), 3.0);
        assert_eq!(sample(&workers, "llmops_node_duration_seconds_count", &[("type", "llm")]), 4.0);
    }
}

/// The waiting count of the workflow queue as the api reports it.
async fn workflow_waiting(stack: &Stack) -> f64 {
    let text = scrape(&stack.client, &stack.url("/metrics")).await;
    sample(
        &text,
        "llmops_queue_depth",
        &[("queue", "workflow"), ("state", "waiting")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_depth_gauge_rises_with_a_backlog_and_returns_to_zero_as_workers_drain_it() {
    // Arrange: the distributed deployment with no worker.
    let Some(mut stack) =
        Stack::start_with(StackOptions::new(Mode::Distributed { workers: 0 })).await
    else {
        return;
    };
    let llm = MockLlm::start().await;
    let schema = fixture("basic", &llm);
    let inputs = json!({"model_name": "m", "llm_settings": {"temperature": 0.5}, "work": {"role": "Chat", "task": "t"}});
    assert_eq!(workflow_waiting(&stack).await, 0.0);

    // Act: a backlog of five runs.
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(run(&stack, &schema, inputs.clone()).await);
    }
    assert_eq!(workflow_waiting(&stack).await, 5.0);

    // A worker drains it.
    stack.spawn_worker().await;
    for id in &ids {
        result(&stack, id).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = scrape(&stack.client, &stack.url("/metrics")).await;
        let pending: f64 = ["waiting", "running", "scheduled"]
            .iter()
            .map(|s| {
                sample(
                    &text,
                    "llmops_queue_depth",
                    &[("queue", "workflow"), ("state", s)],
                )
            })
            .sum();
        if pending == 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the queue never drained: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Every `llmops_` metric name a query of the provisioned dashboard uses, without the
/// histogram suffixes Prometheus adds.
fn dashboard_metric_names() -> std::collections::BTreeSet<String> {
    let path = format!(
        "{}/../monitoring/grafana/dashboards/llmops.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut names = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(at) = rest.find("llmops_") {
                let tail = &rest[at..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                names.insert(tail[..end].to_owned());
                rest = &tail[end..];
            }
        }
    }
    assert!(!names.is_empty(), "the dashboard queries no llmops metric");
    names
}

both_deployments! {
    options = |o| o.processes().mock_llm().env("LLMOPS_METRICS_LISTEN", format!("127.0.0.1:{}", free_port()));
    async fn every_metric_the_dashboard_queries_exists_in_a_real_scrape(stack: Stack) {
        // A workload that touches runs, LLM calls (failed ones too) and the queues.
        let llm = MockLlm::start().await;
        let schema = fixture("basic", &llm);
        let inputs = json!({"model_name": "m", "llm_settings": {"temperature": 0.5}, "work": {"role": "Chat", "task": "t"}});
        let unreachable: Value = serde_json::from_str(&schema.to_string().replace(&llm.base_url, "http://127.0.0.1:1")).unwrap();
        for schema in [&schema, &unreachable] {
            let id = run(&stack, schema, inputs.clone()).await;
            result(&stack, &id).await;
        }
        // A debug chat: a streamed LLM call.
        let token = stack.sign_up(&format!("m-{}@example.com", uuid::Uuid::new_v4().simple()), "a-long-password-1").await;
        let app: Value = stack.client.post(stack.url("/api/apps")).bearer_auth(&token)
            .json(&json!({"name": "Bot", "icon": "https://a.com/111.png", "description": "d"})).send().await.unwrap().json().await.unwrap();
        let app = app["data"]["id"].as_str().expect("app id").to_owned();
        let r = stack.client.post(stack.url(&format!("/api/apps/{app}/debug"))).bearer_auth(&token)
            .json(&json!({"query": "hi"})).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let scraped = format!("{}\n{}", scrape(&stack.client, &stack.url("/metrics")).await, scrape_workers(&stack).await);
        for name in dashboard_metric_names() {
            let base = ["_bucket", "_count", "_sum"].iter().fold(name.as_str(), |n, s| n.strip_suffix(s).unwrap_or(n));
            assert!(
                scraped.lines().any(|l| l.starts_with(&name) || l.starts_with(&format!("# TYPE {base} "))),
                "the dashboard queries {name}, which no /metrics scrape has"
            );
        }
    }
}
