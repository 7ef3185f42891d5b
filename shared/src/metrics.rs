//! Prometheus metrics: one process-wide recorder (the `metrics` facade), rendered by the API's
//! `GET /metrics` and by a worker's small listener (`LLMOPS_METRICS_LISTEN`). Names carry the
//! `llmops_` prefix and their unit; labels are bounded (route templates, statuses, queue names).

use std::{net::SocketAddr, sync::OnceLock};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// HTTP requests by route template, method and status.
pub const HTTP_REQUESTS: &str = "llmops_http_requests_total";
/// HTTP request duration by route template and method.
pub const HTTP_DURATION: &str = "llmops_http_request_duration_seconds";
/// Workflow runs accepted by the API.
pub const RUNS_SUBMITTED: &str = "llmops_runs_submitted_total";
/// Workflow runs a worker finished, by final status.
pub const RUNS_FINISHED: &str = "llmops_runs_finished_total";
/// Time from a worker claiming a run to its end, by final status.
pub const RUN_DURATION: &str = "llmops_run_duration_seconds";
/// Time from a run's creation to a worker claiming its first attempt.
pub const RUN_PICKUP: &str = "llmops_run_pickup_seconds";
/// Deliveries of a run claimed again (attempt > 1).
pub const REDELIVERIES: &str = "llmops_run_redeliveries_total";

/// Jobs per queue (`workflow`, `chat`) and state (`waiting`, `running`, `scheduled`), read from
/// the queue backend at each scrape of the API.
pub const QUEUE_DEPTH: &str = "llmops_queue_depth";

/// Node executions by node type and status (`succeeded`, `failed`).
pub const NODE_EXECUTIONS: &str = "llmops_node_executions_total";
/// Node execution duration by node type.
pub const NODE_DURATION: &str = "llmops_node_duration_seconds";
/// Debug chats answered, by outcome.
pub const CHATS: &str = "llmops_chats_total";

/// LLM calls by provider host and outcome (`ok`, `error`; retries inside one call count once).
pub const LLM_CALLS: &str = "llmops_llm_calls_total";
/// Duration of a non-streamed LLM call, retries included.
pub const LLM_DURATION: &str = "llmops_llm_call_duration_seconds";
/// Time from starting a streamed LLM call to its first token.
pub const LLM_FIRST_TOKEN: &str = "llmops_llm_time_to_first_token_seconds";
/// Tokens the provider reported, by host and kind (`prompt`, `completion`).
pub const LLM_TOKENS: &str = "llmops_llm_tokens_total";

/// Runs and chat messages the re-queue sweep queued again, by queue and reason.
pub const REQUEUED: &str = "llmops_requeued_total";
/// Runs failed because they used up their attempts (their workers kept dying).
pub const REAPED: &str = "llmops_runs_reaped_total";
/// Store pool connections by state (`in_use`, `idle`) and pool (`main`, `read`, `write`).
pub const STORE_POOL: &str = "llmops_store_pool_connections";
/// Reconnects of the Redis signal subscription.
pub const SIGNAL_RECONNECTS: &str = "llmops_signal_reconnects_total";

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once (several apps in one test process share it) and
/// returns the handle that renders it.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let duration_buckets = [
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                300.0,
            ];
            let recorder = PrometheusBuilder::new()
                .set_buckets(&duration_buckets)
                .expect("static buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder already installed (only possible in tests): ours renders nothing.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_gauge!(
        QUEUE_DEPTH,
        "Jobs per queue and state, read from the queue backend"
    );
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests by route template, method and status"
    );
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "HTTP request duration");
    describe_counter!(RUNS_SUBMITTED, "Workflow runs accepted by the API");
    describe_counter!(RUNS_FINISHED, "Workflow runs finished, by final status");
    describe_histogram!(RUN_DURATION, Unit::Seconds, "Run time from claim to end");
    describe_histogram!(
        RUN_PICKUP,
        Unit::Seconds,
        "Queued-to-started latency of workflow runs and chat answers, by queue"
    );
    describe_counter!(REDELIVERIES, "Runs claimed again after an earlier attempt");
}

/// Serves the rendered metrics on `listen` to any request (a worker has no other HTTP server).
/// Returns the bound address; the listener runs until the runtime stops.
pub async fn serve(listen: SocketAddr, handle: PrometheusHandle) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                // The request itself does not matter; read its head and answer.
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let body = handle.render();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {CONTENT_TYPE}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok(addr)
}
