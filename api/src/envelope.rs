//! The `{code, message, data}` envelope of the app API family (spec: Conventions), the success
//! side of it, and paginated data. Errors become envelopes in [`crate::error`]; handlers never
//! build one by hand:
//!
//! ```ignore
//! async fn get_thing(..) -> ApiResult<Thing> { Ok(Envelope::ok(thing)) }
//! async fn update_thing(..) -> ApiResult<Empty> { Ok(Envelope::message("更新AI应用配置成功")) }
//! ```

use axum::{
    Json,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

/// The six business codes; only `success` means success.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    Success,
    Fail,
    NotFound,
    Unauthorized,
    Forbidden,
    ValidateError,
}

/// A response of the app API family. `message` is `""` on plain success.
#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    pub code: Code,
    pub message: String,
    pub data: T,
}

/// `data: {}`.
#[derive(Clone, Copy, Debug, Default, Serialize, ToSchema)]
pub struct Empty {}

impl<T> Envelope<T> {
    /// `success` with this data and an empty message.
    pub fn ok(data: T) -> Self {
        Self {
            code: Code::Success,
            message: String::new(),
            data,
        }
    }

    /// Sets the success message (e.g. the seed's `更新AI应用配置成功`).
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }
}

impl Envelope<Empty> {
    /// `success` with `data: {}` and a message.
    pub fn message(message: impl Into<String>) -> Self {
        Self::ok(Empty {}).with_message(message)
    }

    /// `success` with `data: {}` and no message.
    pub fn empty() -> Self {
        Self::ok(Empty {})
    }
}

/// Success answers 200; errors set their own status in [`crate::error::ApiError`].
impl<T: Serialize> IntoResponse for Envelope<T> {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

/// The shape of every error answer, for the OpenAPI document. `data` is `{}`, or for
/// `validate_error` the problems per field: `{"email": ["email is not a valid address"]}`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"code": "validate_error", "message": "email is not a valid address",
                          "data": {"email": ["email is not a valid address"]}}))]
pub struct ErrorEnvelope {
    pub code: Code,
    pub message: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// The paginator of a page of results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Paginator {
    pub current_page: u64,
    pub page_size: u64,
    pub total_page: u64,
    pub total_record: u64,
}

/// `data` of a paginated answer: `{list, paginator}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub list: Vec<T>,
    pub paginator: Paginator,
}

impl<T> Page<T> {
    /// Maps the list items, keeping the paginator.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            list: self.list.into_iter().map(f).collect(),
            paginator: self.paginator,
        }
    }
}
