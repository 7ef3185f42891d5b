//! Compiled schemas by their text. A workflow usually runs many times unchanged (the editor's
//! test runs, an application calling the same flow), and parsing, validating and compiling it
//! cost about a tenth of a run's CPU, twice over: once when the API validates the request and
//! once when the worker runs it. The key is the whole text, so a hit is exactly that schema.

use std::sync::{Arc, LazyLock};

use quick_cache::{Weighter, sync::Cache};

use super::schema::{WorkflowSchema, parse_schema};

/// Total weight (about bytes) of schema text the cache holds per process.
const CAPACITY: u64 = 64 << 20;
/// Texts longer than this are compiled every time: rare, and they would crowd out the rest.
const LARGEST_CACHED: usize = 1 << 20;

#[derive(Clone)]
struct ByTextSize;

impl Weighter<String, Arc<WorkflowSchema>> for ByTextSize {
    fn weight(&self, text: &String, _: &Arc<WorkflowSchema>) -> u64 {
        // The compiled form is a few times larger than its text.
        4 * text.len() as u64 + 1
    }
}

static CACHE: LazyLock<Cache<String, Arc<WorkflowSchema>, ByTextSize>> =
    LazyLock::new(|| Cache::with_weighter(4096, CAPACITY, ByTextSize));

/// [`parse_schema`], remembering valid schemas (errors are not cached).
pub fn parse_schema_cached(text: &str) -> Result<Arc<WorkflowSchema>, Vec<String>> {
    if let Some(schema) = CACHE.get(text) {
        return Ok(schema);
    }
    let schema = Arc::new(parse_schema(text)?);
    if text.len() <= LARGEST_CACHED {
        CACHE.insert(text.to_owned(), schema.clone());
    }
    Ok(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = include_str!("../../tests/fixtures/basic.json");

    #[test]
    fn the_same_text_gives_the_same_compiled_schema() {
        let first = parse_schema_cached(SCHEMA).unwrap();
        let again = parse_schema_cached(SCHEMA).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        // Any change in the text is another schema.
        let other = parse_schema_cached(&format!("{SCHEMA} ")).unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(first.as_json(), other.as_json());
    }

    #[test]
    fn invalid_schemas_still_report_their_errors() {
        for _ in 0..2 {
            let errors = parse_schema_cached("{\"nodes\": 1}").unwrap_err();
            assert!(!errors.is_empty());
        }
    }
}
