//! JavaScript value semantics the reference runtime gets for free from V8.
//!
//! The FlowGram runtime is written in TypeScript, so its observable behaviour leans on `String()`,
//! `Number.prototype.toString`, `JSON.stringify`, `typeof`, `===` and `new Date()`. Reproducing
//! those few rules here keeps templates, messages and condition results byte-identical.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

/// `Number.prototype.toString()` for a finite or non-finite double (ECMAScript `Number::toString`).
pub fn number_to_string(value: f64) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value == 0.0 {
        // `-0` prints as `0` in JavaScript.
        return "0".to_owned();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    // Rust's `{:e}` prints the shortest round-tripping digits, exactly the digits JS chooses.
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i32;
    let n = exponent + 1;

    let mut out = String::with_capacity(digits.len() + 8);
    if value < 0.0 {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        let e = n - 1;
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if e >= 0 { '+' } else { '-' });
        out.push_str(&e.abs().to_string());
    }
    out
}

/// `String(n)` for a JSON number; integers beyond 2^53 round like a JS double would.
pub fn json_number_to_string(number: &serde_json::Number) -> String {
    if let Some(i) = number.as_i64()
        && i.unsigned_abs() <= (1u64 << 53)
    {
        return i.to_string();
    }
    number_to_string(number.as_f64().unwrap_or(f64::NAN))
}

/// `String(value)`; `None` stands for `undefined`.
pub fn to_js_string(value: Option<&Value>) -> Cow<'_, str> {
    match value {
        None => Cow::Borrowed("undefined"),
        Some(Value::Null) => Cow::Borrowed("null"),
        Some(Value::Bool(b)) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Some(Value::Number(n)) => Cow::Owned(json_number_to_string(n)),
        Some(Value::String(s)) => Cow::Borrowed(s.as_str()),
        Some(Value::Array(items)) => Cow::Owned(array_join(items)),
        Some(Value::Object(_)) => Cow::Borrowed("[object Object]"),
    }
}

/// `Array.prototype.join(',')`: null and undefined elements render as empty strings.
fn array_join(items: &[Value]) -> String {
    let mut out = String::new();
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if !item.is_null() {
            out.push_str(&to_js_string(Some(item)));
        }
    }
    out
}

/// `typeof value`; `None` stands for `undefined` (note `typeof null === 'object'`).
pub fn type_of(value: Option<&Value>) -> &'static str {
    match value {
        None => "undefined",
        Some(Value::Bool(_)) => "boolean",
        Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Null | Value::Array(_) | Value::Object(_)) => "object",
    }
}

/// `JSON.stringify(value)`; `None` (undefined) stringifies to the text `undefined`.
pub fn json_stringify(value: Option<&Value>) -> String {
    let mut out = String::new();
    match value {
        None => out.push_str("undefined"),
        Some(v) => write_json(&mut out, v),
    }
    out
}

fn write_json(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&json_number_to_string(n)),
        Value::String(s) => write_json_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, key);
                out.push(':');
                write_json(out, item);
            }
            out.push('}');
        }
    }
}

fn write_json_string(out: &mut String, s: &str) {
    // serde_json escapes exactly the characters JSON.stringify escapes for valid UTF-8 text.
    match serde_json::to_string(s) {
        Ok(quoted) => out.push_str(&quoted),
        Err(_) => out.push_str("\"\""),
    }
}

/// JavaScript truthiness.
pub fn is_truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0 && !f.is_nan()),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(_) | Value::Object(_)) => true,
    }
}

/// `lodash.isNil`.
pub fn is_nil(value: Option<&Value>) -> bool {
    matches!(value, None | Some(Value::Null))
}

/// `String.prototype.trim`: Unicode white space plus the BOM, which Rust does not count as white space.
pub fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}')
}

/// `Number(value)` (ToNumber).
pub fn to_number(value: Option<&Value>) -> f64 {
    match value {
        None => f64::NAN,
        Some(Value::Null) => 0.0,
        Some(Value::Bool(b)) => f64::from(u8::from(*b)),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
        Some(Value::String(s)) => string_to_number(s),
        Some(Value::Array(items)) => match items.as_slice() {
            [] => 0.0,
            [only] => to_number(Some(only)),
            _ => f64::NAN,
        },
        Some(Value::Object(_)) => f64::NAN,
    }
}

fn string_to_number(s: &str) -> f64 {
    let t = trim(s);
    if t.is_empty() {
        return 0.0;
    }
    let radix = |prefix: &[&str], radix: u32| -> Option<f64> {
        let lower = t.get(..2)?.to_ascii_lowercase();
        if prefix.contains(&lower.as_str()) {
            return Some(
                u64::from_str_radix(&t[2..], radix)
                    .map(|v| v as f64)
                    .unwrap_or(f64::NAN),
            );
        }
        None
    };
    if let Some(v) = radix(&["0x"], 16)
        .or_else(|| radix(&["0o"], 8))
        .or_else(|| radix(&["0b"], 2))
    {
        return v;
    }
    match t {
        "Infinity" | "+Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    // Rust accepts "inf"/"nan" spellings that JavaScript does not.
    if t.chars()
        .any(|c| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')))
    {
        return f64::NAN;
    }
    t.parse::<f64>().unwrap_or(f64::NAN)
}

/// `a === b` for JSON values; distinct arrays and objects are never identical.
pub fn strict_equals(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(Value::Null), Some(Value::Null)) => true,
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x == y,
        (Some(Value::Number(x)), Some(Value::Number(y))) => x.as_f64() == y.as_f64(),
        (Some(Value::String(x)), Some(Value::String(y))) => x == y,
        _ => false,
    }
}

