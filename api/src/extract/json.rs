//! `ApiJson<T>` and `ApiQuery<T>`: axum's `Json` and `Query` with the app's rejection, so a
//! body that is not JSON, a wrong content type, a missing, unknown or mistyped field or a bad
//! query parameter answers a `validate_error` envelope naming the field, never plain text.
//!
//! Request DTOs use `#[serde(deny_unknown_fields)]` so that unknown fields are refused too.
//!
//! Both refuse a string holding the NUL character (U+0000), naming its field: the app API
//! stores plain text, which Postgres cannot hold with NUL in it (SQLite can), and both
//! deployments must answer alike. (The task routes parse their own bodies: there, NUL
//! round-trips.)

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Query, Request},
    http::{HeaderMap, StatusCode, header, request::Parts},
};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldErrors};

/// The field name used for problems with the body as a whole.
pub const BODY: &str = "body";

/// A JSON body, parsed with the app's rejection.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::MalformedBody(FieldErrors::single(
                BODY,
                "request body must be JSON with the header Content-Type: application/json",
            )));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::BodyTooLarge
            } else {
                ApiError::MalformedBody(FieldErrors::single(BODY, "cannot read the request body"))
            }
        })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// `application/json` or `application/<something>+json`, any parameters.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a JSON document into `T`: syntax errors are 400, shape errors 422 on the field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| json_error(bytes, &e.path().to_string(), e.inner()))?;
    de.end().map_err(|e| json_error(bytes, ".", &e))?;
    refuse_nul_in_json(bytes)?;
    Ok(value)
}

/// The message for a field whose text holds NUL.
fn nul_message(field: &str) -> String {
    format!("{field} must not contain the NUL character (\\u0000)")
}

/// A JSON document can only carry NUL as the escape `\u0000`; only a body holding that text
/// (rare) is searched for the field, so every other body costs one scan of its bytes.
fn refuse_nul_in_json(bytes: &[u8]) -> Result<(), ApiError> {
    if !bytes.windows(6).any(|w| w == b"\\u0000") {
        return Ok(());
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return Ok(());
    };
    match field_with_nul(&value, "") {
        Some(field) => Err(ApiError::Validation(FieldErrors::single(
            field.clone(),
            nul_message(&field),
        ))),
        None => Ok(()),
    }
}

/// The path (as serde_path_to_error writes it: `a.b[2]`) of the first string or key holding
/// NUL; `body` for the document itself.
fn field_with_nul(value: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    let at = |path: &str| {
        if path.is_empty() {
            BODY.to_owned()
        } else {
            path.to_owned()
        }
    };
    match value {
        Value::String(s) if s.contains('\0') => Some(at(path)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| field_with_nul(item, &format!("{}[{i}]", at(path)))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let child = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if key.contains('\0') {
                return Some(child.replace('\0', "\\u0000"));
            }
            field_with_nul(item, &child)
        }),
        _ => None,
    }
}

fn json_error(bytes: &[u8], path: &str, error: &serde_json::Error) -> ApiError {
    let message = without_position(&error.to_string());
    if error.is_data() {
        let (field, message) = describe_data_error(path, &message);
        ApiError::Validation(FieldErrors::single(field, message))
    } else if error.is_eof() && bytes.iter().all(u8::is_ascii_whitespace) {
        ApiError::MalformedBody(FieldErrors::single(
            BODY,
            "request body is empty; expected a JSON object",
        ))
    } else {
        ApiError::MalformedBody(FieldErrors::single(
            BODY,
            format!("request body is not valid JSON: {message}"),
        ))
    }
}

/// A query string, parsed with the app's rejection.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let parsed = Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(v)| ApiQuery(v))
            .map_err(|rejection| {
                // axum's text: "Failed to deserialize query string: <field>: <serde message>".
                let text = rejection.body_text();
                let detail = text
                    .split_once(": ")
                    .map_or(text.as_str(), |(_, rest)| rest);
                let (path, message) = match detail.split_once(": ") {
                    Some((path, message)) if !path.contains(' ') => (path, message),
                    _ => (".", detail),
                };
                let (field, message) = describe_data_error(path, message);
                ApiError::Validation(FieldErrors::single(field, message))
            })?;
        refuse_nul_in_query(&parts.uri)?;
        Ok(parsed)
    }
}

