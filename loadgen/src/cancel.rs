//! `llmops-loadgen cancel`: how long a running workflow takes to become `canceled`.
//!
//! Each sample starts a run whose LLM call the mock holds for `--mock-latency-ms`, waits until
//! the mock has the request (the run is in the middle of its LLM node), sends
//! `PUT /api/task/cancel`, and stops the clock when `GET /api/task/result?wait=…` returns
//! (the server answers it on the worker's completion signal, after the `canceled` state is stored).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};

use loadgen::{mock_llm::MockLlm, stats};

#[derive(Args, Clone)]
pub struct CancelArgs {
    /// Server base URL.
    #[arg(long, default_value = "http://127.0.0.1:4000")]
    pub url: String,
    /// Samples.
    #[arg(short = 'n', long, default_value_t = 200)]
    pub total: usize,
    /// Workflow schema file; `{{MOCK_LLM}}` becomes the mock's URL.
    #[arg(long)]
    pub schema: std::path::PathBuf,
    /// Start inputs (JSON object).
    #[arg(long, default_value = r#"{"prompt":"Say hi"}"#)]
    pub inputs: String,
    /// How long the mock holds each LLM call (the run is canceled inside it).
    #[arg(long, default_value_t = 5000)]
    pub mock_latency_ms: u64,
}

pub async fn cancel(args: CancelArgs) -> anyhow::Result<()> {
    let mock = MockLlm::start().await;
    mock.set_latency(Duration::from_millis(args.mock_latency_ms));
    let schema = std::fs::read_to_string(&args.schema)
        .with_context(|| format!("reading {}", args.schema.display()))?
        .replace("{{MOCK_LLM}}", &mock.base_url);
    let inputs: Value = serde_json::from_str(&args.inputs).context("--inputs is not JSON")?;
    let body = json!({"schema": schema, "inputs": inputs});
    let client = reqwest::Client::new();
    let url = &args.url;
    let mut samples = Vec::with_capacity(args.total);
    for _ in 0..args.total {
        let seen = mock.requests().len();
        let r: Value = client
            .post(format!("{url}/api/task/run"))
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        let id = r["taskID"].as_str().context("no taskID")?.to_owned();
        let deadline = Instant::now() + Duration::from_secs(10);
        while mock.requests().len() == seen {
            if Instant::now() > deadline {
                bail!("run {id} never reached its LLM node");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let waiter = {
            let (client, url, id) = (client.clone(), url.clone(), id.clone());
            tokio::spawn(async move {
                client
                    .get(format!("{url}/api/task/result?taskID={id}&wait=30000"))
                    .send()
                    .await
            })
        };
        // Let the waiting request reach the server before the clock starts.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let asked = Instant::now();
        let r: Value = client
            .put(format!("{url}/api/task/cancel"))
            .json(&json!({"taskID": id}))
            .send()
            .await?
            .json()
            .await?;
        if r["success"] != true {
            bail!("cancel of {id} answered {r}");
        }
        waiter.await??;
        samples.push(asked.elapsed());
        let report: Value = client
            .get(format!("{url}/api/task/report?taskID={id}"))
            .send()
            .await?
            .json()
            .await?;
        if report["workflowStatus"]["status"] != "canceled" {
            bail!("run {id} ended {}", report["workflowStatus"]["status"]);
        }
    }
    let p = stats::percentiles(&mut samples).context("no samples")?;
    println!(
        "cancel → canceled: n={}  p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (provider connections closed: {})",
        args.total,
        stats::ms(p.p50),
        stats::ms(p.p95),
        stats::ms(p.p99),
        stats::ms(p.max),
        mock.dropped()
    );
    Ok(())
}
