//! A small OpenAI-compatible chat client: `POST {base_url}/chat/completions`, plain or streamed.
//!
//! Requests and responses stay `serde_json::Value` so vendor extensions pass through untouched.
//! Connect errors, 429 and 5xx answers are retried with exponential backoff; every attempt has a
//! timeout. Dropping a stream closes its connection, which is how a chat is stopped.
//!
//! A client for URLs that users choose (the workflow llm node's `apiHost`) is built on the
//! egress policy's HTTP client and checks each URL before sending ([`LlmClient::with_egress_check`]),
//! exactly as the http node does; the operator's own provider (debug chats) is trusted.

use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::metrics as metrics_names;
use crate::workflow::egress::{self, EgressError};

/// Token counts the server reported.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}

/// The answer of a non-streaming call.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatCompletion {
    pub content: String,
    pub usage: Option<Usage>,
}

/// One item of a streamed answer.
#[derive(Clone, Debug, PartialEq)]
pub enum ChatChunk {
    /// A piece of the assistant's text.
    Delta(String),
    /// The final token counts (sent when `stream_options.include_usage` is on).
    Usage(Usage),
}

/// A streamed answer; drop it to abort the request.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, LlmError>> + Send>>;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    #[error("invalid LLM API URL \"{0}\"")]
    InvalidUrl(String),
    /// The host could not be reached (the OpenAI SDK's `Connection error.`).
    #[error("could not connect to \"{url}\": {reason}")]
    Connect { url: String, reason: String },
    #[error("LLM request timed out after {0:?}")]
    Timeout(Duration),
    #[error("LLM API answered HTTP {status}: {message}")]
    Status { status: u16, message: String },
    #[error("LLM response could not be read: {0}")]
    Decode(String),
    #[error("LLM request failed: {0}")]
    Request(String),
    /// The egress policy refused the destination (or a redirect to it).
    #[error("{0}")]
    Egress(EgressError),
}

