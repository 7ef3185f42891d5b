//! Workflow variable types (`WorkflowVariableType`) and the reference's type inference.

use std::fmt;

use serde_json::Value;

/// A variable type as declared in a JSON schema `type` or inferred from a value.
///
/// Declared types are free text in the schema; unknown ones are kept verbatim in `Other` so that
/// comparisons behave like the reference's string `===`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum VarType {
    String,
    Integer,
    Number,
    Boolean,
    Object,
    Array,
    Map,
    DateTime,
    Null,
    Other(Box<str>),
}

impl VarType {
    pub fn parse(name: &str) -> VarType {
        match name {
            "string" => VarType::String,
            "integer" => VarType::Integer,
            "number" => VarType::Number,
            "boolean" => VarType::Boolean,
            "object" => VarType::Object,
            "array" => VarType::Array,
            "map" => VarType::Map,
            "date-time" => VarType::DateTime,
            "null" => VarType::Null,
            other => VarType::Other(other.into()),
        }
    }

    /// The declared type of a JSON-schema fragment (`{"type": ...}`); `None` when absent.
    pub fn declared_in(schema: Option<&Value>) -> Option<VarType> {
        match schema?.get("type")? {
            Value::Null => None,
            Value::String(s) => Some(VarType::parse(s)),
            // A non-string type never equals an inferred type; keep its JSON text for messages.
            other => Some(VarType::Other(other.to_string().into())),
        }
    }

    /// The `items.type` of an array schema fragment.
    pub fn declared_items_in(schema: Option<&Value>) -> Option<VarType> {
        VarType::declared_in(schema?.get("items"))
    }

    pub fn as_str(&self) -> &str {
        match self {
            VarType::String => "string",
            VarType::Integer => "integer",
            VarType::Number => "number",
            VarType::Boolean => "boolean",
            VarType::Object => "object",
            VarType::Array => "array",
            VarType::Map => "map",
            VarType::DateTime => "date-time",
            VarType::Null => "null",
            VarType::Other(s) => s,
        }
    }

    /// `getWorkflowType`: `None` (undefined) and `null` are `null`, ISO date-time strings are
    /// `date-time`, whole numbers are `integer`, objects are never `map`.
    pub fn infer(value: Option<&Value>) -> VarType {
        match value {
            None | Some(Value::Null) => VarType::Null,
            Some(Value::String(s)) if is_iso_date_time(s) => VarType::DateTime,
            Some(Value::String(_)) => VarType::String,
            Some(Value::Bool(_)) => VarType::Boolean,
            Some(Value::Number(n)) => {
                if is_integer(n) {
                    VarType::Integer
                } else {
                    VarType::Number
                }
            }
            Some(Value::Array(_)) => VarType::Array,
            Some(Value::Object(_)) => VarType::Object,
        }
    }

    /// `isTypeEqual`: `number` and `integer` are interchangeable, everything else must match.
    pub fn is_equal(left: Option<&VarType>, right: Option<&VarType>) -> bool {
        use VarType::{Integer, Number};
        match (left, right) {
            (Some(Number | Integer), Some(Number | Integer)) => true,
            (l, r) => l == r,
        }
    }

    /// The text JavaScript would print for a possibly-undefined type.
    pub fn display(ty: Option<&VarType>) -> &str {
        ty.map_or("undefined", VarType::as_str)
    }
}

impl fmt::Display for VarType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `Number.isInteger` on a JSON number.
pub fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64()
        || n.is_u64()
        || n.as_f64()
            .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
}

/// `^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?Z?$` and a real calendar date.
pub fn is_iso_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    if b.len() < 19 {
        return false;
    }
    let shape = digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19);
    if !shape {
        return false;
    }
    let rest = &b[19..];
    let rest = match rest {
        [b'.', a, b2, c, tail @ ..] if [a, b2, c].iter().all(|d| d.is_ascii_digit()) => tail,
        other => other,
    };
    if !(rest.is_empty() || rest == b"Z") {
        return false;
    }
    let core = &s[..19];
    chrono::NaiveDateTime::parse_from_str(core, "%Y-%m-%dT%H:%M:%S").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inference_follows_get_workflow_type() {
        let cases = [
            (json!(null), VarType::Null),
            (json!("text"), VarType::String),
            (json!("2000-01-01T00:00:00.000Z"), VarType::DateTime),
            (json!("2000-01-01T00:00:00"), VarType::DateTime),
            (json!("2000-13-01T00:00:00Z"), VarType::String),
            (json!("2000-01-01"), VarType::String),
            (json!(true), VarType::Boolean),
            (json!(3), VarType::Integer),
            (json!(3.0), VarType::Integer),
            (json!(3.5), VarType::Number),
            (json!([1]), VarType::Array),
            (json!({"a": 1}), VarType::Object),
        ];
        for (value, expected) in cases {
            assert_eq!(VarType::infer(Some(&value)), expected, "inferring {value}");
        }
        assert_eq!(VarType::infer(None), VarType::Null);
    }

    #[test]
    fn number_and_integer_are_equal_types() {
        assert!(VarType::is_equal(
            Some(&VarType::Number),
            Some(&VarType::Integer)
        ));
        assert!(!VarType::is_equal(
            Some(&VarType::String),
            Some(&VarType::DateTime)
        ));
        assert!(!VarType::is_equal(Some(&VarType::String), None));
        assert!(VarType::is_equal(None, None));
    }

    #[test]
    fn declared_types_are_read_from_schema_fragments() {
        let schema = json!({"type": "array", "items": {"type": "string"}});
        assert_eq!(VarType::declared_in(Some(&schema)), Some(VarType::Array));
        assert_eq!(
            VarType::declared_items_in(Some(&schema)),
            Some(VarType::String)
        );
        assert_eq!(VarType::declared_in(Some(&json!({}))), None);
        assert_eq!(
            VarType::declared_in(Some(&json!({"type": "file"}))),
            Some(VarType::Other("file".into()))
        );
    }
}
