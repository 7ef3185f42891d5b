//! The OpenAI-compatible client against the loopback mock: plain and streamed completions,
//! retries, timeouts, and closing a stream by dropping it.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use shared::llm::{ChatChunk, LlmClient, LlmError, Usage};
use support::*;

fn client() -> LlmClient {
    LlmClient::new(reqwest::Client::new()).with_retry(3, Duration::from_millis(10))
}

fn body(model: &str) -> serde_json::Value {
    json!({
        "model": model,
        "temperature": 0.7,
        "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hello"}]
    })
}

#[tokio::test]
async fn chat_returns_the_content_and_usage() {
    let llm = MockLlm::start().await;
    let completion = client()
        .chat(&llm.api_host(), "sk-test", body("m"))
        .await
        .unwrap();
    assert_eq!(
        completion.content,
        mock_sentence("m", "0.7", "sys", "hello")
    );
    assert_eq!(
        completion.usage,
        Some(Usage {
            prompt_tokens: 10,
            completion_tokens: 20,
            total_tokens: 30
        })
    );
}

#[tokio::test]
async fn chat_retries_503_answers_up_to_three_attempts() {
    let llm = MockLlm::start().await;
    let completion = client()
        .chat(&llm.api_host(), "k", body("flaky-2"))
        .await
        .unwrap();
    assert!(completion.content.contains("flaky-2"));
    assert_eq!(llm.stats.requests.load(Ordering::SeqCst), 3);

    let llm = MockLlm::start().await;
    let error = client()
        .chat(&llm.api_host(), "k", body("flaky-5"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, LlmError::Status { status: 503, .. }),
        "{error:?}"
    );
    assert_eq!(llm.stats.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn chat_does_not_retry_client_errors() {
    let llm = MockLlm::start().await;
    let error = client()
        .chat(&llm.api_host(), "k", body("status-400"))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        LlmError::Status {
            status: 400,
            message: "mock status 400".into()
        }
    );
    assert_eq!(llm.stats.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn chat_retries_429_answers() {
    let llm = MockLlm::start().await;
    let error = client()
        .chat(&llm.api_host(), "k", body("status-429"))
        .await
        .unwrap_err();
    assert!(matches!(error, LlmError::Status { status: 429, .. }));
    assert_eq!(llm.stats.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn chat_gives_up_after_its_timeout() {
    let llm = MockLlm::start().await;
    let started = Instant::now();
    let error = client()
        .with_timeout(Duration::from_millis(200))
        .chat(&llm.api_host(), "k", body("slow"))
        .await
        .unwrap_err();
    assert_eq!(error, LlmError::Timeout(Duration::from_millis(200)));
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn chat_reports_connect_errors_after_retrying() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let error = client()
        .chat(&format!("http://127.0.0.1:{port}/v1"), "k", body("m"))
        .await
        .unwrap_err();
    assert!(matches!(error, LlmError::Connect { .. }), "{error:?}");
}

#[tokio::test]
async fn chat_stream_yields_deltas_then_usage() {
    let llm = MockLlm::start().await;
    let mut stream = client()
        .chat_stream(&llm.api_host(), "k", body("m"))
        .await
        .unwrap();
    let mut text = String::new();
    let mut usage = None;
    while let Some(chunk) = stream.next().await {
        match chunk.unwrap() {
            ChatChunk::Delta(delta) => text.push_str(&delta),
            ChatChunk::Usage(u) => usage = Some(u),
        }
    }
    assert_eq!(text, mock_sentence("m", "0.7", "sys", "hello"));
    assert_eq!(usage.map(|u| u.total_tokens), Some(30));
    assert_eq!(llm.stats.finished.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn dropping_a_stream_mid_way_closes_the_connection() {
    let llm = MockLlm::start().await;
    let mut stream = client()
        .chat_stream(&llm.api_host(), "k", body("slow-stream"))
        .await
        .unwrap();
    for _ in 0..3 {
        assert!(matches!(stream.next().await, Some(Ok(ChatChunk::Delta(_)))));
    }
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(2);
    while !llm.stats.stream_dropped.load(Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the server kept streaming");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(llm.stats.finished.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn chat_stream_reports_error_statuses_before_streaming() {
    let llm = MockLlm::start().await;
    let error = client()
        .chat_stream(&llm.api_host(), "k", body("status-401"))
        .await
        .err()
        .unwrap();
    assert!(matches!(error, LlmError::Status { status: 401, .. }));
}

#[tokio::test]
async fn a_stream_may_outlast_the_timeout_while_events_keep_coming() {
    let llm = MockLlm::start().await;
    let mut stream = client()
        .with_timeout(Duration::from_millis(200))
        .chat_stream(&llm.api_host(), "k", body("slow-stream-25"))
        .await
        .unwrap();
    let started = Instant::now();
    let mut deltas = 0;
    while let Some(chunk) = stream.next().await {
        if let ChatChunk::Delta(_) = chunk.unwrap() {
            deltas += 1;
        }
    }
    assert_eq!(deltas, 25);
    assert!(started.elapsed() > Duration::from_millis(400));
}

#[tokio::test]
async fn a_stalled_stream_times_out_between_events() {
    let llm = MockLlm::start().await;
    let mut stream = client()
        .with_timeout(Duration::from_millis(200))
        .chat_stream(&llm.api_host(), "k", body("stall-stream"))
        .await
        .unwrap();
    let mut last = None;
    while let Some(chunk) = stream.next().await {
        last = Some(chunk);
    }
    assert_eq!(
        last,
        Some(Err(LlmError::Timeout(Duration::from_millis(200))))
    );
}
