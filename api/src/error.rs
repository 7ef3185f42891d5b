//! The one error type of the API. Handlers return `Result<_, ApiError>` (see
//! [`ApiResult`]); the conversion into a response happens here and only here:
//! the `{code, message, data}` envelope with the HTTP status that follows the code.
//!
//! | variant | code | status |
//! |---|---|---|
//! | `Validation` | `validate_error` | 422 |
//! | `MalformedBody` | `validate_error` | 400 (the body is not JSON) |
//! | `BodyTooLarge` | `validate_error` | 413 |
//! | `Fail` | `fail` | 400 |
//! | `Refused` | `fail` | 400 (its own code in the service API's rendering) |
//! | `RateLimited` | `fail` | 429, with `Retry-After` |
//! | `Unauthorized` | `unauthorized` | 401 |
//! | `Forbidden` | `forbidden` | 403 |
//! | `NotFound` | `not_found` | 404 |
//! | `Unavailable` | `fail` | 503: the store failed the request; the cause is logged, never sent |
//! | `Internal` | `fail` | 500, message `internal error`; the cause is logged, never sent |
//!
//! Three renderings: the app family's envelope (`ApiError` itself), the task family's bare
//! `{code, message}` ([`Bare`]), which the FlowGram client expects, and the service API's
//! `{code, message, status}` ([`Dify`]), the shape Dify's service-API clients read.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use indexmap::IndexMap;
use serde::Serialize;
use serde_json::{Value, json};
use shared::{auth::password::PasswordError, store::StoreError};
use utoipa::ToSchema;

use crate::envelope::{Code, Envelope};

/// What a handler of the app family returns.
pub type ApiResult<T> = Result<Envelope<T>, ApiError>;

/// Validation problems per field, in the order they were found: `{"field": ["msg", ...]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FieldErrors(IndexMap<String, Vec<String>>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    /// One problem with one field.
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) -> &mut Self {
        self.0.entry(field.into()).or_default().push(message.into());
        self
    }

    /// Keeps the parsed value, or records the message under `field` and gives `None`:
    /// `let email = errors.check("email", Email::parse(raw));`
    pub fn check<T>(&mut self, field: &str, parsed: Result<T, String>) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(message) => {
                self.add(field, message);
                None
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The messages recorded for a field.
    pub fn get(&self, field: &str) -> Option<&[String]> {
        self.0.get(field).map(Vec::as_slice)
    }

    /// The first problem found: the envelope's `message`.
    pub fn first_message(&self) -> &str {
        self.0
            .values()
            .flatten()
            .next()
            .map_or("invalid request", String::as_str)
    }

    /// `Ok(())` when nothing was recorded, else the 422 error.
    pub fn into_result(self) -> Result<(), ApiError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 422 `validate_error`: the request parsed but breaks the rules; one entry per field.
    #[error("{}", .0.first_message())]
    Validation(FieldErrors),
    /// 400 `validate_error`: the body is not JSON, or not declared as JSON.
    #[error("{}", .0.first_message())]
    MalformedBody(FieldErrors),
    /// 413 `validate_error`: the body exceeds `LLMOPS_BODY_LIMIT`.
    #[error("request body is larger than the limit (LLMOPS_BODY_LIMIT)")]
    BodyTooLarge,
    /// 400 `fail`: a refused operation.
    #[error("{0}")]
    Fail(String),
    /// 400 `fail`: a refused operation with a code of its own for the service API
    /// (`app_unavailable`, `completion_request_error`).
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    /// 429 `fail`: too many attempts; the client may retry after this many seconds.
    #[error("too many attempts, try again in {retry_after_secs} seconds")]
    RateLimited { retry_after_secs: u64 },
    /// 401 `unauthorized`: no valid access token.
    #[error("{0}")]
    Unauthorized(String),
    /// 403 `forbidden`: the resource belongs to another account.
    #[error("{0}")]
    Forbidden(String),
    /// 404 `not_found`.
    #[error("{0}")]
    NotFound(String),
    /// 503 `fail`: the store failed the request (down, restarting, refusing). Logged with
    /// its cause chain.
    #[error("the service is temporarily unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// 500 `fail`: an unexpected fault. Logged with its cause chain; the client sees only
    /// `internal error`.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn fail(message: impl Into<String>) -> Self {
        Self::Fail(message.into())
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(message.into())
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::Unauthorized(message.into())
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }
    /// A 422 naming one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(FieldErrors::single(field, message))
    }
    /// A 400 naming the field of a body that could not be read as the route's shape.
    pub fn malformed(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::MalformedBody(FieldErrors::single(field, message))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MalformedBody(_) | Self::Fail(_) | Self::Refused { .. } => {
                StatusCode::BAD_REQUEST
            }
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> Code {
        match self {
            Self::Validation(_) | Self::MalformedBody(_) | Self::BodyTooLarge => {
                Code::ValidateError
            }
            Self::Fail(_)
            | Self::Refused { .. }
            | Self::RateLimited { .. }
            | Self::Unavailable(_)
            | Self::Internal(_) => Code::Fail,
            Self::Unauthorized(_) => Code::Unauthorized,
            Self::Forbidden(_) => Code::Forbidden,
            Self::NotFound(_) => Code::NotFound,
        }
    }
}

