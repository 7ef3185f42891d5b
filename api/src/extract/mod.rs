//! Extractors with the app's rejection: every failure answers an envelope.

pub mod auth;
pub mod client_addr;
pub mod json;
pub mod pagination;

pub use auth::{CurrentAccount, MaybeAccount};
pub use client_addr::ClientAddr;
pub use json::{ApiJson, ApiQuery};
pub use pagination::{PageParams, Pagination};