/// [`refuse_nul_in_json`] for a query string, where NUL is written `%00`.
fn refuse_nul_in_query(uri: &axum::http::Uri) -> Result<(), ApiError> {
    if !uri.query().is_some_and(|q| q.contains("%00")) {
        return Ok(());
    }
    let Ok(Query(pairs)) = Query::<Vec<(String, String)>>::try_from_uri(uri) else {
        return Ok(());
    };
    match pairs
        .iter()
        .find(|(name, value)| name.contains('\0') || value.contains('\0'))
    {
        Some((name, _)) => {
            let field = name.replace('\0', "\\u0000");
            Err(ApiError::Validation(FieldErrors::single(
                field.clone(),
                nul_message(&field),
            )))
        }
        None => Ok(()),
    }
}

/// serde_json appends ` at line L column C`, which means nothing to the caller of a one-line
/// body and nothing at all for a field error.
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) if message[i..].contains(" column ") => message[..i].to_owned(),
        _ => message.to_owned(),
    }
}

/// Names the field a serde data error is about and says what is wrong in plain words.
fn describe_data_error(path: &str, message: &str) -> (String, String) {
    // A top-level array: serde lets a struct be read from a sequence too.
    let rooted;
    let path = if path.starts_with('[') {
        rooted = format!("{BODY}{path}");
        rooted.as_str()
    } else {
        path
    };
    let parent = if path == "." || path.is_empty() {
        None
    } else {
        Some(path)
    };
    let join = |name: &str| match parent {
        Some(p) if p != name && !p.ends_with(&format!(".{name}")) => format!("{p}.{name}"),
        _ => name.to_owned(),
    };
    if let Some(name) = backticked(message, "missing field `") {
        let field = join(name);
        return (field.clone(), format!("{field} is required"));
    }
    if let Some(name) = backticked(message, "unknown field `") {
        let field = join(name);
        return (field.clone(), format!("{field} is not an accepted field"));
    }
    let field = parent.unwrap_or(BODY).to_owned();
    let plain = ["invalid type: ", "invalid value: "]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split_once(", expected "));
    let text = match plain {
        Some((got, expected)) => {
            let expected = if expected.starts_with("struct ") || expected == "a map" {
                "a JSON object"
            } else {
                expected
            };
            format!("{field} must be {expected} (got {got})")
        }
        None => format!("{field}: {message}"),
    };
    (field, text)
}

/// The name in `prefix...name\`...`.
fn backticked<'a>(message: &'a str, prefix: &str) -> Option<&'a str> {
    message.strip_prefix(prefix)?.split('`').next()
}

#[cfg(test)]
mod tests {
    use axum::{
        Router,
        body::{Body, to_bytes},
        routing::{get, post},
    };
    use serde::Deserialize;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Dto {
        email: String,
        age: Option<u32>,
        tags: Option<Vec<String>>,
    }

    fn app() -> Router {
        Router::new()
            .route(
                "/json",
                post(|ApiJson(dto): ApiJson<Dto>| async move { dto.email }),
            )
            .route(
                "/query",
                get(|ApiQuery(q): ApiQuery<Dto>| async move { q.email }),
            )
    }