impl ApiError {
    /// Logs a fault's cause, which the client never sees.
    fn log_cause(&self) {
        match self {
            Self::Internal(e) => tracing::error!(error.cause_chain = ?e, "internal error"),
            Self::Unavailable(e) => tracing::error!(error.cause_chain = ?e, "store unavailable"),
            _ => {}
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.log_cause();
        let status = self.status();
        let message = self.to_string();
        let code = self.code();
        let retry_after = match &self {
            Self::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        };
        let data = match self {
            Self::Validation(fields) | Self::MalformedBody(fields) => {
                serde_json::to_value(fields).unwrap_or_else(|_| json!({}))
            }
            _ => Value::Object(Default::default()),
        };
        let mut response = (
            status,
            Envelope {
                code,
                message,
                data,
            },
        )
            .into_response();
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The task family's rendering of an [`ApiError`]: the bare `{code, message}` body, with the
/// same status.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Bare(pub ApiError);

impl<E: Into<ApiError>> From<E> for Bare {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

/// The error body of the task routes.
#[derive(Serialize, ToSchema)]
pub struct TaskErrorBody {
    /// `validate_error`, `not_found`, `unauthorized` or `fail`.
    #[schema(value_type = String)]
    pub code: Code,
    pub message: String,
}

impl IntoResponse for Bare {
    fn into_response(self) -> Response {
        let Self(error) = self;
        error.log_cause();
        let body = TaskErrorBody {
            code: error.code(),
            message: error.to_string(),
        };
        (error.status(), Json(body)).into_response()
    }
}

/// The service API's rendering of an [`ApiError`]: Dify's `{code, message, status}`, with the
/// same HTTP status (and `Retry-After` when rate limited), so Dify's clients can switch.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct Dify(pub ApiError);

impl<E: Into<ApiError>> From<E> for Dify {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

/// The error body of the service API (`/v1/…`).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"code": "app_unavailable", "message": "the app is not published", "status": 400}))]
pub struct DifyErrorBody {
    /// `invalid_param`, `app_unavailable`, `completion_request_error`, `unauthorized`,
    /// `not_found`, `too_many_requests`, `service_unavailable` or `internal_server_error`.
    pub code: String,
    pub message: String,
    /// The HTTP status, repeated.
    pub status: u16,
}

impl Dify {
    /// Dify's code for the error.
    pub fn code(&self) -> &'static str {
        match &self.0 {
            ApiError::Validation(_) | ApiError::MalformedBody(_) | ApiError::BodyTooLarge => {
                "invalid_param"
            }
            ApiError::Refused { code, .. } => code,
            ApiError::Fail(_) => "bad_request",
            ApiError::RateLimited { .. } => "too_many_requests",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Unavailable(_) => "service_unavailable",
            ApiError::Internal(_) => "internal_server_error",
        }
    }

    /// The body, for answers that are not responses (an `error` event of a stream).
    pub fn body(&self) -> DifyErrorBody {
        DifyErrorBody {
            code: self.code().to_owned(),
            message: self.0.to_string(),
            status: self.0.status().as_u16(),
        }
    }
}

impl IntoResponse for Dify {
    fn into_response(self) -> Response {
        self.0.log_cause();
        let status = self.0.status();
        let mut response = (status, Json(self.body())).into_response();
        if let ApiError::RateLimited { retry_after_secs } = self.0 {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}

/// A store that fails a request is taken as unavailable (503): bad input is refused before
/// it reaches the store, so what remains is an outage or a write the store would not take.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(anyhow::Error::new(e))
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from(e).into()
    }
}

impl From<PasswordError> for ApiError {
    fn from(e: PasswordError) -> Self {
        Self::Internal(anyhow::Error::new(e))
    }
}

#[cfg(test)]
mod tests {
    use axum::body::to_bytes;

    use super::*;

    async fn render(e: ApiError) -> (StatusCode, axum::http::HeaderMap, Value) {
        let response = e.into_response();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, headers, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn each_error_answers_its_code_and_status_in_an_envelope() {
        let cases = [
            (
                ApiError::invalid("email", "email is required"),
                422,
                "validate_error",
            ),
            (
                ApiError::MalformedBody(FieldErrors::single("body", "not json")),
                400,
                "validate_error",
            ),
            (ApiError::BodyTooLarge, 413, "validate_error"),
            (ApiError::fail("nope"), 400, "fail"),
            (
                ApiError::RateLimited {
                    retry_after_secs: 7,
                },
                429,
                "fail",
            ),
            (ApiError::unauthorized("who"), 401, "unauthorized"),
            (ApiError::forbidden("not yours"), 403, "forbidden"),
            (ApiError::not_found("no such app"), 404, "not_found"),
            (
                ApiError::Internal(anyhow::anyhow!("db password is hunter2")),
                500,
                "fail",
            ),
        ];
        for (error, status, code) in cases {
            let (s, _, body) = render(error).await;
            assert_eq!(s.as_u16(), status, "{body}");
            assert_eq!(body["code"], code, "{body}");
            assert!(body["message"].is_string(), "{body}");
            assert!(body["data"].is_object(), "{body}");
            assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
        }
    }

    #[tokio::test]
    async fn validation_lists_every_field_and_leads_with_the_first_message() {
        let mut errors = FieldErrors::new();
        errors.add("email", "email is not a valid address");
        errors.add("password", "password is required");
        errors.add("email", "email is too long");
        let (_, _, body) = render(ApiError::Validation(errors)).await;
        assert_eq!(body["message"], "email is not a valid address");
        assert_eq!(
            body["data"],
            json!({"email": ["email is not a valid address", "email is too long"], "password": ["password is required"]})
        );
    }

    #[tokio::test]
    async fn an_internal_error_never_leaks_its_cause() {
        let (_, _, body) =
            render(ApiError::Internal(anyhow::anyhow!("SELECT secret FROM x"))).await;
        assert_eq!(body["message"], "internal error");
        assert_eq!(body["data"], json!({}));
    }

    #[tokio::test]
    async fn a_rate_limit_says_when_to_retry() {
        let (_, headers, body) = render(ApiError::RateLimited {
            retry_after_secs: 42,
        })
        .await;
        assert_eq!(headers[header::RETRY_AFTER], "42");
        assert!(body["message"].as_str().unwrap().contains("42 seconds"));
    }

    #[tokio::test]
    async fn the_service_rendering_is_difys_code_message_and_status() {
        let cases = [
            (
                ApiError::invalid("query", "query is required"),
                422,
                "invalid_param",
            ),
            (
                ApiError::Refused {
                    code: "app_unavailable",
                    message: "not published".into(),
                },
                400,
                "app_unavailable",
            ),
            (ApiError::unauthorized("who"), 401, "unauthorized"),
            (ApiError::not_found("no"), 404, "not_found"),
            (
                ApiError::RateLimited {
                    retry_after_secs: 3,
                },
                429,
                "too_many_requests",
            ),
            (
                ApiError::Internal(anyhow::anyhow!("secret")),
                500,
                "internal_server_error",
            ),
        ];
        for (error, status, code) in cases {
            let response = Dify(error).into_response();
            assert_eq!(response.status().as_u16(), status);
            let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(body["code"], code, "{body}");
            assert_eq!(body["status"], status, "{body}");
            assert!(body["message"].is_string(), "{body}");
            assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
            assert_ne!(body["message"], "secret");
        }
    }

    #[test]
    fn check_collects_messages_and_keeps_values() {
        let mut errors = FieldErrors::new();
        assert_eq!(errors.check("a", Ok::<_, String>(1)), Some(1));
        assert_eq!(errors.check::<i32>("b", Err("b is bad".into())), None);
        assert_eq!(errors.get("b"), Some(&["b is bad".to_owned()][..]));
        assert!(matches!(errors.into_result(), Err(ApiError::Validation(_))));
        assert!(FieldErrors::new().into_result().is_ok());
    }
}