impl LlmError {
    fn is_retryable(&self) -> bool {
        match self {
            LlmError::Connect { .. } => true,
            LlmError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// The client. Cheap to clone; share one `reqwest::Client` across the process.
#[derive(Clone, Debug)]
pub struct LlmClient {
    http: reqwest::Client,
    timeout: Duration,
    max_attempts: u32,
    backoff: Duration,
    /// Check each URL against the egress policy before sending.
    egress_check: bool,
    /// Drop NUL characters from the provider's text.
    strip_nul: bool,
}

impl LlmClient {
    /// Defaults: 120 s per attempt, 3 attempts, 500 ms first backoff.
    pub fn new(http: reqwest::Client) -> Self {
        LlmClient {
            http,
            timeout: Duration::from_secs(120),
            max_attempts: 3,
            backoff: Duration::from_millis(500),
            egress_check: false,
            strip_nul: false,
        }
    }

    /// Refuse loopback, private, link-local and metadata destinations before sending. IP
    /// literals never reach a resolver, so this check is what keeps them out; give the client
    /// [`egress::http_client`] too, which vets resolved addresses and every redirect.
    pub fn with_egress_check(mut self, on: bool) -> Self {
        self.egress_check = on;
        self
    }

    /// Drop NUL characters (U+0000) from answers: for text that is stored in text columns,
    /// which cannot hold them on Postgres.
    pub fn without_nul(mut self) -> Self {
        self.strip_nul = true;
        self
    }

    /// Timeout of one attempt (for a stream: until the response headers, then between events).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Attempts per call (at least one) and the first backoff, which doubles per retry.
    pub fn with_retry(mut self, max_attempts: u32, backoff: Duration) -> Self {
        self.max_attempts = max_attempts.max(1);
        self.backoff = backoff;
        self
    }

    /// A non-streaming chat completion. `body` is the OpenAI request (`model`, `messages`, ...).
    pub async fn chat(
        &self,
        base_url: &str,
        api_key: &str,
        body: Value,
    ) -> Result<ChatCompletion, LlmError> {
        let host = provider_host(base_url);
        let started = std::time::Instant::now();
        let result = self.chat_once(base_url, api_key, body).await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!(metrics_names::LLM_CALLS, "host" => host.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!(metrics_names::LLM_DURATION, "host" => host.clone())
            .record(started.elapsed().as_secs_f64());
        if let Ok(ChatCompletion {
            usage: Some(usage), ..
        }) = &result
        {
            record_tokens(&host, usage);
        }
        result
    }

    async fn chat_once(
        &self,
        base_url: &str,
        api_key: &str,
        body: Value,
    ) -> Result<ChatCompletion, LlmError> {
        let url = self.checked_url(base_url).await?;
        let response = self
            .send_with_retry(&url, api_key, &body, Some(self.timeout), |request| {
                let timeout = self.timeout;
                async move {
                    let response = request
                        .send()
                        .await
                        .map_err(|e| map_send_error(e, timeout))?;
                    let status = response.status();
                    let text = response
                        .text()
                        .await
                        .map_err(|e| map_send_error(e, timeout))?;
                    if !status.is_success() {
                        return Err(status_error(status.as_u16(), &text));
                    }
                    Ok(text)
                }
            })
            .await?;
        let mut completion = parse_completion(&response)?;
        if self.strip_nul {
            completion.content.retain(|c| c != '\0');
        }
        Ok(completion)
    }

    /// A streamed chat completion. `stream: true` and `stream_options.include_usage` are added to
    /// `body` unless already set.
    pub async fn chat_stream(
        &self,
        base_url: &str,
        api_key: &str,
        body: Value,
    ) -> Result<ChatStream, LlmError> {
        let host = provider_host(base_url);
        let started = std::time::Instant::now();
        let result = self.chat_stream_once(base_url, api_key, body).await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!(metrics_names::LLM_CALLS, "host" => host.clone(), "outcome" => outcome)
            .increment(1);
        let stream = result?;
        // Time to first token on the first delta; the token counts from the final usage chunk.
        let mut first = true;
        Ok(Box::pin(stream.inspect(move |chunk| match chunk {
            Ok(ChatChunk::Delta(_)) if first => {
                first = false;
                metrics::histogram!(metrics_names::LLM_FIRST_TOKEN, "host" => host.clone())
                    .record(started.elapsed().as_secs_f64());
            }
            Ok(ChatChunk::Usage(usage)) => record_tokens(&host, usage),
            _ => {}
        })))
    }

    async fn chat_stream_once(
        &self,
        base_url: &str,
        api_key: &str,
        mut body: Value,
    ) -> Result<ChatStream, LlmError> {
        let url = self.checked_url(base_url).await?;
        if let Some(object) = body.as_object_mut() {
            object.insert("stream".into(), Value::Bool(true));
            object
                .entry("stream_options")
                .or_insert_with(|| serde_json::json!({"include_usage": true}));
        }
        let timeout = self.timeout;
        let strip_nul = self.strip_nul;
        // No total timeout: a long answer may stream for minutes. The timeout bounds the wait
        // for the response headers here, and then each gap between events.
        let response = self
            .send_with_retry(&url, api_key, &body, None, |request| async move {
                let response = tokio::time::timeout(timeout, request.send())
                    .await
                    .map_err(|_| LlmError::Timeout(timeout))?
                    .map_err(|e| map_send_error(e, timeout))?;
                let status = response.status();
                if !status.is_success() {
                    let text = response.text().await.unwrap_or_default();
                    return Err(status_error(status.as_u16(), &text));
                }
                Ok(response)
            })
            .await?;

        let events = response.bytes_stream().eventsource();
        let stream = futures::stream::unfold(
            (Box::pin(events), Vec::<ChatChunk>::new(), false),
            move |(mut events, mut pending, mut done)| async move {
                loop {
                    if !pending.is_empty() {
                        let chunk = pending.remove(0);
                        return Some((Ok(chunk), (events, pending, done)));
                    }
                    if done {
                        return None;
                    }
                    let next = match tokio::time::timeout(timeout, events.next()).await {
                        Err(_) => {
                            done = true;
                            return Some((
                                Err(LlmError::Timeout(timeout)),
                                (events, pending, done),
                            ));
                        }
                        Ok(next) => next,
                    };
                    match next {
                        None => return None,
                        Some(Err(e)) => {
                            done = true;
                            let error = LlmError::Request(format!("stream interrupted: {e}"));
                            return Some((Err(error), (events, pending, done)));
                        }
                        Some(Ok(event)) => {
                            let data = event.data.trim();
                            if data == "[DONE]" {
                                done = true;
                                continue;
                            }
                            if data.is_empty() {
                                continue;
                            }
                            match parse_stream_chunk(data, strip_nul) {
                                Ok(chunks) => pending = chunks,
                                Err(e) => {
                                    done = true;
                                    return Some((Err(e), (events, pending, done)));
                                }
                            }
                        }
                    }
                }
            },
        );
        Ok(Box::pin(stream))
    }

    /// The completions URL of `base_url`, vetted by the egress policy when this client checks.
    async fn checked_url(&self, base_url: &str) -> Result<String, LlmError> {
        let url = completions_url(base_url)?;
        if self.egress_check {
            let parsed =
                reqwest::Url::parse(&url).map_err(|_| LlmError::InvalidUrl(base_url.to_owned()))?;
            egress::check_url(&parsed, false)
                .await
                .map_err(LlmError::Egress)?;
        }
        Ok(url)
    }

    /// Send until success, a non-retryable error or the last attempt. `total_timeout` bounds a
    /// whole attempt, response body included.
    async fn send_with_retry<T, F, Fut>(
        &self,
        url: &str,
        api_key: &str,
        body: &Value,
        total_timeout: Option<Duration>,
        attempt: F,
    ) -> Result<T, LlmError>
    where
        F: Fn(reqwest::RequestBuilder) -> Fut,
        Fut: std::future::Future<Output = Result<T, LlmError>>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            let mut request = self.http.post(url).bearer_auth(api_key).json(body);
            if let Some(timeout) = total_timeout {
                request = request.timeout(timeout);
            }
            match attempt(request).await {
                Ok(value) => return Ok(value),
                Err(error) if error.is_retryable() && tries < self.max_attempts => {
                    let delay = self.backoff.saturating_mul(1 << (tries - 1).min(16));
                    tracing::debug!(%error, tries, ?delay, "retrying LLM request");
                    tokio::time::sleep(delay).await;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

fn completions_url(base_url: &str) -> Result<String, LlmError> {
    let url = format!("{}/chat/completions", base_url.trim_end_matches('/'));
    match reqwest::Url::parse(&url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(url),
        _ => Err(LlmError::InvalidUrl(base_url.to_owned())),
    }
}

fn map_send_error(error: reqwest::Error, timeout: Duration) -> LlmError {
    if let Some(refused) = egress::find_egress_error(&error) {
        return LlmError::Egress(refused);
    }
    if error.is_timeout() {
        return LlmError::Timeout(timeout);
    }
    let url = error.url().map(|u| u.to_string()).unwrap_or_default();
    if error.is_connect() {
        return LlmError::Connect {
            url,
            reason: error_chain(&error),
        };
    }
    LlmError::Request(error_chain(&error))
}

/// `error: cause: cause`, since reqwest's own message hides the interesting part.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// An error answer: the OpenAI `error.message` when present, else the start of the body.
fn status_error(status: u16, body: &str) -> LlmError {
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error")
                .and_then(|e| e.get("message").or(Some(e)))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| body.chars().take(500).collect());
    LlmError::Status { status, message }
}

fn parse_completion(text: &str) -> Result<ChatCompletion, LlmError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| LlmError::Decode(format!("invalid JSON: {e}")))?;
    let message = value
        .get("choices")
        .and_then(|c| c.get(0))
        .and_then(|c| c.get("message"))
        .ok_or_else(|| LlmError::Decode("the response has no choices[0].message".into()))?;
    Ok(ChatCompletion {
        content: content_text(message.get("content")),
        usage: usage(&value),
    })
}

/// `content` is a string, or a list of parts whose text is concatenated.
fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str).or(p.as_str()))
            .collect(),
        _ => String::new(),
    }
}

