//! `llmops-loadgen chat`: debug chats (or, with `--service`, service API chats of the app,
//! published, with an app key) against a running server, and the provider alone for
//! comparison.
//!
//! It signs up (unless `--token` is given), creates an app, configures it, then runs N debug
//! chats (`-n`, or for `--duration-secs`) at concurrency `-c`. With `--mock-llm` it first
//! starts the mock LLM on `--mock-port`, where the server's `LLMOPS_LLM_BASE_URL` must point
//! (`http://127.0.0.1:PORT/v1`), and, unless `--no-baseline`, measures the mock alone at the
//! same concurrency before the chats, then prints the debug chat's p50 and p99 over it.
//!
//!   LLMOPS_LLM_BASE_URL=http://127.0.0.1:4100/v1 llmops-api &
//!   llmops-loadgen chat --mock-llm --mock-port 4100 -c 1 -n 2000

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Args;
use loadgen::{mock_llm::MockLlm, stats};
use serde_json::{Value, json};

use crate::{Common, drive};

#[derive(Args, Clone)]
pub struct ChatArgs {
    #[command(flatten)]
    pub common: Common,
    /// Port for the mock LLM (with `--mock-llm`); the server must use
    /// `LLMOPS_LLM_BASE_URL=http://127.0.0.1:PORT/v1`.
    #[arg(long, default_value_t = 4100)]
    pub mock_port: u16,
    /// Skip measuring the provider alone.
    #[arg(long)]
    pub no_baseline: bool,
    /// Stream each answer (`Accept: text/event-stream`) instead of the blocking call.
    #[arg(long)]
    pub stream: bool,
    /// The app's `dialog_round`.
    #[arg(long, default_value_t = 3)]
    pub dialog_round: u32,
    /// The app's `memory_mode` (`none` or `long_term_memory`, which adds a summarising call).
    #[arg(long, default_value = "none")]
    pub memory_mode: String,
    /// Chat through the service API instead (`POST /v1/chat-messages` with an app key, the
    /// app published first; each call starts a conversation of its own). The server should
    /// run with `LLMOPS_SERVICE_RATE_LIMIT=0`.
    #[arg(long)]
    pub service: bool,
}

/// Checks an envelope answer and returns its `data`.
async fn envelope(response: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .with_context(|| format!("{what}: not JSON"))?;
    if !status.is_success() || body["code"] != "success" {
        bail!("{what} answered {status}: {body}");
    }
    Ok(body["data"].clone())
}

/// A fresh account's access token.
async fn sign_up(client: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let email = format!("loadgen-{}@example.com", uuid::Uuid::new_v4().simple());
    let creds = json!({"email": email, "password": "loadgen-passw0rd"});
    let r = client
        .post(format!("{url}/api/auth/register"))
        .json(&creds)
        .send()
        .await?;
    envelope(r, "register").await?;
    let r = client
        .post(format!("{url}/api/auth/password-login"))
        .json(&creds)
        .send()
        .await?;
    let data = envelope(r, "login").await?;
    Ok(data["access_token"]
        .as_str()
        .context("no access_token")?
        .to_owned())
}

/// One streamed completion from the provider, read to the end.
async fn provider_call(
    client: &reqwest::Client,
    base_url: &str,
    body: &Value,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let r = client
        .post(format!("{base_url}/chat/completions"))
        .json(body)
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("provider answered {}", r.status());
    }
    let text = r.text().await?;
    if !text.contains("[DONE]") {
        bail!("provider stream ended early");
    }
    Ok(start.elapsed())
}

/// One debug chat, end to end.
async fn debug_call(
    client: &reqwest::Client,
    endpoint: &str,
    token: &str,
    stream: bool,
    n: usize,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut req = client
        .post(endpoint)
        .bearer_auth(token)
        .json(&json!({"query": format!("question {n}: what is the answer?")}));
    if stream {
        req = req.header("accept", "text/event-stream");
    }
    let r = req.send().await?;
    if stream {
        if !r.status().is_success() {
            bail!("debug answered {}", r.status());
        }
        let text = r.text().await?;
        if !text.contains("event: message_end") {
            bail!(
                "stream ended without message_end: {}",
                text.lines().last().unwrap_or_default()
            );
        }
    } else {
        let data = envelope(r, "debug").await?;
        if data["status"] != "normal" {
            bail!("debug answered a message with status {}", data["status"]);
        }
    }
    Ok(start.elapsed())
}