/// The abstract relational comparison behind `<`, `>`, `<=`, `>=`: two strings compare by UTF-16
/// code units, anything else numerically; `None` means a NaN was involved, so every operator is false.
pub fn compare(a: Option<&Value>, b: Option<&Value>) -> Option<Ordering> {
    if let (Some(Value::String(x)), Some(Value::String(y))) = (a, b) {
        return Some(x.encode_utf16().cmp(y.encode_utf16()));
    }
    let (x, y) = (to_number(a), to_number(b));
    x.partial_cmp(&y)
}

/// `new Date(value).getTime()`: milliseconds since the epoch, `None` for an invalid date.
pub fn date_time_ms(value: Option<&Value>) -> Option<f64> {
    match value {
        Some(Value::Number(n)) => n.as_f64().filter(|f| f.is_finite()),
        Some(Value::String(s)) => parse_date_string(trim(s)),
        Some(Value::Null) => Some(0.0),
        _ => None,
    }
}

fn parse_date_string(s: &str) -> Option<f64> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_millis() as f64);
    }
    // Date-only forms are UTC in JavaScript; date-time forms without an offset are local time,
    // which on a server is UTC.
    if let Ok(date) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return date
            .and_hms_opt(0, 0, 0)
            .map(|dt| dt.and_utc().timestamp_millis() as f64);
    }
    let without_z = s.strip_suffix('Z').unwrap_or(s);
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(without_z, format) {
            return Some(dt.and_utc().timestamp_millis() as f64);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_format_like_javascript() {
        let cases = [
            (0.5, "0.5"),
            (1.0, "1"),
            (-0.0, "0"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123.123, "123.123"),
            (0.000001, "0.000001"),
            (0.0000001, "1e-7"),
            (1.5e-7, "1.5e-7"),
            (-2.5, "-2.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (9007199254740993.0, "9007199254740992"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
        ];
        for (value, expected) in cases {
            assert_eq!(number_to_string(value), expected, "formatting {value:?}");
        }
    }

    #[test]
    fn json_integers_beyond_two_to_the_53_round_like_doubles() {
        let n: serde_json::Number = serde_json::from_str("12345678901234567890").unwrap();
        assert_eq!(json_number_to_string(&n), "12345678901234567000");
        let n: serde_json::Number = serde_json::from_str("42").unwrap();
        assert_eq!(json_number_to_string(&n), "42");
    }

    #[test]
    fn string_conversion_follows_javascript_string() {
        assert_eq!(to_js_string(None), "undefined");
        assert_eq!(to_js_string(Some(&json!(null))), "null");
        assert_eq!(to_js_string(Some(&json!({"a": 1}))), "[object Object]");
        assert_eq!(
            to_js_string(Some(&json!([1, "a", null, [2, 3], {"b": 1}]))),
            "1,a,,2,3,[object Object]"
        );
        assert_eq!(to_js_string(Some(&json!(true))), "true");
        assert_eq!(to_js_string(Some(&json!(2.50))), "2.5");
    }

    #[test]
    fn json_stringify_uses_javascript_number_format() {
        assert_eq!(
            json_stringify(Some(&json!({"a": 1.0, "b": [1e21, "x\"y"], "c": null}))),
            r#"{"a":1,"b":[1e+21,"x\"y"],"c":null}"#
        );
        assert_eq!(json_stringify(None), "undefined");
    }

    #[test]
    fn typeof_reports_object_for_null_and_arrays() {
        assert_eq!(type_of(Some(&json!(null))), "object");
        assert_eq!(type_of(Some(&json!([]))), "object");
        assert_eq!(type_of(Some(&json!("s"))), "string");
        assert_eq!(type_of(None), "undefined");
    }

    #[test]
    fn to_number_parses_strings_like_javascript() {
        assert_eq!(to_number(Some(&json!(" 12 "))), 12.0);
        assert_eq!(to_number(Some(&json!(""))), 0.0);
        assert_eq!(to_number(Some(&json!("0x10"))), 16.0);
        assert!(to_number(Some(&json!("inf"))).is_nan());
        assert!(to_number(Some(&json!("abc"))).is_nan());
        assert_eq!(to_number(Some(&json!(true))), 1.0);
    }

    #[test]
    fn comparison_of_two_strings_is_lexicographic() {
        assert_eq!(
            compare(Some(&json!("10")), Some(&json!("9"))),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare(Some(&json!(10)), Some(&json!("9"))),
            Some(Ordering::Greater)
        );
        assert_eq!(compare(Some(&json!(1)), Some(&json!("x"))), None);
    }

    #[test]
    fn dates_parse_to_epoch_milliseconds() {
        assert_eq!(
            date_time_ms(Some(&json!("2000-01-01T00:00:00.000Z"))),
            Some(946_684_800_000.0)
        );
        assert_eq!(
            date_time_ms(Some(&json!("2000-01-01"))),
            Some(946_684_800_000.0)
        );
        assert_eq!(date_time_ms(Some(&json!("not a date"))), None);
    }
}
