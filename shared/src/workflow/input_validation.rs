//! Start-input validation against the start node's output schema (spec 3, `JSONSchemaValidator`).
//!
//! Validation stops at the first error, like the reference; paths read `root`, `AA`, `CC.CE`,
//! `CC.CF[0]`.

use serde_json::{Map, Value};

use super::js;

const ROOT: &str = "root";

/// Validate `value` against `schema`; `Err` holds the message without the
/// `JSON Schema validation failed: ` prefix.
pub fn validate_value(value: &Value, schema: &Value) -> Result<(), String> {
    validate(Some(value), schema, ROOT)
}

fn child_path(path: &str, key: &str) -> String {
    if path == ROOT {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn validate(value: Option<&Value>, schema: &Value, path: &str) -> Result<(), String> {
    if js::is_truthy(schema.get("$ref")) {
        // The reference has no `$ref` resolution and lets such values through.
        return Ok(());
    }
    if let Some(Value::Array(options)) = schema.get("enum")
        && !options.is_empty()
        && !options.iter().any(|o| js::strict_equals(Some(o), value))
    {
        let listed: Vec<String> = options
            .iter()
            .map(|o| {
                if o.is_null() {
                    String::new()
                } else {
                    js::to_js_string(Some(o)).into_owned()
                }
            })
            .collect();
        return Err(format!(
            "Value at {path} must be one of: {}, but got: {}",
            listed.join(", "),
            js::json_stringify(value)
        ));
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("boolean") => expect_typeof(value, "boolean", path),
        Some("string") => expect_typeof(value, "string", path),
        Some("integer") => match value {
            Some(Value::Number(n)) if super::types::is_integer(n) => Ok(()),
            _ => Err(format!(
                "Expected integer at {path}, but got: {}",
                js::json_stringify(value)
            )),
        },
        Some("number") => match value {
            Some(Value::Number(_)) => Ok(()),
            _ => Err(format!(
                "Expected number at {path}, but got: {}",
                js::json_stringify(value)
            )),
        },
        Some("object") => validate_object(value, schema, path),
        Some("array") => validate_array(value, schema, path),
        Some("map") => validate_map(value, schema, path),
        _ => Err(format!(
            "Unknown type \"{}\" at {path}",
            js::to_js_string(schema.get("type"))
        )),
    }
}

fn expect_typeof(value: Option<&Value>, expected: &str, path: &str) -> Result<(), String> {
    let actual = js::type_of(value);
    if actual == expected {
        Ok(())
    } else {
        Err(format!("Expected {expected} at {path}, but got: {actual}"))
    }
}

/// The object-ness check shared by `object` and `map`.
fn as_object<'v>(
    value: Option<&'v Value>,
    kind: &str,
    path: &str,
) -> Result<&'v Map<String, Value>, String> {
    match value {
        Some(Value::Object(map)) => Ok(map),
        None => Err(format!("Expected {kind} at {path}, but got: undefined")),
        Some(Value::Null) => Err(format!("Expected {kind} at {path}, but got: null")),
        Some(Value::Array(_)) => Err(format!("Expected {kind} at {path}, but got: array")),
        Some(other) => Err(format!(
            "Expected {kind} at {path}, but got: {}",
            js::type_of(Some(other))
        )),
    }
}

