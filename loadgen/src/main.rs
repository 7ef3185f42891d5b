//! `llmops-loadgen`: drives a running llmops server over keep-alive HTTP connections and
//! prints throughput, end-to-end latency percentiles, errors and the server processes' CPU
//! seconds per operation.
//!
//!   llmops-loadgen workflow --schema loadgen/schemas/start-llm-end.json --mock-llm -n 20000 -c 64
//!
//! A workflow run is `POST /api/task/run` then `GET /api/task/result?wait=…`, which the
//! server answers when the run finishes (no client-side polling loop).
//!
//!   llmops-loadgen chat --mock-llm --mock-port 4100 -c 1 -n 2000
//!
//! A debug chat is `POST /api/apps/{id}/debug` (see `chat.rs`).

mod cancel;
mod chat;
mod reports;
mod streams;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use loadgen::{cpu, mock_llm::MockLlm, stats};
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// mimalloc: the services allocate many small, short-lived buffers (JSON, HTTP); glibc's
/// allocator spent a fifth of a worker's CPU on them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(version, about = "Load generator for llmops")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Submit workflow runs and wait for each result.
    Workflow(WorkflowArgs),
    /// Debug chats on one app (signs up, creates and configures the app first).
    Chat(chat::ChatArgs),
    /// Time from cancelling a run in the middle of its LLM call to its `canceled` state.
    Cancel(cancel::CancelArgs),
    /// What many clients polling one running task's report cost the server.
    Reports(reports::ReportsArgs),
    /// What the task stream costs the server: CPU per event, many open streams.
    Streams(streams::StreamsArgs),
}

#[derive(Args, Clone)]
struct Common {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:4000")]
    url: String,
    /// Operations in total.
    #[arg(short = 'n', long, default_value_t = 10_000)]
    total: usize,
    /// Stop starting operations after this many seconds, even before `-n`.
    #[arg(long)]
    duration_secs: Option<u64>,
    /// Operations in flight at once.
    #[arg(short = 'c', long, default_value_t = 64)]
    concurrency: usize,
    /// Open-loop rate (operations per second); without it, closed loop at full speed.
    #[arg(long)]
    rate: Option<f64>,
    /// Operations run first and left out of the figures.
    #[arg(long, default_value_t = 200)]
    warmup: usize,
    /// Start an OpenAI-compatible mock LLM on loopback; `{{MOCK_LLM}}` in the schema becomes its URL.
    #[arg(long)]
    mock_llm: bool,
    /// The mock LLM's latency before answering, in milliseconds.
    #[arg(long, default_value_t = 0)]
    mock_latency_ms: u64,
    /// Bearer token to send.
    #[arg(long)]
    token: Option<String>,
    /// Process names whose CPU time is reported (comma separated).
    #[arg(long, default_value = "llmops-api,llmops-worker,postgres,redis-server")]
    cpu_of: String,
}

#[derive(Args, Clone)]
struct WorkflowArgs {
    #[command(flatten)]
    common: Common,
    /// Workflow schema file (FlowGram JSON).
    #[arg(long)]
    schema: std::path::PathBuf,
    /// Start inputs (JSON object).
    #[arg(long, default_value = r#"{"prompt":"Say hi"}"#)]
    inputs: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Workflow(args) => workflow(args).await,
        Command::Chat(args) => chat::chat(args).await,
        Command::Cancel(args) => cancel::cancel(args).await,
        Command::Reports(args) => reports::reports(args).await,
        Command::Streams(args) => streams::streams(args).await,
    }
}

/// One workflow run, end to end; returns its latency.
/// What every run sends, prepared once so the load generator spends its CPU on requests,
/// not on re-encoding the same body and re-parsing the same URL.
struct RunRequest {
    base: String,
    run_url: reqwest::Url,
    result_url: reqwest::Url,
    body: bytes::Bytes,
    token: Option<String>,
}

impl RunRequest {
    fn new(url: &str, body: &Value, token: Option<String>) -> anyhow::Result<Self> {
        Ok(Self {
            base: url.to_owned(),
            run_url: format!("{url}/api/task/run").parse()?,
            result_url: format!("{url}/api/task/result").parse()?,
            body: serde_json::to_vec(body)?.into(),
            token,
        })
    }
}

async fn one_run(client: &reqwest::Client, request: &RunRequest) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut req = client
        .post(request.run_url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(request.body.clone());
    if let Some(t) = &request.token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await?;
    if !r.status().is_success() {
        bail!(
            "run answered {}: {}",
            r.status(),
            r.text().await.unwrap_or_default()
        );
    }
    let id = r.json::<Value>().await?["taskID"]
        .as_str()
        .context("no taskID")?
        .to_owned();
    let mut result_url = request.result_url.clone();
    result_url.set_query(Some(&format!("taskID={id}&wait=30000")));
    let mut req = client.get(result_url);
    if let Some(t) = &request.token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await?;
    if !r.status().is_success() {
        bail!("result answered {}", r.status());
    }
    let result: Value = r.json().await?;
    if result.is_null() || result.as_object().is_some_and(|m| m.is_empty()) {
        let report: Value = client
            .get(format!("{}/api/task/report?taskID={id}", request.base))
            .send()
            .await?
            .json()
            .await?;
        bail!("run {id} did not succeed: {}", report["messages"]["error"]);
    }
    Ok(start.elapsed())
}

