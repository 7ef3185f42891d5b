//! Schema parsing + validation, start-input validation and template rendering must never panic,
//! whatever the bytes.
//!
//! The input is up to three NUL-separated parts: a schema, inputs (or a start-output JSON
//! schema) and more inputs. Run with
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run schema fuzz/seeds -- -max_total_time=600` from the repo root.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};
use shared::workflow::{parse_schema, render_template, validate_inputs};

fn object(text: Option<&str>) -> Map<String, Value> {
    match text.and_then(|t| serde_json::from_str::<Value>(t).ok()) {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(3, '\0');
    let (first, second, third) = (parts.next().unwrap_or(""), parts.next(), parts.next());

    // 1. The four validators, the document build and start-input validation.
    if let Ok(schema) = parse_schema(first) {
        let _ = validate_inputs(&schema, &object(second));
        let _ = serde_json::to_string(&schema);
    }

    // 2. An arbitrary JSON schema as the start node's outputs, against arbitrary inputs.
    if let Some(outputs) = second.and_then(|t| serde_json::from_str::<Value>(t).ok()) {
        let wrapped = json!({
            "nodes": [
                {"id": "start_0", "type": "start", "meta": {}, "data": {"outputs": outputs}},
                {"id": "end_0", "type": "end", "meta": {}, "data": {}}
            ],
            "edges": []
        });
        if let Ok(schema) = parse_schema(&wrapped.to_string()) {
            let _ = validate_inputs(&schema, &object(third));
        }
    }

    // 3. Templates, with variables taken from the inputs so that ref paths resolve.
    let mut variables = Map::new();
    variables.insert("n".into(), Value::Object(object(second)));
    variables.insert("start_0".into(), Value::Object(object(third)));
    let _ = render_template(first, &variables);
    if let Some(second) = second {
        let _ = render_template(second, &variables);
    }
});
