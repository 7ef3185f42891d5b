//! `llmops-loadgen streams`: what the task stream costs the server.
//!
//! `--phase cost` alternates rounds of N runs without a subscriber (submit, then wait for the
//! result) and N runs streamed (`POST /api/task/run` with `Accept: text/event-stream`, read to
//! the end), and prints the server CPU of each and the extra CPU per event delivered.
//! `--phase hold` submits S runs with their streams (`Accept: text/event-stream`) whose LLM
//! call the mock holds, and prints the api process's memory, its CPU while the streams wait,
//! and its CPU while the runs progress (tokens, node events) to their end.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use futures::StreamExt;
use serde_json::{Value, json};

use loadgen::{cpu, mock_llm::MockLlm};

#[derive(Clone, Copy, ValueEnum)]
pub enum Phase {
    Cost,
    Hold,
}

#[derive(Args, Clone)]
pub struct StreamsArgs {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:4000")]
    pub url: String,
    #[arg(long, value_enum, default_value = "cost")]
    pub phase: Phase,
    /// Workflow schema file; `{{MOCK_LLM}}` becomes the mock's URL.
    #[arg(long)]
    pub schema: std::path::PathBuf,
    /// Start inputs (JSON object).
    #[arg(
        long,
        default_value = r#"{"prompt":"Say hi to everyone in the room, one word at a time"}"#
    )]
    pub inputs: String,
    /// cost: runs per round and kind.
    #[arg(short = 'n', long, default_value_t = 500)]
    pub total: usize,
    /// cost: runs in flight at once.
    #[arg(short = 'c', long, default_value_t = 32)]
    pub concurrency: usize,
    /// cost: rounds (each: without subscribers, then streamed).
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// hold: open streams (one run each).
    #[arg(long, default_value_t = 1000)]
    pub streams: usize,
    /// hold: streams per run (the first submits the run, the others follow it).
    #[arg(long, default_value_t = 1)]
    pub per_run: usize,
    /// hold: how long the mock holds each LLM call.
    #[arg(long, default_value_t = 10_000)]
    pub mock_latency_ms: u64,
    /// hold: how long the idle CPU is measured (inside the held calls).
    #[arg(long, default_value_t = 5)]
    pub idle_secs: u64,
    /// Delay between the mock's streamed chunks (one word each).
    #[arg(long, default_value_t = 0)]
    pub chunk_delay_ms: u64,
    /// Process names whose CPU time is reported (comma separated).
    #[arg(long, default_value = "llmops-api,llmops-worker,postgres,redis-server")]
    pub cpu_of: String,
}

pub async fn streams(args: StreamsArgs) -> anyhow::Result<()> {
    let mock = MockLlm::start().await;
    mock.forget_requests();
    mock.set_chunk_delay(Duration::from_millis(args.chunk_delay_ms));
    let schema = std::fs::read_to_string(&args.schema)
        .with_context(|| format!("reading {}", args.schema.display()))?
        .replace("{{MOCK_LLM}}", &mock.base_url);
    let inputs: Value = serde_json::from_str(&args.inputs).context("--inputs is not JSON")?;
    let body: bytes::Bytes =
        serde_json::to_vec(&json!({"schema": schema, "inputs": inputs}))?.into();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.streams.max(args.concurrency) * 2)
        .build()?;
    let names: Vec<&str> = args.cpu_of.split(',').map(str::trim).collect();
    let procs = cpu::find_processes(&names);
    let target = Target {
        client,
        url: args.url.clone(),
        body,
    };
    match args.phase {
        Phase::Cost => cost(&args, &target, &procs).await,
        Phase::Hold => {
            mock.set_latency(Duration::from_millis(args.mock_latency_ms));
            hold(&args, &target, &procs).await
        }
    }
}

struct Target {
    client: reqwest::Client,
    url: String,
    body: bytes::Bytes,
}

impl Target {
    /// Submits a run; answers its task id.
    async fn submit(&self) -> anyhow::Result<String> {
        let r: Value = self
            .client
            .post(format!("{}/api/task/run", self.url))
            .header("content-type", "application/json")
            .body(self.body.clone())
            .send()
            .await?
            .json()
            .await?;
        Ok(r["taskID"].as_str().context("no taskID")?.to_owned())
    }

    /// A run without subscribers: submit, wait for the result.
    async fn plain(&self) -> anyhow::Result<usize> {
        let id = self.submit().await?;
        let result: Value = self
            .client
            .get(format!(
                "{}/api/task/result?taskID={id}&wait=30000",
                self.url
            ))
            .send()
            .await?
            .json()
            .await?;
        if result.is_null() {
            bail!("run {id} did not finish");
        }
        Ok(0)
    }

