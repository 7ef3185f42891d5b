//! `ApiJson<T>` and `ApiQuery<T>`: axum's `Json` and `Query` with the app's rejection, so a
//! body that is not JSON, a wrong content type, a missing, unknown or mistyped field or a bad
//! query parameter answers a `validate_error` envelope naming the field, never plain text.
//!
//! Request DTOs use `#[serde(deny_unknown_fields)]` so that unknown fields are refused too.

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
    Ok(value)
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
        Query::<T>::try_from_uri(&parts.uri)
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
            })
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