fn validate_object(value: Option<&Value>, schema: &Value, path: &str) -> Result<(), String> {
    let object = as_object(value, "object", path)?;
    if let Some(Value::Array(required)) = schema.get("required") {
        for name in required {
            let name = js::to_js_string(Some(name));
            if !object.contains_key(name.as_ref()) {
                return Err(format!("Missing required property \"{name}\" at {path}"));
            }
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    if let Some(properties) = properties {
        for (name, property_schema) in properties {
            if let Some(property) = object.get(name) {
                validate(Some(property), property_schema, &child_path(path, name))?;
            }
        }
    }
    if let Some(additional) = schema.get("additionalProperties")
        && js::is_truthy(Some(additional))
    {
        for (name, property) in object {
            if properties.is_some_and(|p| p.contains_key(name)) {
                continue;
            }
            validate(Some(property), additional, &child_path(path, name))?;
        }
    }
    Ok(())
}

fn validate_array(value: Option<&Value>, schema: &Value, path: &str) -> Result<(), String> {
    let Some(Value::Array(items)) = value else {
        return Err(format!(
            "Expected array at {path}, but got: {}",
            js::type_of(value)
        ));
    };
    if let Some(item_schema) = schema.get("items")
        && js::is_truthy(Some(item_schema))
    {
        for (i, item) in items.iter().enumerate() {
            validate(Some(item), item_schema, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

fn validate_map(value: Option<&Value>, schema: &Value, path: &str) -> Result<(), String> {
    let object = as_object(value, "map", path)?;
    if let Some(additional) = schema.get("additionalProperties")
        && js::is_truthy(Some(additional))
    {
        for (name, item) in object {
            validate(Some(item), additional, &child_path(path, name))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "AA": {"type": "string"},
                "BB": {"type": "integer"},
                "CC": {"type": "object", "properties": {
                    "CE": {"type": "object", "properties": {"CEA": {"type": "string"}}, "required": ["CEA"]},
                    "CF": {"type": "array", "items": {"type": "string"}}
                }},
                "DD": {"type": "array", "items": {"type": "object", "properties": {"DA": {"type": "string"}}}},
                "EN": {"type": "string", "enum": ["a", "b"]},
                "MM": {"type": "map", "additionalProperties": {"type": "number"}},
                "NN": {"type": "number"},
                "DT": {"type": "date-time"},
                "BO": {"type": "boolean"}
            },
            "required": ["AA"]
        })
    }

    fn check(inputs: Value) -> Result<(), String> {
        validate_value(&inputs, &schema())
    }

    #[test]
    fn valid_inputs_pass_and_extra_keys_are_allowed() {
        assert_eq!(
            check(json!({"AA": "x", "BB": 5.0, "extra": 1, "DD": [{"DA": "s"}]})),
            Ok(())
        );
    }

    #[test]
    fn each_message_form_matches_the_reference() {
        let cases = [
            (json!({}), "Missing required property \"AA\" at root"),
            (json!({"AA": 123}), "Expected string at AA, but got: number"),
            (
                json!({"AA": "x", "BB": "test-string"}),
                "Expected integer at BB, but got: \"test-string\"",
            ),
            (
                json!({"AA": "x", "BB": 1.5}),
                "Expected integer at BB, but got: 1.5",
            ),
            (
                json!({"AA": "x", "CC": {"CE": {}}}),
                "Missing required property \"CEA\" at CC.CE",
            ),
            (
                json!({"AA": "x", "CC": {"CF": [1, 2]}}),
                "Expected string at CC.CF[0], but got: number",
            ),
            (
                json!({"AA": "x", "DD": "not an array"}),
                "Expected array at DD, but got: string",
            ),
            (
                json!({"AA": "x", "DD": null}),
                "Expected array at DD, but got: object",
            ),
            (
                json!({"AA": "x", "DD": [{"DA": 1}]}),
                "Expected string at DD[0].DA, but got: number",
            ),
            (
                json!({"AA": "x", "CC": null}),
                "Expected object at CC, but got: null",
            ),
            (
                json!({"AA": "x", "CC": []}),
                "Expected object at CC, but got: array",
            ),
            (
                json!({"AA": "x", "CC": "s"}),
                "Expected object at CC, but got: string",
            ),
            (
                json!({"AA": "x", "EN": "c"}),
                "Value at EN must be one of: a, b, but got: \"c\"",
            ),
            (
                json!({"AA": "x", "MM": []}),
                "Expected map at MM, but got: array",
            ),
            (
                json!({"AA": "x", "MM": {"k": "v"}}),
                "Expected number at MM.k, but got: \"v\"",
            ),
            (
                json!({"AA": "x", "DT": "2000-01-01T00:00:00.000Z"}),
                "Unknown type \"date-time\" at DT",
            ),
            (
                json!({"AA": "x", "BO": "true"}),
                "Expected boolean at BO, but got: string",
            ),
        ];
        for (inputs, expected) in cases {
            assert_eq!(check(inputs.clone()), Err(expected.to_string()), "{inputs}");
        }
    }

    #[test]
    fn refs_are_not_resolved_and_pass() {
        let schema = json!({"type": "object", "properties": {"a": {"$ref": "#/x"}}});
        assert_eq!(validate_value(&json!({"a": 1}), &schema), Ok(()));
    }

    #[test]
    fn a_schema_without_a_known_type_reports_it() {
        assert_eq!(
            validate_value(&json!({}), &json!({})),
            Err("Unknown type \"undefined\" at root".to_string())
        );
    }
}
