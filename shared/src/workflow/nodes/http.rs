//! `http`: one HTTP request with params, headers, every body type, a timeout and retries
//! (spec 2.3), behind the egress policy and a response size cap (decision 9).
//!
//! A non-2xx answer is not an error: its status code is an output like any other.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json::{Map, Value};

use crate::llm::error_chain;
use crate::workflow::egress;
use crate::workflow::executor::{NodeContext, NodeExecutor, NodeOutput};
use crate::workflow::js;
use crate::workflow::node_error::NodeError;
use crate::workflow::scope::Scope;
use crate::workflow::value::FlowValue;

pub struct HttpExecutor;

const METHODS: [&str; 6] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"];

#[async_trait]
impl NodeExecutor for HttpExecutor {
    async fn execute(&self, ctx: NodeContext<'_>) -> Result<NodeOutput, NodeError> {
        let request = prepare(&ctx)?;
        ctx.set_snapshot_inputs(request.snapshot_inputs());
        let config = ctx.config();

        let mut url = url::Url::parse(&request.url).map_err(|_| NodeError::new("Invalid URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("HTTP url protocol \"{}:\" is not supported", url.scheme()).into());
        }
        add_params(&mut url, &request.params);
        egress::check_url(&url, config.http_allow_private)
            .await
            .map_err(|e| NodeError::new(e.to_string()))?;

        let headers = build_headers(&request)?;
        let body = build_body(&request)?;
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| NodeError::new(format!("HTTP invalid method \"{}\"", request.method)))?;
        let timeout = request
            .timeout_ms
            .filter(|ms| *ms > 0.0 && ms.is_finite())
            .map(|ms| Duration::from_millis(ms as u64))
            .unwrap_or(config.http_default_timeout);

        let mut attempt: u32 = 0;
        let response = loop {
            let mut builder = ctx
                .http_client()
                .request(method.clone(), url.clone())
                .headers(headers.clone())
                .timeout(timeout);
            if let Some(body) = &body {
                builder = builder.body(body.clone());
            }
            match send(builder, config.http_max_response_bytes, timeout).await {
                Ok(response) => break response,
                Err(Failure::Final(message)) => return Err(message.into()),
                Err(Failure::Retryable(message)) => {
                    if attempt >= request.retry_times {
                        return Err(message.into());
                    }
                    let delay = config
                        .http_retry_backoff
                        .saturating_mul(1 << attempt.min(16));
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        };
        Ok(NodeOutput::new(response))
    }
}

/// The request as the reference prepares it (`parseInputs`).
struct Prepared {
    method: String,
    url: String,
    headers: Map<String, Value>,
    params: Map<String, Value>,
    body_type: String,
    body: String,
    retry_times: u32,
    raw_retry_times: Option<Value>,
    timeout_ms: Option<f64>,
    raw_timeout: Option<Value>,
}

impl Prepared {
    /// What the snapshot shows instead of the node's inputs (the URL without params).
    fn snapshot_inputs(&self) -> Map<String, Value> {
        let mut inputs = Map::new();
        inputs.insert("method".into(), Value::String(self.method.clone()));
        inputs.insert("url".into(), Value::String(self.url.clone()));
        inputs.insert("headers".into(), Value::Object(self.headers.clone()));
        inputs.insert("params".into(), Value::Object(self.params.clone()));
        inputs.insert("bodyType".into(), Value::String(self.body_type.clone()));
        inputs.insert("body".into(), Value::String(self.body.clone()));
        if let Some(retry) = &self.raw_retry_times {
            inputs.insert("retryTimes".into(), retry.clone());
        }
        if let Some(timeout) = &self.raw_timeout {
            inputs.insert("timeout".into(), timeout.clone());
        }
        inputs
    }
}

fn prepare(ctx: &NodeContext<'_>) -> Result<Prepared, NodeError> {
    let data = ctx.data();
    let scope = ctx.scope();
    let api = data.get("api");
    let method = match api.and_then(|a| a.get("method")) {
        None | Some(Value::Null) => "GET".to_owned(),
        Some(m) => js::to_js_string(Some(m)).to_ascii_uppercase(),
    };
    if !METHODS.contains(&method.as_str()) {
        return Err(format!("HTTP invalid method \"{method}\"").into());
    }
    let url = render_template_value(scope, api.and_then(|a| a.get("url")))?
        .ok_or_else(|| NodeError::new("HTTP url is required"))?;
    let headers = scope.parse_inputs_json(data.get("headersValues"), data.get("headers"))?;
    let params = scope.parse_inputs_json(data.get("paramsValues"), data.get("params"))?;
    let (body_type, body) = parse_body(scope, data.get("body"))?;
    let timeout = data.get("timeout");
    let raw_retry_times = timeout.and_then(|t| t.get("retryTimes")).cloned();
    let raw_timeout = timeout.and_then(|t| t.get("timeout")).cloned();
    Ok(Prepared {
        method,
        url,
        headers,
        params,
        body_type,
        body,
        // Retries beyond ten only prolong a failure; the run time limit bounds them anyway.
        retry_times: raw_retry_times
            .as_ref()
            .and_then(Value::as_f64)
            .map_or(0, |n| n.clamp(0.0, 10.0) as u32),
        raw_retry_times,
        timeout_ms: raw_timeout.as_ref().and_then(Value::as_f64),
        raw_timeout,
    })
}