    /// A streamed run: submit with `Accept: text/event-stream`, read to the end; answers
    /// the events received.
    async fn streamed(&self) -> anyhow::Result<usize> {
        read_events(self.open_run().await?).await
    }

    /// Opens another stream of a run.
    async fn open(&self, id: &str) -> anyhow::Result<reqwest::Response> {
        let r = self
            .client
            .get(format!("{}/api/task/stream?taskID={id}", self.url))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("stream answered {}", r.status());
        }
        Ok(r)
    }

    /// Submits a run with its stream; answers the open stream.
    async fn open_run(&self) -> anyhow::Result<reqwest::Response> {
        let r = self
            .client
            .post(format!("{}/api/task/run", self.url))
            .header("content-type", "application/json")
            .header("accept", "text/event-stream")
            .body(self.body.clone())
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("stream answered {}", r.status());
        }
        Ok(r)
    }
}

/// Reads an event stream to its end; answers how many events (`id:` lines) it carried and
/// fails unless the last was `workflow_finished`.
async fn read_events(response: reqwest::Response) -> anyhow::Result<usize> {
    EventReader::new(response).read_to_end().await
}

/// The task id of a streamed run (in its first event's data), and the rest of its stream.
async fn first_event(response: reqwest::Response) -> anyhow::Result<(String, EventReader)> {
    let mut reader = EventReader::new(response);
    while reader.task_id.is_none() {
        if !reader.step().await? {
            bail!("the stream ended before its first event");
        }
    }
    let id = reader
        .task_id
        .clone()
        .context("no taskID in the first event")?;
    Ok((id, reader))
}

/// An event stream read line by line, counting events.
struct EventReader {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    tail: String,
    events: usize,
    last_name: String,
    task_id: Option<String>,
}

impl EventReader {
    fn new(response: reqwest::Response) -> Self {
        EventReader {
            body: response.bytes_stream().boxed(),
            tail: String::new(),
            events: 0,
            last_name: String::new(),
            task_id: None,
        }
    }

    /// Reads one chunk and the lines it completes; `false` at the end of the stream.
    async fn step(&mut self) -> anyhow::Result<bool> {
        let Some(chunk) = self.body.next().await else {
            return Ok(false);
        };
        self.tail.push_str(&String::from_utf8_lossy(&chunk?));
        while let Some(end) = self.tail.find('\n') {
            let line: String = self.tail.drain(..=end).collect();
            if line.starts_with("id:") {
                self.events += 1;
            } else if let Some(name) = line.strip_prefix("event:") {
                self.last_name = name.trim().to_owned();
            } else if let Some(data) = line.strip_prefix("data:")
                && self.task_id.is_none()
            {
                let data: Value = serde_json::from_str(data.trim()).unwrap_or_default();
                self.task_id = data["taskID"].as_str().map(str::to_owned);
            }
        }
        Ok(true)
    }

    async fn read_to_end(mut self) -> anyhow::Result<usize> {
        while self.step().await? {}
        if self.last_name != "workflow_finished" {
            bail!(
                "the stream ended after {} events without workflow_finished",
                self.events
            );
        }
        Ok(self.events)
    }
}

/// Runs `op` `total` times, `concurrency` at once; answers (seconds, sum of its counts).
async fn batch<F, Fut>(total: usize, concurrency: usize, op: F) -> anyhow::Result<(f64, usize)>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<usize>>,
{
    let started = Instant::now();
    let counts: Vec<anyhow::Result<usize>> = futures::stream::iter(0..total)
        .map(|_| op())
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let mut sum = 0;
    for count in counts {
        sum += count?;
    }
    Ok((started.elapsed().as_secs_f64(), sum))
}

fn server_cpu(procs: &std::collections::BTreeMap<String, Vec<u32>>) -> f64 {
    cpu::snapshot(procs).values().sum()
}