async fn workflow(args: WorkflowArgs) -> anyhow::Result<()> {
    let common = args.common.clone();
    let mut schema = std::fs::read_to_string(&args.schema)
        .with_context(|| format!("reading {}", args.schema.display()))?;
    let _mock = if common.mock_llm {
        let mock = MockLlm::start().await;
        mock.set_latency(Duration::from_millis(common.mock_latency_ms));
        mock.forget_requests();
        schema = schema.replace("{{MOCK_LLM}}", &mock.base_url);
        Some(mock)
    } else {
        None
    };
    let inputs: Value = serde_json::from_str(&args.inputs).context("--inputs is not JSON")?;
    let request = Arc::new(RunRequest::new(
        &common.url,
        &json!({"schema": schema, "inputs": inputs}),
        common.token.clone(),
    )?);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(common.concurrency * 2)
        .timeout(Duration::from_secs(60))
        .build()?;

    let run = move || {
        let (client, request) = (client.clone(), request.clone());
        async move { one_run(&client, &request).await }
    };
    drive("workflow runs", &common, run).await.map(|_| ())
}

/// Runs `op` `total` times (or for `duration_secs`) after a warm-up, at the configured
/// concurrency or rate, prints the figures and returns the latency percentiles.
async fn drive<F, Fut>(
    label: &str,
    common: &Common,
    op: F,
) -> anyhow::Result<Option<stats::Percentiles>>
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<Duration>> + Send,
{
    // Warm-up: connections, caches, JIT-free but allocator-warm.
    let warm = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..common.concurrency.min(common.warmup.max(1)) {
        let (op, warm, n) = (op.clone(), warm.clone(), common.warmup);
        tasks.push(tokio::spawn(async move {
            while warm.fetch_add(1, Ordering::SeqCst) < n {
                let _ = op().await;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }

    let names: Vec<&str> = common
        .cpu_of
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let procs = cpu::find_processes(&names);
    let cpu_before = cpu::snapshot(&procs);
    let own_before = cpu::process_cpu_secs(std::process::id()).unwrap_or(0.0);
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(common.total.min(1 << 20))));
    let errors = Arc::new(AtomicUsize::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let started = Instant::now();
    let deadline = common
        .duration_secs
        .map(|s| started + Duration::from_secs(s));
    match common.rate {
        None => {
            let next = Arc::new(AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for _ in 0..common.concurrency {
                let (op, next, total) = (op.clone(), next.clone(), common.total);
                let (latencies, errors, first_error) =
                    (latencies.clone(), errors.clone(), first_error.clone());
                tasks.push(tokio::spawn(async move {
                    while deadline.is_none_or(|d| Instant::now() < d)
                        && next.fetch_add(1, Ordering::SeqCst) < total
                    {
                        record(op().await, &latencies, &errors, &first_error).await;
                    }
                }));
            }
            for t in tasks {
                t.await?;
            }
        }
        Some(rate) => {
            let permits = Arc::new(tokio::sync::Semaphore::new(common.concurrency));
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut handles = Vec::with_capacity(common.total.min(1 << 20));
            for _ in 0..common.total {
                tick.tick().await;
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let permit = permits.clone().acquire_owned().await?;
                let op = op.clone();
                let (latencies, errors, first_error) =
                    (latencies.clone(), errors.clone(), first_error.clone());
                handles.push(tokio::spawn(async move {
                    record(op().await, &latencies, &errors, &first_error).await;
                    drop(permit);
                }));
            }
            for h in handles {
                h.await?;
            }
        }
    }
    let elapsed = started.elapsed();
    let cpu_after = cpu::snapshot(&procs);
    let own = cpu::process_cpu_secs(std::process::id()).unwrap_or(0.0) - own_before;

    let mut samples = latencies.lock().await.clone();
    let ok = samples.len();
    let errors = errors.load(Ordering::SeqCst);
    println!(
        "{label}: {ok} ok, {errors} errors in {:.2} s",
        elapsed.as_secs_f64()
    );
    println!(
        "  throughput: {:.0} /s{}",
        ok as f64 / elapsed.as_secs_f64(),
        common
            .rate
            .map(|r| format!(" (offered {r:.0} /s)"))
            .unwrap_or_default()
    );
    let percentiles = stats::percentiles(&mut samples);
    if let Some(p) = percentiles {
        println!(
            "  latency: p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            stats::ms(p.p50),
            stats::ms(p.p95),
            stats::ms(p.p99),
            stats::ms(p.max)
        );
    }
    let mut app_cpu = 0.0;
    for (name, before) in &cpu_before {
        let used = cpu_after.get(name).copied().unwrap_or(*before) - before;
        if name.starts_with("llmops") {
            app_cpu += used;
        }
        println!(
            "  cpu {name:<14} {used:>7.2} s  ({:.3} ms per op, {} process(es))",
            used * 1e3 / ok.max(1) as f64,
            procs.get(name).map_or(0, Vec::len)
        );
    }
    let total_cpu: f64 = cpu_after.values().sum::<f64>() - cpu_before.values().sum::<f64>();
    println!(
        "  cpu per op: llmops {:.3} ms, with datastores {:.3} ms",
        app_cpu * 1e3 / ok.max(1) as f64,
        total_cpu * 1e3 / ok.max(1) as f64
    );
    println!(
        "  cpu of this load generator (and its mock LLM): {own:.2} s ({:.3} ms per op)",
        own * 1e3 / ok.max(1) as f64
    );
    if let Some(e) = first_error.lock().await.as_ref() {
        println!("  first error: {e}");
    }
    Ok(percentiles)
}

async fn record(
    outcome: anyhow::Result<Duration>,
    latencies: &Mutex<Vec<Duration>>,
    errors: &AtomicUsize,
    first_error: &Mutex<Option<String>>,
) {
    match outcome {
        Ok(d) => latencies.lock().await.push(d),
        Err(e) => {
            errors.fetch_add(1, Ordering::SeqCst);
            first_error
                .lock()
                .await
                .get_or_insert_with(|| format!("{e:#}"));
        }
    }
}