/// `parseTemplate` on a value from node data: it must be a template; empty renders to nothing.
fn render_template_value(
    scope: &Scope<'_>,
    value: Option<&Value>,
) -> Result<Option<String>, NodeError> {
    if value.and_then(|v| v.get("type")).and_then(Value::as_str) != Some("template") {
        return Err(format!("Invalid template value: {}", js::to_js_string(value)).into());
    }
    Ok(match value.map(FlowValue::from_json) {
        Some(FlowValue::Template(Some(template))) => Some(scope.render_template(&template)),
        _ => None,
    })
}

/// The body as a string, per body type; form bodies are JSON text until they are sent.
fn parse_body(scope: &Scope<'_>, body: Option<&Value>) -> Result<(String, String), NodeError> {
    let body_type = match body.and_then(|b| b.get("bodyType")) {
        None | Some(Value::Null) => "none".to_owned(),
        Some(t) => js::to_js_string(Some(t)).into_owned(),
    };
    let field = |key: &str| {
        body.and_then(|b| b.get(key))
            .filter(|v| js::is_truthy(Some(v)))
    };
    let template = |key: &str, message: &str| -> Result<String, NodeError> {
        let value = field(key).ok_or_else(|| NodeError::new(message))?;
        render_template_value(scope, Some(value))?.ok_or_else(|| NodeError::new(message))
    };
    let form = |fields: &str, values: &str, message: &str| -> Result<String, NodeError> {
        let (Some(declare), Some(values)) = (field(fields), field(values)) else {
            return Err(message.into());
        };
        let parsed = scope.parse_inputs_json(Some(values), Some(declare))?;
        Ok(js::json_stringify(Some(&Value::Object(parsed))))
    };
    let text = match body_type.as_str() {
        "none" => String::new(),
        "JSON" => template("json", "HTTP json body is required")?,
        // The reference's first version rendered `body.json` here; accept it when `rawText` is absent.
        "raw-text" => match field("rawText") {
            Some(_) => template("rawText", "HTTP raw text body is required")?,
            None => template("json", "HTTP raw text body is required")?,
        },
        "binary" => template("binary", "HTTP binary body is required")?,
        "form-data" => form(
            "formData",
            "formDataValues",
            "HTTP form-data body is required",
        )?,
        "x-www-form-urlencoded" => form(
            "xWwwFormUrlencoded",
            "xWwwFormUrlencodedValues",
            "HTTP x-www-form-urlencoded body is required",
        )?,
        other => return Err(format!("HTTP invalid body type \"{other}\"").into()),
    };
    Ok((body_type, text))
}

/// `searchParams.set` for each non-empty param.
fn add_params(url: &mut url::Url, params: &Map<String, Value>) {
    for (key, value) in params {
        if js::is_nil(Some(value)) || value == &Value::String(String::new()) {
            continue;
        }
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != key)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair(key, &js::to_js_string(Some(value)));
    }
}

fn build_headers(request: &Prepared) -> Result<HeaderMap, NodeError> {
    let mut headers = HeaderMap::new();
    for (name, value) in &request.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| NodeError::new(format!("HTTP invalid header name \"{name}\"")))?;
        let value = HeaderValue::from_str(&js::to_js_string(Some(value)))
            .map_err(|_| NodeError::new(format!("HTTP invalid value for header \"{name}\"")))?;
        headers.append(header, value);
    }
    if !headers.contains_key(CONTENT_TYPE) {
        let default = match request.body_type.as_str() {
            "JSON" => Some("application/json"),
            "x-www-form-urlencoded" => Some("application/x-www-form-urlencoded"),
            "raw-text" => Some("text/plain"),
            "binary" => Some("application/octet-stream"),
            _ => None,
        };
        if let Some(default) = default {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(default));
        } else if request.body_type == "form-data" {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(FORM_CONTENT_TYPE));
        }
    }
    Ok(headers)
}

/// The bytes to send; GET, HEAD and empty bodies send nothing.
fn build_body(request: &Prepared) -> Result<Option<Vec<u8>>, NodeError> {
    if matches!(request.method.as_str(), "GET" | "HEAD") || request.body.is_empty() {
        return Ok(None);
    }
    let fields = |message: &str| -> Result<Vec<(String, String)>, NodeError> {
        match serde_json::from_str::<Value>(&request.body) {
            Ok(Value::Object(map)) => Ok(map
                .iter()
                .map(|(k, v)| (k.clone(), js::to_js_string(Some(v)).into_owned()))
                .collect()),
            _ => Err(message.into()),
        }
    };
    Ok(Some(match request.body_type.as_str() {
        "x-www-form-urlencoded" => {
            let pairs = fields("Invalid x-www-form-urlencoded body format")?;
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
                .into_bytes()
        }
        "form-data" => multipart(&fields("Invalid FormData body format")?),
        _ => request.body.clone().into_bytes(),
    }))
}

