//! `llm`: one OpenAI-compatible chat completion (spec 2.2, decision 10), to an `apiHost`
//! behind the egress policy like the http node's URL (decision 9).
//!
//! When someone listens to the run as the node starts ([`NodeContext::token_stream`]), the
//! node asks the provider for a stream and passes each token on as a `node_delta` event;
//! its output is the tokens joined, the same `result` the plain call answers. Otherwise it
//! makes the plain call, exactly as before streams existed.

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{Map, Value, json};

use crate::llm::{ChatChunk, LlmError};
use crate::workflow::egress::EgressError;
use crate::workflow::executor::{NodeContext, NodeExecutor, NodeOutput, TokenStream};
use crate::workflow::js;
use crate::workflow::node_error::NodeError;

pub struct LlmExecutor;

/// The node's inputs after the reference's checks.
#[derive(Debug, PartialEq)]
pub struct LlmRequest {
    pub model_name: String,
    pub api_key: String,
    pub api_host: String,
    pub temperature: Value,
    pub system_prompt: Option<String>,
    pub prompt: String,
}

impl LlmRequest {
    /// `checkInputs`: every value is required (temperature may be 0), and the host must be an
    /// http(s) URL. Messages are the reference's.
    pub fn from_inputs(inputs: &Map<String, Value>) -> Result<LlmRequest, NodeError> {
        let get = |key: &str| inputs.get(key);
        let mut missing = Vec::new();
        if !js::is_truthy(get("modelName")) {
            missing.push("modelName");
        }
        if js::is_nil(get("temperature")) {
            missing.push("temperature");
        }
        if !js::is_truthy(get("apiKey")) {
            missing.push("apiKey");
        }
        if !js::is_truthy(get("apiHost")) {
            missing.push("apiHost");
        }
        if !js::is_truthy(get("prompt")) {
            missing.push("prompt");
        }
        if !missing.is_empty() {
            return Err(format!(
                "LLM node missing required inputs: \"{}\"",
                missing.join("\", \"")
            )
            .into());
        }
        let api_host = match get("apiHost") {
            Some(Value::String(host)) => host.clone(),
            other => {
                return Err(
                    format!("Invalid API host format - {}", js::to_js_string(other)).into(),
                );
            }
        };
        let url = url::Url::parse(&api_host).map_err(|_| NodeError::new("Invalid URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("Invalid API host protocol - {}:", url.scheme()).into());
        }
        let text = |key: &str| js::to_js_string(get(key)).into_owned();
        Ok(LlmRequest {
            model_name: text("modelName"),
            api_key: text("apiKey"),
            api_host,
            temperature: get("temperature").cloned().unwrap_or(Value::Null),
            system_prompt: js::is_truthy(get("systemPrompt")).then(|| text("systemPrompt")),
            prompt: text("prompt"),
        })
    }

    /// The chat-completions request body.
    pub fn body(&self) -> Value {
        let mut messages = Vec::with_capacity(2);
        if let Some(system) = &self.system_prompt {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.push(json!({"role": "user", "content": self.prompt}));
        json!({
            "model": self.model_name,
            "temperature": self.temperature,
            "messages": messages,
        })
    }
}

#[async_trait]
impl NodeExecutor for LlmExecutor {
    async fn execute(&self, ctx: NodeContext<'_>) -> Result<NodeOutput, NodeError> {
        let request = LlmRequest::from_inputs(ctx.inputs())?;
        let client = ctx.llm_client();
        let content = match ctx.token_stream() {
            Some(tokens) => streamed(&ctx, &request, &tokens).await,
            None => client
                .chat(&request.api_host, &request.api_key, request.body())
                .await
                .map(|completion| completion.content),
        }
        .map_err(|error| node_error(error, &request.api_host))?;
        let mut outputs = Map::new();
        outputs.insert("result".into(), Value::String(content));
        Ok(NodeOutput::new(outputs))
    }
}

/// The streamed call: every token goes to the listeners as it comes; the answer is them all.
async fn streamed(
    ctx: &NodeContext<'_>,
    request: &LlmRequest,
    tokens: &TokenStream<'_>,
) -> Result<String, LlmError> {
    let mut stream = ctx
        .llm_client()
        .chat_stream(&request.api_host, &request.api_key, request.body())
        .await?;
    let mut content = String::new();
    while let Some(chunk) = stream.next().await {
        if let ChatChunk::Delta(text) = chunk? {
            tokens.push(&text).await;
            content.push_str(&text);
        }
    }
    Ok(content)
}

/// What the node reports for a failed call (the reference's messages where it has them).
fn node_error(error: LlmError, api_host: &str) -> NodeError {
    match error {
        // A host that does not resolve is unreachable, as without the policy.
        LlmError::Connect { .. } | LlmError::Egress(EgressError::Unresolvable { .. }) => {
            NodeError::new(format!("Network error: unreachable api \"{api_host}\""))
        }
        LlmError::Timeout(_) => NodeError::new("Request timed out."),
        LlmError::Status { status, message } => NodeError::new(format!("{status} {message}")),
        LlmError::Egress(refused) => NodeError::new(format!(
            "LLM apiHost refused by the egress policy: {refused}"
        )),
        other => NodeError::new(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn missing_inputs_are_listed_in_reference_order() {
        let error = LlmRequest::from_inputs(&inputs(
            json!({"temperature": 0, "apiHost": "http://h", "prompt": "p"}),
        ))
        .unwrap_err();
        assert_eq!(
            error.message(),
            "LLM node missing required inputs: \"modelName\", \"apiKey\""
        );
        let error = LlmRequest::from_inputs(&inputs(json!({}))).unwrap_err();
        assert_eq!(
            error.message(),
            "LLM node missing required inputs: \"modelName\", \"temperature\", \"apiKey\", \"apiHost\", \"prompt\""
        );
    }

    #[test]
    fn a_zero_temperature_is_not_missing() {
        let request = LlmRequest::from_inputs(&inputs(json!({
            "modelName": "m", "apiKey": "k", "apiHost": "https://h/v1", "temperature": 0, "prompt": "p"
        })))
        .unwrap();
        assert_eq!(request.temperature, json!(0));
        assert_eq!(request.system_prompt, None);
        assert_eq!(
            request.body(),
            json!({"model": "m", "temperature": 0, "messages": [{"role": "user", "content": "p"}]})
        );
    }

    #[test]
    fn the_api_host_must_be_an_http_url() {
        let base = json!({"modelName": "m", "apiKey": "k", "temperature": 1, "prompt": "p"});
        let with_host = |host: &str| {
            let mut v = base.clone();
            v["apiHost"] = json!(host);
            LlmRequest::from_inputs(&inputs(v))
                .unwrap_err()
                .message()
                .to_owned()
        };
        assert_eq!(with_host("not a url"), "Invalid URL");
        assert_eq!(with_host("ftp://h/x"), "Invalid API host protocol - ftp:");
    }

    #[test]
    fn egress_refusals_are_named_and_unresolvable_hosts_are_unreachable() {
        let host = "http://h/v1";
        let unresolvable = LlmError::Egress(EgressError::Unresolvable {
            host: "h".into(),
            reason: "no addresses".into(),
        });
        assert_eq!(
            node_error(unresolvable, host).message(),
            "Network error: unreachable api \"http://h/v1\""
        );
        let forbidden = LlmError::Egress(EgressError::Forbidden {
            host: "h".into(),
            addr: "10.0.0.1".parse().unwrap(),
        });
        let message = node_error(forbidden, host).message().to_owned();
        assert!(
            message.starts_with("LLM apiHost refused by the egress policy: ")
                && message.contains("10.0.0.1 is a loopback, private"),
            "{message}"
        );
    }
}