/// One service API chat, end to end.
async fn service_call(
    client: &reqwest::Client,
    endpoint: &str,
    key: &str,
    stream: bool,
    n: usize,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mode = if stream { "streaming" } else { "blocking" };
    let r = client
        .post(endpoint)
        .bearer_auth(key)
        .json(
            &json!({"query": format!("question {n}: what is the answer?"),
                      "user": format!("loadgen-{}", n % 50), "response_mode": mode}),
        )
        .send()
        .await?;
    let status = r.status();
    let text = r.text().await?;
    if !status.is_success() {
        bail!("service chat answered {status}: {text}");
    }
    let ended = if stream {
        text.contains("\"message_end\"")
    } else {
        text.contains("\"answer\"")
    };
    if !ended {
        bail!(
            "service chat ended without an answer: {}",
            text.lines().last().unwrap_or_default()
        );
    }
    Ok(start.elapsed())
}

/// Publishes the app and creates an app key for it.
async fn publish_with_key(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    app_id: &str,
) -> anyhow::Result<String> {
    let r = client
        .post(format!("{url}/api/apps/{app_id}/publish"))
        .bearer_auth(token)
        .send()
        .await?;
    envelope(r, "publish app").await?;
    let r = client
        .post(format!("{url}/api/apps/{app_id}/api-keys"))
        .bearer_auth(token)
        .send()
        .await?;
    Ok(envelope(r, "create app key").await?["key"]
        .as_str()
        .context("no key")?
        .to_owned())
}

pub async fn chat(args: ChatArgs) -> anyhow::Result<()> {
    let common = args.common.clone();
    let url = common.url.trim_end_matches('/').to_owned();
    let mock = if common.mock_llm {
        let mock = MockLlm::start_on(args.mock_port)
            .await
            .with_context(|| format!("cannot start the mock LLM on port {}", args.mock_port))?;
        mock.set_latency(Duration::from_millis(common.mock_latency_ms));
        println!(
            "mock LLM at {} (the server's LLMOPS_LLM_BASE_URL)",
            mock.base_url
        );
        Some(mock)
    } else {
        None
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(common.concurrency * 2)
        .timeout(Duration::from_secs(60))
        .build()?;

    let token = match &common.token {
        Some(token) => token.clone(),
        None => sign_up(&client, &url).await?,
    };
    let r = client
        .post(format!("{url}/api/apps"))
        .bearer_auth(&token)
        .json(&json!({"name": "loadgen", "icon": "https://example.com/icon.png"}))
        .send()
        .await?;
    let app_id = envelope(r, "create app").await?["id"]
        .as_str()
        .context("no app id")?
        .to_owned();
    let r = client
        .put(format!("{url}/api/apps/{app_id}/config"))
        .bearer_auth(&token)
        .json(&json!({"model_config": {"dialog_round": args.dialog_round, "preset_prompt": "You are a load test."},
                      "memory_mode": args.memory_mode}))
        .send()
        .await?;
    envelope(r, "configure app").await?;
    println!(
        "app {app_id}: dialog_round {}, memory_mode {}, {}",
        args.dialog_round,
        args.memory_mode,
        if args.stream { "streamed" } else { "blocking" }
    );

    let baseline = match &mock {
        Some(mock) if !args.no_baseline => {
            let body = Arc::new(json!({
                "model": "loadgen", "stream": true, "stream_options": {"include_usage": true},
                "messages": [{"role": "system", "content": "You are a load test."},
                             {"role": "user", "content": "question 0: what is the answer?"}],
            }));
            let (client, base_url) = (client.clone(), mock.base_url.clone());
            let op = move || {
                let (client, base_url, body) = (client.clone(), base_url.clone(), body.clone());
                async move { provider_call(&client, &base_url, &body).await }
            };
            drive("provider alone (mock LLM, streamed)", &common, op).await?
        }
        _ => None,
    };

    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stream = args.stream;
    let (label, chats) = if args.service {
        let key = Arc::new(publish_with_key(&client, &url, &token, &app_id).await?);
        let endpoint = Arc::new(format!("{url}/v1/chat-messages"));
        let op = move || {
            let (client, endpoint, key) = (client.clone(), endpoint.clone(), key.clone());
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move { service_call(&client, &endpoint, &key, stream, n).await }
        };
        ("service chat", drive("service chats", &common, op).await?)
    } else {
        let endpoint = Arc::new(format!("{url}/api/apps/{app_id}/debug"));
        let token = Arc::new(token);
        let op = move || {
            let (client, endpoint, token) = (client.clone(), endpoint.clone(), token.clone());
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move { debug_call(&client, &endpoint, &token, stream, n).await }
        };
        ("debug chat", drive("debug chats", &common, op).await?)
    };
    if let (Some(base), Some(chats)) = (baseline, chats) {
        println!(
            "{label} over the provider alone: p50 +{:.2} ms, p95 +{:.2} ms, p99 +{:.2} ms",
            stats::ms(chats.p50) - stats::ms(base.p50),
            stats::ms(chats.p95) - stats::ms(base.p95),
            stats::ms(chats.p99) - stats::ms(base.p99),
        );
    }
    Ok(())
}
