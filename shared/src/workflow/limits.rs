//! Caps on what a run holds and stores (decision 11): one node's output and the whole report,
//! measured as the JSON text the store receives. Without them, 16 concurrent runs whose code
//! node returned 8 MB each took the embedded server from 80 MB to 3.86 GB: every output is
//! copied into the scope, the report's snapshots, the next node's inputs and each flush.
//!
//! Also how limits are named in messages (`describe_bytes`, `describe_duration`), for the
//! engine and the code sandbox alike.

use std::io;
use std::time::Duration;

use serde::Serialize;

/// `value`'s size as JSON text, counted without building the text. Counting stops once it
/// passes `limit`: any answer above `limit` only means "too large".
pub(crate) fn json_size_within(value: &impl Serialize, limit: usize) -> usize {
    let mut counter = Counter { bytes: 0, limit };
    // The only error is the counter's own stop (values from JSON always serialize).
    let _ = serde_json::to_writer(&mut counter, value);
    counter.bytes
}

struct Counter {
    bytes: usize,
    limit: usize,
}

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.bytes = self.bytes.saturating_add(buf.len());
        if self.bytes > self.limit {
            return Err(io::Error::other("over the limit"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why a node failed when its output is over `LLMOPS_MAX_NODE_OUTPUT_BYTES`.
pub(crate) fn node_output_too_large(max: usize) -> String {
    format!(
        "Node output is larger than {} (LLMOPS_MAX_NODE_OUTPUT_BYTES)",
        describe_bytes(max)
    )
}

/// Why a node failed when its inputs or outputs would take the run's report over
/// `LLMOPS_MAX_REPORT_BYTES`.
pub(crate) fn report_too_large(max: usize) -> String {
    format!(
        "Run report would be larger than {} (LLMOPS_MAX_REPORT_BYTES)",
        describe_bytes(max)
    )
}

/// `16 MB` for whole MiBs, else bytes: how sizes are named in messages.
pub(crate) fn describe_bytes(bytes: usize) -> String {
    const MB: usize = 1024 * 1024;
    if bytes >= MB && bytes.is_multiple_of(MB) {
        format!("{} MB", bytes / MB)
    } else {
        format!("{bytes} bytes")
    }
}

/// `1.5s`, `60s`, `100ms`: how limits are named in messages.
pub(crate) fn describe_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn sizes_are_those_of_the_json_text_and_stop_past_the_limit() {
        let value = json!({"a": "x\u{0}y", "b": [1, 2.5, null]});
        let text = serde_json::to_string(&value).unwrap();
        assert_eq!(json_size_within(&value, usize::MAX), text.len());
        assert_eq!(json_size_within(&value, text.len()), text.len());
        assert!(json_size_within(&value, text.len() - 1) > text.len() - 1);
        // Nothing is built: a large string is counted, not copied.
        let big = json!({"s": "x".repeat(10_000_000)});
        assert!(json_size_within(&big, 1024) > 1024);
    }

    #[test]
    fn messages_name_the_setting() {
        assert_eq!(
            node_output_too_large(1 << 20),
            "Node output is larger than 1 MB (LLMOPS_MAX_NODE_OUTPUT_BYTES)"
        );
        assert_eq!(
            report_too_large(1000),
            "Run report would be larger than 1000 bytes (LLMOPS_MAX_REPORT_BYTES)"
        );
    }
}
