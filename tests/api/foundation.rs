//! The foundation, black-box: the real binaries in both deployments serve health, readiness,
//! the docs UIs and JSON errors; configuration mistakes exit with one line naming the setting.

use std::{process::Command, time::Duration};

use crate::helpers::{Mode, Stack, StackOptions, both_deployments, stack::binary};
use serde_json::Value;

both_deployments! {
    async fn health_readiness_and_docs_are_served(stack: Stack) {
        let health: Value = stack.get_json("/healthz").await;
        assert_eq!(health["status"], "ok");

        let ready = stack.client.get(stack.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
        let ready: Value = ready.json().await.unwrap();
        assert_eq!(ready, serde_json::json!({"status": "ready", "store": true, "queue": true}));

        let docs = stack.client.get(stack.url("/api/docs/")).send().await.unwrap();
        assert_eq!(docs.status(), 200);
        assert!(docs.text().await.unwrap().contains("swagger"), "Swagger UI page");
        // A browser opening the server itself lands on the docs.
        let root = stack.client.get(stack.url("/")).send().await.unwrap();
        assert_eq!(root.status(), 200, "followed to the docs");
        assert!(root.url().path().starts_with("/api/docs"), "{}", root.url());

        let spec: Value = stack.get_json("/api/openapi.json").await;
        assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
        assert!(spec["paths"]["/healthz"].is_object());
        assert!(spec["paths"]["/readyz"].is_object());

        let redoc = stack.client.get(stack.url("/api/redoc")).send().await.unwrap().text().await.unwrap();
        assert!(redoc.contains("/api/redoc/redoc.standalone.js") && !redoc.contains("cdn."), "ReDoc is self-hosted");
        let js = stack.client.get(stack.url("/api/redoc/redoc.standalone.js")).send().await.unwrap();
        assert_eq!(js.status(), 200);
    }
}

both_deployments! {
    async fn unknown_routes_answer_json_with_a_request_id(stack: Stack) {
        let r = stack.client.get(stack.url("/no/such/route")).send().await.unwrap();
        assert_eq!(r.status(), 404);
        assert!(r.headers().contains_key("x-request-id"));
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "not_found");
        assert!(body["message"].as_str().unwrap().contains("/no/such/route"));
    }
}

#[tokio::test]
async fn an_oversize_body_is_refused_with_413_json() {
    let options = StackOptions::new(Mode::Embedded).env("LLMOPS_BODY_LIMIT", "1KB");
    let Some(stack) = Stack::start_with(options).await else {
        return;
    };
    let r = stack
        .client
        .post(stack.url("/healthz"))
        .header("content-type", "application/json")
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "validate_error");
    assert!(body["message"].as_str().unwrap().contains("1024"));
}

#[tokio::test]
async fn cors_allows_the_editor_from_another_origin() {
    let Some(stack) = Stack::start(Mode::Embedded).await else {
        return;
    };
    let r = stack
        .client
        .request(reqwest::Method::OPTIONS, stack.url("/healthz"))
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn large_answers_are_compressed_for_clients_that_ask_and_small_ones_are_not() {
    let Some(stack) = Stack::start(Mode::Embedded).await else {
        return;
    };
    let get = |path: &'static str| {
        stack
            .client
            .get(stack.url(path))
            .header("accept-encoding", "gzip, deflate, br, zstd")
            .send()
    };
    // The OpenAPI document is tens of kilobytes: compressed.
    let spec = get("/api/openapi.json").await.unwrap();
    assert_eq!(spec.status(), 200);
    assert_eq!(spec.headers()["content-encoding"], "gzip");
    let packed = spec.bytes().await.unwrap();
    let mut unpacked = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&packed[..]),
        &mut unpacked,
    )
    .unwrap();
    let spec: Value = serde_json::from_slice(&unpacked).unwrap();
    assert!(unpacked.len() > 1024 && spec["paths"].is_object());
    // The readiness answer is 44 bytes, which gzip would only make larger.
    let ready = get("/readyz").await.unwrap();
    assert_eq!(ready.status(), 200);
    assert!(
        ready.headers().get("content-encoding").is_none(),
        "{:?}",
        ready.headers()
    );
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
}