    async fn call(req: Request) -> (u16, Value) {
        let response = app().oneshot(req).await.unwrap();
        let status = response.status().as_u16();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn post_json(content_type: Option<&str>, body: &str) -> (u16, Value) {
        let mut req = Request::post("/json");
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        call(req.body(Body::from(body.to_owned())).unwrap()).await
    }

    #[tokio::test]
    async fn a_good_body_is_parsed() {
        let response = app()
            .oneshot(
                Request::post("/json")
                    .header("content-type", "application/json; charset=utf-8")
                    .body(Body::from(r#"{"email":"a@b.co","age":3}"#))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    #[tokio::test]
    async fn a_body_that_is_not_json_is_a_400_validate_error_on_body() {
        for body in ["{not json", "", "{\"email\":\"a\"} trailing"] {
            let (status, json) = post_json(Some("application/json"), body).await;
            assert_eq!(status, 400, "{body:?}: {json}");
            assert_eq!(json["code"], "validate_error");
            assert!(json["data"]["body"][0].is_string(), "{json}");
            assert!(
                !json["message"].as_str().unwrap().contains("line 1"),
                "{json}"
            );
        }
    }

    #[tokio::test]
    async fn a_wrong_or_missing_content_type_is_a_validate_error() {
        for ct in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
        ] {
            let (status, json) = post_json(ct, r#"{"email":"a@b.co"}"#).await;
            assert_eq!(status, 400, "{ct:?}");
            assert_eq!(json["code"], "validate_error");
            assert!(
                json["message"]
                    .as_str()
                    .unwrap()
                    .contains("Content-Type: application/json")
            );
        }
        let (status, _) = post_json(
            Some("application/merge-patch+json"),
            r#"{"email":"a@b.co"}"#,
        )
        .await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn shape_errors_are_422_on_the_field() {
        let cases = [
            (r#"{}"#, "email", "email is required"),
            (r#"{"email":"a","x":1}"#, "x", "x is not an accepted field"),
            (
                r#"{"email":5}"#,
                "email",
                "email must be a string (got integer `5`)",
            ),
            (
                r#"{"email":"a","age":-1}"#,
                "age",
                "age must be u32 (got integer `-1`)",
            ),
            (
                r#"{"email":"a","tags":[1]}"#,
                "tags[0]",
                "tags[0] must be a string (got integer `1`)",
            ),
            (
                r#""hello""#,
                "body",
                "body must be a JSON object (got string \"hello\")",
            ),
            (
                r#"[1]"#,
                "body[0]",
                "body[0] must be a string (got integer `1`)",
            ),
        ];
        for (body, field, message) in cases {
            let (status, json) = post_json(Some("application/json"), body).await;
            assert_eq!(status, 422, "{body}: {json}");
            assert_eq!(json["code"], "validate_error");
            assert_eq!(json["message"], message, "{body}: {json}");
            assert_eq!(json["data"], json!({field: [message]}), "{body}");
        }
    }

    #[tokio::test]
    async fn nul_in_a_string_is_422_on_its_field() {
        let cases = [
            (r#"{"email":"a\u0000b"}"#, "email"),
            (r#"{"email":"a","tags":["x","\u0000"]}"#, "tags[1]"),
        ];
        for (body, field) in cases {
            let (status, json) = post_json(Some("application/json"), body).await;
            assert_eq!(status, 422, "{body}: {json}");
            assert_eq!(json["code"], "validate_error");
            let message = format!("{field} must not contain the NUL character (\\u0000)");
            assert_eq!(json["data"], json!({field: [message]}), "{body}");
        }
        // An escaped backslash followed by `u0000` is no NUL.
        let (status, _) = post_json(Some("application/json"), r#"{"email":"a\\u0000"}"#).await;
        assert_eq!(status, 200);
        let (status, json) = call(
            Request::get("/query?email=a%00b&age=3")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, 422, "{json}");
        assert_eq!(
            json["data"],
            json!({"email": ["email must not contain the NUL character (\\u0000)"]})
        );
        let (status, _) = call(
            Request::get("/query?email=a%2500b")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "an escaped percent sign is no NUL");
    }

    #[test]
    fn nul_is_found_in_nested_values_and_keys() {
        let value = json!({"a": {"b": [1, {"c": "x\u{0}"}]}});
        assert_eq!(field_with_nul(&value, "").as_deref(), Some("a.b[1].c"));
        let value = json!({"model_config": {"k\u{0}": 1}});
        assert_eq!(
            field_with_nul(&value, "").as_deref(),
            Some("model_config.k\\u0000")
        );
        assert_eq!(field_with_nul(&json!("\u{0}"), "").as_deref(), Some("body"));
        assert_eq!(field_with_nul(&json!({"a": "b"}), ""), None);
    }

    #[tokio::test]
    async fn bad_query_parameters_are_422_on_the_parameter() {
        let (status, json) = call(
            Request::get("/query?email=a&age=old")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(status, 422, "{json}");
        assert!(
            json["data"]["age"][0].as_str().unwrap().starts_with("age"),
            "{json}"
        );
        let (status, json) = call(Request::get("/query?age=3").body(Body::empty()).unwrap()).await;
        assert_eq!(status, 422, "{json}");
        assert_eq!(json["data"], json!({"email": ["email is required"]}));
        let (status, _) = call(Request::get("/query?email=a").body(Body::empty()).unwrap()).await;
        assert_eq!(status, 200);
    }
}