/// Boundary shared by the body and its `Content-Type` header.
const BOUNDARY: &str = "----flowgram-form-boundary-7MA4YWxkTrZu0gW";
const FORM_CONTENT_TYPE: &str =
    "multipart/form-data; boundary=----flowgram-form-boundary-7MA4YWxkTrZu0gW";

fn multipart(fields: &[(String, String)]) -> Vec<u8> {
    let mut body = String::new();
    for (name, value) in fields {
        let name = name.replace('"', "%22").replace(['\r', '\n'], " ");
        body.push_str(&format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{BOUNDARY}--\r\n"));
    body.into_bytes()
}

enum Failure {
    /// Not worth retrying: the egress policy or the size cap said no.
    Final(String),
    Retryable(String),
}

/// Send one attempt and read the response into the node's outputs.
async fn send(
    builder: reqwest::RequestBuilder,
    max_bytes: usize,
    timeout: Duration,
) -> Result<Map<String, Value>, Failure> {
    let mut response = builder.send().await.map_err(|e| classify(&e, timeout))?;
    if response
        .content_length()
        .is_some_and(|len| len > max_bytes as u64)
    {
        return Err(too_large(max_bytes));
    }
    let status = response.status().as_u16();
    let mut headers = Map::new();
    for (name, value) in response.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match headers.get_mut(name.as_str()) {
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            _ => {
                headers.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    let mut body: Vec<u8> = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e, timeout))? {
        if body.len() + chunk.len() > max_bytes {
            return Err(too_large(max_bytes));
        }
        body.extend_from_slice(&chunk);
    }
    let mut outputs = Map::new();
    outputs.insert("headers".into(), Value::Object(headers));
    outputs.insert("statusCode".into(), Value::from(status));
    outputs.insert(
        "body".into(),
        Value::String(String::from_utf8_lossy(&body).into_owned()),
    );
    Ok(outputs)
}

fn too_large(max_bytes: usize) -> Failure {
    Failure::Final(format!(
        "HTTP response body is larger than {max_bytes} bytes (http_max_response_bytes)"
    ))
}

fn classify(error: &reqwest::Error, timeout: Duration) -> Failure {
    if let Some(egress) = egress::find_egress_error(error) {
        return Failure::Final(egress.to_string());
    }
    if error.is_timeout() {
        return Failure::Retryable(format!(
            "HTTP request timed out after {}ms",
            timeout.as_millis()
        ));
    }
    Failure::Retryable(format!("HTTP request failed: {}", error_chain(error)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prepared(method: &str, body_type: &str, body: &str) -> Prepared {
        Prepared {
            method: method.into(),
            url: "http://h/".into(),
            headers: Map::new(),
            params: Map::new(),
            body_type: body_type.into(),
            body: body.into(),
            retry_times: 0,
            raw_retry_times: None,
            timeout_ms: None,
            raw_timeout: None,
        }
    }

    #[test]
    fn params_replace_existing_keys_and_skip_empty_values() {
        let mut url = url::Url::parse("http://h/p?a=1&b=2").unwrap();
        let params = json!({"a": "x y", "c": "", "d": 5, "e": null});
        add_params(&mut url, params.as_object().unwrap());
        assert_eq!(url.as_str(), "http://h/p?b=2&a=x+y&d=5");
    }

    #[test]
    fn default_content_types_follow_the_body_type() {
        for (body_type, expected) in [
            ("JSON", Some("application/json")),
            (
                "x-www-form-urlencoded",
                Some("application/x-www-form-urlencoded"),
            ),
            ("raw-text", Some("text/plain")),
            ("binary", Some("application/octet-stream")),
            ("none", None),
        ] {
            let headers = build_headers(&prepared("POST", body_type, "x")).unwrap();
            assert_eq!(
                headers.get(CONTENT_TYPE).map(|v| v.to_str().unwrap()),
                expected,
                "{body_type}"
            );
        }
        let mut with_header = prepared("POST", "JSON", "{}");
        with_header
            .headers
            .insert("content-type".into(), json!("text/x-custom"));
        let headers = build_headers(&with_header).unwrap();
        assert_eq!(headers.get(CONTENT_TYPE).unwrap(), "text/x-custom");
    }

    #[test]
    fn bodies_are_encoded_per_body_type() {
        assert_eq!(build_body(&prepared("GET", "JSON", "{}")).unwrap(), None);
        assert_eq!(build_body(&prepared("POST", "JSON", "")).unwrap(), None);
        assert_eq!(
            build_body(&prepared(
                "POST",
                "x-www-form-urlencoded",
                r#"{"a":"1 2","b":3}"#
            ))
            .unwrap(),
            Some(b"a=1+2&b=3".to_vec())
        );
        let form = build_body(&prepared("POST", "form-data", r#"{"a":"v"}"#))
            .unwrap()
            .unwrap();
        let form = String::from_utf8(form).unwrap();
        assert!(form.contains("Content-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n"));
        assert_eq!(
            build_body(&prepared("POST", "form-data", "[1]"))
                .unwrap_err()
                .message(),
            "Invalid FormData body format"
        );
    }
}