async fn cost(
    args: &StreamsArgs,
    target: &Target,
    procs: &std::collections::BTreeMap<String, Vec<u32>>,
) -> anyhow::Result<()> {
    // Warm-up: connections, caches.
    batch(100, args.concurrency, || target.plain()).await?;
    batch(100, args.concurrency, || target.streamed()).await?;
    for round in 1..=args.rounds {
        let before = server_cpu(procs);
        let (plain_secs, _) = batch(args.total, args.concurrency, || target.plain()).await?;
        let plain_cpu = server_cpu(procs) - before;
        let before = server_cpu(procs);
        let (streamed_secs, events) =
            batch(args.total, args.concurrency, || target.streamed()).await?;
        let streamed_cpu = server_cpu(procs) - before;
        let n = args.total as f64;
        println!(
            "round {round}: without subscribers {:.0} runs/s, server CPU {:.3} ms/run | streamed {:.0} runs/s, {:.3} ms/run, {:.1} events/run",
            n / plain_secs,
            plain_cpu * 1e3 / n,
            n / streamed_secs,
            streamed_cpu * 1e3 / n,
            events as f64 / n,
        );
        println!(
            "  extra server CPU per event delivered: {:.4} ms ({:.4} ms per event counting all of a streamed run's CPU)",
            (streamed_cpu - plain_cpu) * 1e3 / events.max(1) as f64,
            streamed_cpu * 1e3 / events.max(1) as f64,
        );
    }
    Ok(())
}

/// Resident memory of the first `llmops-api` process, in MiB.
fn api_rss_mib(procs: &std::collections::BTreeMap<String, Vec<u32>>) -> f64 {
    let Some(pid) = procs.get("llmops-api").and_then(|p| p.first()) else {
        return 0.0;
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn api_cpu(procs: &std::collections::BTreeMap<String, Vec<u32>>) -> f64 {
    procs
        .get("llmops-api")
        .into_iter()
        .flatten()
        .filter_map(|p| cpu::process_cpu_secs(*p))
        .sum()
}

async fn hold(
    args: &StreamsArgs,
    target: &Target,
    procs: &std::collections::BTreeMap<String, Vec<u32>>,
) -> anyhow::Result<()> {
    let rss_before = api_rss_mib(procs);
    let started = Instant::now();
    // Each run is submitted with its stream (`Accept: text/event-stream`), so its llm node
    // streams tokens; the streams are read in the background until their runs end.
    let opened = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::with_capacity(args.streams);
    let per_run = args.per_run.max(1);
    let runs = args.streams.div_ceil(per_run);
    for batch in 0..runs.div_ceil(100) {
        let size = (runs - batch * 100).min(100);
        let responses = futures::future::join_all((0..size).map(|_| target.open_run())).await;
        for response in responses {
            opened.fetch_add(1, Ordering::SeqCst);
            if per_run == 1 {
                readers.push(tokio::spawn(read_events(response?)));
                continue;
            }
            let (id, first) = first_event(response?).await?;
            readers.push(tokio::spawn(first.read_to_end()));
            // More streams of the same run, opened while it waits for its LLM call.
            for _ in 1..per_run {
                let more = target.open(&id).await?;
                opened.fetch_add(1, Ordering::SeqCst);
                readers.push(tokio::spawn(read_events(more)));
            }
        }
    }
    let open_secs = started.elapsed().as_secs_f64();
    // Let the feeds and the listen announcements settle before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_open = api_rss_mib(procs);
    let (api0, all0) = (api_cpu(procs), server_cpu(procs));
    let idle = Duration::from_secs(args.idle_secs);
    tokio::time::sleep(idle).await;
    let (api1, all1) = (api_cpu(procs), server_cpu(procs));
    if started.elapsed() >= Duration::from_millis(args.mock_latency_ms) {
        println!(
            "warning: the held LLM calls ended inside the idle window; raise --mock-latency-ms"
        );
    }
    let progress = Instant::now();
    let mut events = 0;
    let mut failed = 0;
    for reader in readers {
        match reader.await? {
            Ok(n) => events += n,
            Err(_) => failed += 1,
        }
    }
    let progress_secs = progress.elapsed().as_secs_f64();
    let (api2, all2) = (api_cpu(procs), server_cpu(procs));
    let secs = idle.as_secs_f64();
    println!(
        "{} streams open in {open_secs:.1} s ({} failed at the end)",
        opened.load(Ordering::SeqCst),
        failed
    );
    println!(
        "  api RSS: {rss_before:.0} MiB before, {rss_open:.0} MiB with the streams open ({:.1} KiB per stream)",
        (rss_open - rss_before) * 1024.0 / args.streams.max(1) as f64
    );
    println!(
        "  idle ({secs:.0} s, runs held in their LLM call): api {:.1} % of a core, all server processes {:.1} %",
        (api1 - api0) * 100.0 / secs,
        (all1 - all0) * 100.0 / secs
    );
    println!(
        "  progress ({progress_secs:.1} s to the last workflow_finished, {events} events): api {:.1} % of a core, {:.4} ms api CPU per event; all server processes {:.4} ms per event",
        (api2 - api1) * 100.0 / progress_secs,
        (api2 - api1) * 1e3 / events.max(1) as f64,
        (all2 - all1) * 1e3 / events.max(1) as f64,
    );
    Ok(())
}