#[tokio::test]
async fn the_embedded_default_keeps_a_private_jwt_secret_in_the_data_directory() {
    // The harness sets JWT_SECRET for its stacks; this api runs with no settings at all.
    let dir = std::env::temp_dir().join(format!("llmops-secret-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = crate::helpers::free_port();
    let mut child = Command::new(binary("llmops-api"))
        .current_dir(&dir)
        .env_remove("JWT_SECRET")
        .env_remove("DATABASE_URL")
        .env_remove("REDIS_URL")
        .env("LLMOPS_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .is_err()
    {
        assert!(std::time::Instant::now() < deadline, "api did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secret = dir.join("data/jwt_secret");
    assert!(
        dir.join("data/llmops.db").is_file(),
        "SQLite file under ./data"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_bad_setting_exits_with_one_line_naming_it() {
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("LLMOPS_LISTEN", "not-an-address")], "LLMOPS_LISTEN"),
        (
            &[("DATABASE_URL", "postgres://u@127.0.0.1:1/x")],
            "JWT_SECRET",
        ),
        (&[("LLMOPS_TASK_AUTH", "sometimes")], "LLMOPS_TASK_AUTH"),
        (&[("LLMOPS_BODY_LIMIT", "ten")], "LLMOPS_BODY_LIMIT"),
    ];
    for bin in ["llmops-api", "llmops-worker"] {
        for (env, named) in cases {
            let out = Command::new(binary(bin))
                .env_remove("DATABASE_URL")
                .env_remove("JWT_SECRET")
                .envs(env.iter().copied())
                .output()
                .unwrap();
            assert!(!out.status.success(), "{bin} accepted {env:?}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(stderr.trim().lines().count(), 1, "{bin} {env:?}: {stderr}");
            assert!(
                stderr.contains(named),
                "{bin} {env:?} should name {named}: {stderr}"
            );
        }
    }
}

#[test]
fn help_documents_every_setting() {
    let out = Command::new(binary("llmops-api"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for name in shared::config::Config::env_names() {
        assert!(help.contains(name), "--help does not mention {name}");
    }
}

both_deployments! {
    options = |o| o.processes();
    async fn sigterm_stops_the_server_gracefully(stack: Stack) {
        let mut stack = stack;
        let status = stack.api.process().terminate(Duration::from_secs(25)).expect("api did not stop on SIGTERM");
        assert!(status.success(), "api exit status {status}");
        for w in stack.workers.iter_mut() {
            let status = w.terminate(Duration::from_secs(25)).expect("worker did not stop on SIGTERM");
            assert!(status.success(), "worker exit status {status}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_is_503_when_the_queue_is_down() {
    let Some(mut stack) = Stack::start(Mode::Distributed { workers: 0 }).await else {
        return;
    };
    assert_eq!(
        stack
            .client
            .get(stack.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    drop(stack.redis.take()); // kills redis-server
    let r = stack.client.get(stack.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"status": "unavailable", "store": true, "queue": false})
    );
    // Liveness does not depend on the backends.
    assert_eq!(
        stack
            .client
            .get(stack.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let options = StackOptions::new(Mode::Embedded)
        .processes()
        .env("LLMOPS_LOG_FORMAT", "json");
    let Some(mut stack) = Stack::start_with(options).await else {
        return;
    };
    stack
        .client
        .get(stack.url("/healthz"))
        .send()
        .await
        .unwrap();
    let log = stack.api.process().log_text();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "the api logged nothing");
    for line in lines {
        let entry: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            entry["level"].is_string() && entry["timestamp"].is_string(),
            "{line}"
        );
    }
}
