//! `llmops-loadgen reports`: what many FlowGram editors polling one running task's report cost
//! the server. Starts one long run of `--nodes` nodes (start, a chain of llm nodes the mock holds
//! for `--mock-latency-ms` each, end), then `--pollers` clients each ask for its report every
//! `--interval-ms` for `--secs`, and prints the server processes' CPU over that window as a
//! share of one core, with the requests' latency.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use loadgen::{cpu, mock_llm::MockLlm, stats};

#[derive(Args, Clone)]
pub struct ReportsArgs {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:4000")]
    pub url: String,
    /// Clients polling the report.
    #[arg(long, default_value_t = 1000)]
    pub pollers: usize,
    /// Each client's period between two requests.
    #[arg(long, default_value_t = 500)]
    pub interval_ms: u64,
    /// How long the clients poll.
    #[arg(long, default_value_t = 20)]
    pub secs: u64,
    /// Nodes in the run (start, llm nodes, end).
    #[arg(long, default_value_t = 50)]
    pub nodes: usize,
    /// How long the mock holds each llm node's call.
    #[arg(long, default_value_t = 1000)]
    pub mock_latency_ms: u64,
    /// Process names whose CPU time is reported (comma separated).
    #[arg(long, default_value = "llmops-api,llmops-worker,postgres,redis-server")]
    pub cpu_of: String,
    /// Ask for gzip-compressed reports (`Accept-Encoding: gzip`), as the editor's browser does.
    #[arg(long)]
    pub gzip: bool,
}

/// A chain: start → llm_1 → … → llm_{n-2} → end, built from the start → llm → end schema.
fn chain_schema(nodes: usize, mock_url: &str) -> anyhow::Result<String> {
    let base: Value = serde_json::from_str(include_str!("../schemas/start-llm-end.json"))?;
    let (start, llm, end) = (&base["nodes"][0], &base["nodes"][1], &base["nodes"][2]);
    let llms = nodes.saturating_sub(2).max(1);
    let mut all = vec![start.clone()];
    let mut edges = Vec::new();
    let mut previous = "start_0".to_owned();
    for i in 1..=llms {
        let id = format!("llm_{i}");
        let mut node = llm.clone();
        node["id"] = json!(id);
        all.push(node);
        edges.push(json!({"sourceNodeID": previous, "targetNodeID": id}));
        previous = id;
    }
    let mut end = end.clone();
    end["data"]["inputsValues"]["answer"]["content"][0] = json!(previous);
    all.push(end);
    edges.push(json!({"sourceNodeID": previous, "targetNodeID": "end_0"}));
    Ok(
        serde_json::to_string(&json!({"nodes": all, "edges": edges}))?
            .replace("{{MOCK_LLM}}", mock_url),
    )
}

pub async fn reports(args: ReportsArgs) -> anyhow::Result<()> {
    let mock = MockLlm::start().await;
    mock.set_latency(Duration::from_millis(args.mock_latency_ms));
    let schema = chain_schema(args.nodes, &mock.base_url)?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.pollers)
        .build()?;
    let url = args.url.trim_end_matches('/').to_owned();
    let run: Value = client
        .post(format!("{url}/api/task/run"))
        .json(&json!({"schema": schema, "inputs": {"prompt": "Say hi"}}))
        .send()
        .await?
        .json()
        .await?;
    let id = run["taskID"].as_str().context("no taskID")?.to_owned();
    let report_url: reqwest::Url = format!("{url}/api/task/report?taskID={id}").parse()?;
    // Let the run start and every poller connect before the window opens.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let names: Vec<&str> = args.cpu_of.split(',').map(str::trim).collect();
    let groups = cpu::find_processes(&names);
    let interval = Duration::from_millis(args.interval_ms);
    let samples = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let warm_until = Instant::now() + interval;
    let end = warm_until + Duration::from_secs(args.secs);
    let mut pollers = Vec::with_capacity(args.pollers);
    for i in 0..args.pollers {
        let (client, report_url) = (client.clone(), report_url.clone());
        let (samples, errors, gzip) = (samples.clone(), errors.clone(), args.gzip);
        // Spread over one period, as independent editors would be.
        let offset = interval.mul_f64(i as f64 / args.pollers as f64);
        pollers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
            let mut mine = Vec::new();
            loop {
                tick.tick().await;
                if Instant::now() >= end {
                    break;
                }
                let sent = Instant::now();
                let mut request = client.get(report_url.clone());
                if gzip {
                    request = request.header(reqwest::header::ACCEPT_ENCODING, "gzip");
                }
                let ok = match request.send().await {
                    Ok(r) if r.status().is_success() && gzip => {
                        let compressed = r
                            .headers()
                            .get(reqwest::header::CONTENT_ENCODING)
                            .is_some_and(|v| v == "gzip");
                        compressed && r.bytes().await.is_ok_and(|b| !b.is_empty())
                    }
                    Ok(r) if r.status().is_success() => r
                        .json::<Value>()
                        .await
                        .is_ok_and(|v| v["reports"].is_object()),
                    _ => false,
                };
                if !ok {
                    errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else if sent >= warm_until {
                    mine.push(sent.elapsed());
                }
            }
            samples.lock().await.extend(mine);
        }));
    }
    tokio::time::sleep_until(warm_until.into()).await;
    let before = cpu::snapshot(&groups);
    let window = Instant::now();
    tokio::time::sleep_until(end.into()).await;
    let after = cpu::snapshot(&groups);
    let elapsed = window.elapsed().as_secs_f64();
    for p in pollers {
        p.await?;
    }
    let report: Value = client.get(report_url).send().await?.json().await?;
    let status = report["workflowStatus"]["status"]
        .as_str()
        .unwrap_or("?")
        .to_owned();
    let nodes_reported = report["reports"].as_object().map_or(0, |r| r.len());
    let mut samples = std::mem::take(&mut *samples.lock().await);
    let requests = samples.len();
    let p = stats::percentiles(&mut samples).unwrap_or(stats::Percentiles {
        p50: Duration::ZERO,
        p95: Duration::ZERO,
        p99: Duration::ZERO,
        max: Duration::ZERO,
    });
    println!(
        "report pollers: {} clients every {} ms on a {}-node run ({} nodes reported, still {status}), {:.1} s",
        args.pollers, args.interval_ms, args.nodes, nodes_reported, elapsed
    );
    println!(
        "  {requests} requests ({:.0}/s), {} errors; latency p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        requests as f64 / elapsed,
        errors.load(std::sync::atomic::Ordering::Relaxed),
        stats::ms(p.p50),
        stats::ms(p.p95),
        stats::ms(p.p99),
        stats::ms(p.max)
    );
    let mut total = 0.0;
    for (name, secs) in &after {
        let used = secs - before.get(name).copied().unwrap_or(0.0);
        total += used;
        println!(
            "  cpu {name:<16} {:.2} % of one core",
            used / elapsed * 100.0
        );
    }
    let answered = requests + errors.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "server cpu while polling: {:.2} % of one core ({:.1} µs per request)",
        total / elapsed * 100.0,
        total / answered.max(1) as f64 * 1e6
    );
    if requests == 0 {
        bail!("no report request succeeded");
    }
    Ok(())
}
