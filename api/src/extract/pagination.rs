//! The pagination query of list endpoints: `current_page` (default 1) and `page_size`
//! (default 20, at most `MAX`). `Pagination` takes the default maximum of 50;
//! `Pagination<20>` caps an endpoint at 20 (the debug message list). Bad values answer a
//! `validate_error` naming the parameter. Other query parameters are left to the handler's
//! own [`ApiQuery`](super::ApiQuery).
//!
//! ```ignore
//! async fn list_apps(account: CurrentAccount, page: Pagination, ..) -> ApiResult<Page<AppItem>> {
//!     let (rows, total) = store::list_apps(&db, account.id, page.limit(), page.offset()).await?;
//!     Ok(Envelope::ok(page.page(rows, total).map(AppItem::from)))
//! }
//! ```

use axum::{
    extract::{FromRequestParts, Query},
    http::request::Parts,
};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::{
    envelope::{Page, Paginator},
    error::{ApiError, FieldErrors},
};

pub const DEFAULT_PAGE_SIZE: u64 = 20;
pub const DEFAULT_MAX_PAGE_SIZE: u64 = 50;

/// A validated page request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pagination<const MAX: u64 = DEFAULT_MAX_PAGE_SIZE> {
    /// 1-based.
    pub current_page: u64,
    pub page_size: u64,
}

impl<const MAX: u64> Default for Pagination<MAX> {
    fn default() -> Self {
        Self {
            current_page: 1,
            page_size: DEFAULT_PAGE_SIZE.min(MAX),
        }
    }
}

impl<const MAX: u64> Pagination<MAX> {
    /// Parses the two parameters (absent or empty → default).
    pub fn parse(current_page: Option<&str>, page_size: Option<&str>) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut page = Self::default();
        if let Some(raw) = current_page.map(str::trim).filter(|s| !s.is_empty()) {
            match raw.parse::<u64>() {
                Ok(n) if n >= 1 => page.current_page = n,
                _ => {
                    errors.add("current_page", "current_page must be a positive integer");
                }
            }
        }
        if let Some(raw) = page_size.map(str::trim).filter(|s| !s.is_empty()) {
            match raw.parse::<u64>() {
                Ok(n) if (1..=MAX).contains(&n) => page.page_size = n,
                _ => {
                    errors.add(
                        "page_size",
                        format!("page_size must be an integer from 1 to {MAX}"),
                    );
                }
            }
        }
        if errors.is_empty() {
            Ok(page)
        } else {
            Err(errors)
        }
    }

    /// This page of `total_record` records, fetched with this offset and limit.
    pub fn page<T>(self, list: Vec<T>, total_record: u64) -> Page<T> {
        Page {
            list,
            paginator: Paginator {
                current_page: self.current_page,
                page_size: self.page_size,
                total_page: total_record.div_ceil(self.page_size.max(1)),
                total_record,
            },
        }
    }

    /// `LIMIT` for the store query.
    pub fn limit(&self) -> i64 {
        i64::try_from(self.page_size).unwrap_or(i64::MAX)
    }

    /// `OFFSET` for the store query.
    pub fn offset(&self) -> i64 {
        i64::try_from((self.current_page - 1).saturating_mul(self.page_size)).unwrap_or(i64::MAX)
    }
}

/// The raw parameters, as the OpenAPI document shows them (`params(PageParams)`).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page number, from 1 (default 1).
    pub current_page: Option<String>,
    /// Records per page (default 20, at most 50; 20 for debug messages).
    pub page_size: Option<String>,
}

impl<S, const MAX: u64> FromRequestParts<S> for Pagination<MAX>
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Both fields are strings and unknown keys are ignored, so this cannot fail on values;
        // a query that is not form-encoded at all counts as no parameters.
        let Query(raw) = Query::<PageParams>::try_from_uri(&parts.uri).unwrap_or_default();
        Self::parse(raw.current_page.as_deref(), raw.page_size.as_deref())
            .map_err(ApiError::Validation)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Request;

    use super::*;

    async fn extract<const MAX: u64>(query: &str) -> Result<Pagination<MAX>, ApiError> {
        let (mut parts, ()) = Request::get(format!("/x{query}"))
            .body(())
            .unwrap()
            .into_parts();
        Pagination::<MAX>::from_request_parts(&mut parts, &()).await
    }

    #[tokio::test]
    async fn defaults_are_page_1_of_20() {
        let p: Pagination = extract("").await.unwrap();
        assert_eq!((p.current_page, p.page_size), (1, 20));
        let p: Pagination = extract("?current_page=&page_size=&search_word=x")
            .await
            .unwrap();
        assert_eq!((p.current_page, p.page_size), (1, 20));
    }

    #[tokio::test]
    async fn given_values_are_used_up_to_the_maximum() {
        let p: Pagination = extract("?current_page=3&page_size=50").await.unwrap();
        assert_eq!(
            (p.current_page, p.page_size, p.offset(), p.limit()),
            (3, 50, 100, 50)
        );
        let err = extract::<50>("?page_size=51").await.unwrap_err();
        let ApiError::Validation(fields) = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            fields.get("page_size").unwrap()[0],
            "page_size must be an integer from 1 to 50"
        );
    }

    #[tokio::test]
    async fn the_maximum_is_chosen_per_endpoint() {
        assert!(extract::<20>("?page_size=20").await.is_ok());
        let err = extract::<20>("?page_size=21").await.unwrap_err();
        assert!(err.to_string().contains("from 1 to 20"), "{err}");
        let p = extract::<10>("").await.unwrap();
        assert_eq!(p.page_size, 10, "the default never exceeds the maximum");
    }

    #[tokio::test]
    async fn bad_values_name_each_parameter() {
        for q in [
            "?current_page=0",
            "?current_page=-1",
            "?current_page=one",
            "?page_size=0",
            "?page_size=2.5",
        ] {
            assert!(
                matches!(extract::<50>(q).await, Err(ApiError::Validation(_))),
                "{q}"
            );
        }
        let Err(ApiError::Validation(fields)) = extract::<50>("?current_page=x&page_size=x").await
        else {
            panic!()
        };
        assert!(fields.get("current_page").is_some() && fields.get("page_size").is_some());
    }

    #[test]
    fn a_page_counts_its_pages() {
        let p = Pagination::<50> {
            current_page: 2,
            page_size: 20,
        };
        let page = p.page(vec![1, 2, 3], 41);
        assert_eq!(
            serde_json::to_value(&page).unwrap(),
            serde_json::json!({"list": [1, 2, 3], "paginator": {"current_page": 2, "page_size": 20, "total_page": 3, "total_record": 41}})
        );
        assert_eq!(p.page(Vec::<u8>::new(), 0).paginator.total_page, 0);
        assert_eq!(p.page(vec![1], 20).paginator.total_page, 1);
        assert_eq!(p.page(vec!["a"], 1).map(str::len).list, vec![1]);
    }
}