fn usage(value: &Value) -> Option<Usage> {
    value
        .get("usage")
        .filter(|u| u.is_object())
        .and_then(|u| serde_json::from_value(u.clone()).ok())
}

fn parse_stream_chunk(data: &str, strip_nul: bool) -> Result<Vec<ChatChunk>, LlmError> {
    let value: Value = serde_json::from_str(data)
        .map_err(|e| LlmError::Decode(format!("invalid stream event: {e}")))?;
    let mut chunks = Vec::new();
    if let Some(choices) = value.get("choices").and_then(Value::as_array) {
        for choice in choices {
            let mut text = content_text(choice.get("delta").and_then(|d| d.get("content")));
            if strip_nul {
                text.retain(|c| c != '\0');
            }
            if !text.is_empty() {
                chunks.push(ChatChunk::Delta(text));
            }
        }
    }
    if let Some(usage) = usage(&value) {
        chunks.push(ChatChunk::Usage(usage));
    }
    Ok(chunks)
}

/// The provider's host, the only part of its URL used as a label.
fn provider_host(base_url: &str) -> String {
    reqwest::Url::parse(base_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| "invalid".to_owned())
}

fn record_tokens(host: &str, usage: &Usage) {
    let host = host.to_owned();
    metrics::counter!(metrics_names::LLM_TOKENS, "host" => host.clone(), "kind" => "prompt")
        .increment(usage.prompt_tokens);
    metrics::counter!(metrics_names::LLM_TOKENS, "host" => host, "kind" => "completion")
        .increment(usage.completion_tokens);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn completions_are_read_from_the_first_choice() {
        let body = json!({
            "choices": [{"message": {"role": "assistant", "content": "hi"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        });
        let parsed = parse_completion(&body.to_string()).unwrap();
        assert_eq!(parsed.content, "hi");
        assert_eq!(parsed.usage.unwrap().total_tokens, 4);
        assert!(matches!(parse_completion("{}"), Err(LlmError::Decode(_))));
    }

    #[test]
    fn error_bodies_yield_the_api_message() {
        let error = status_error(401, r#"{"error": {"message": "bad key"}}"#);
        assert_eq!(
            error,
            LlmError::Status {
                status: 401,
                message: "bad key".into()
            }
        );
        assert!(status_error(503, "busy").is_retryable());
        assert!(status_error(429, "").is_retryable());
        assert!(!status_error(400, "").is_retryable());
    }

    #[test]
    fn stream_chunks_carry_deltas_and_usage() {
        let chunks = parse_stream_chunk(
            r#"{"choices":[{"delta":{"content":"He"}}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#,
            false,
        )
        .unwrap();
        assert_eq!(
            chunks,
            vec![
                ChatChunk::Delta("He".into()),
                ChatChunk::Usage(Usage {
                    prompt_tokens: 1,
                    completion_tokens: 2,
                    total_tokens: 3
                })
            ]
        );
    }

    #[test]
    fn nul_is_dropped_from_deltas_when_asked() {
        let data = r#"{"choices":[{"delta":{"content":"a\u0000b"}}]}"#;
        assert_eq!(
            parse_stream_chunk(data, true).unwrap(),
            vec![ChatChunk::Delta("ab".into())]
        );
        assert_eq!(
            parse_stream_chunk(data, false).unwrap(),
            vec![ChatChunk::Delta("a\0b".into())]
        );
        let only_nul = r#"{"choices":[{"delta":{"content":"\u0000"}}]}"#;
        assert_eq!(parse_stream_chunk(only_nul, true).unwrap(), vec![]);
    }

    /// The checking client refuses loopback by IP literal and by name without connecting: a
    /// listener on loopback sees no connection. (Only loopback is used here: a regression
    /// must not send anything anywhere else.)
    #[tokio::test]
    async fn an_egress_checked_client_refuses_loopback_without_connecting() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = LlmClient::new(egress::http_client(false))
            .with_egress_check(true)
            .with_retry(1, Duration::from_millis(1));
        for base in [
            format!("http://127.0.0.1:{port}/v1"),
            format!("http://localhost:{port}/v1"),
            format!("http://[::ffff:127.0.0.1]:{port}/v1"),
        ] {
            let error = client
                .chat(&base, "k", serde_json::json!({"model": "m"}))
                .await
                .unwrap_err();
            assert!(
                matches!(&error, LlmError::Egress(EgressError::Forbidden { addr, .. }) if addr.is_loopback() || addr.to_string().ends_with("127.0.0.1")),
                "{base}: {error:?}"
            );
            let stream = client
                .chat_stream(&base, "k", serde_json::json!({"model": "m"}))
                .await;
            assert!(matches!(stream, Err(LlmError::Egress(_))), "{base}");
        }
        let accepted = tokio::time::timeout(Duration::from_millis(200), listener.accept()).await;
        assert!(accepted.is_err(), "nothing connected to the listener");
    }

    #[test]
    fn base_urls_must_be_http() {
        assert_eq!(
            completions_url("http://h/api/v3/").unwrap(),
            "http://h/api/v3/chat/completions"
        );
        assert!(completions_url("ftp://h").is_err());
        assert!(completions_url("nope").is_err());
    }
}
