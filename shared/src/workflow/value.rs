//! Flow values (`IFlowValue`): `constant`, `ref`, `template` and the unsupported `expression`.
//!
//! Values are parsed once, when the schema is compiled, so a run never re-reads schema JSON: a
//! template is split into literal text and reference paths, and a constant whose declared type is
//! known up front is decoded ahead of time.

use serde_json::Value;

use super::js;
use super::types::VarType;

/// A value resolved at run time: the reference's `IVariableParseResult`.
///
/// `value == None` is JavaScript's `undefined` (for example a missing path), which is distinct
/// from a stored `null`.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    pub value: Option<Value>,
    pub ty: Option<VarType>,
    pub items_ty: Option<VarType>,
}

/// One `IFlowValue` from a schema.
#[derive(Clone, Debug, PartialEq)]
pub enum FlowValue {
    /// `{type:'constant', content}`; `None` when the content is missing.
    Constant(Option<Value>),
    /// `{type:'ref', content:[nodeID, key, ...path]}`; the path as strings.
    Ref(Vec<String>),
    /// `{type:'template', content}`; `None` when the content is empty.
    Template(Option<Template>),
    /// `{type:'expression'}`: the reference cannot evaluate these either.
    Expression,
    /// Any other `type` string.
    Unknown(String),
    /// No usable `type` at all: the reference's `Invalid flow value type: undefined`.
    Untyped(String),
}

impl FlowValue {
    /// Read a flow value from schema JSON without failing; errors surface when it is used.
    pub fn from_json(value: &Value) -> FlowValue {
        let Some(object) = value.as_object() else {
            return FlowValue::Untyped("undefined".to_owned());
        };
        let ty = object.get("type");
        if !js::is_truthy(ty) {
            return FlowValue::Untyped(js::to_js_string(ty).into_owned());
        }
        match ty.and_then(Value::as_str) {
            Some("constant") => FlowValue::Constant(object.get("content").cloned()),
            Some("ref") => FlowValue::Ref(ref_path(object.get("content"))),
            Some("template") => FlowValue::Template(match object.get("content") {
                Some(Value::String(s)) if !s.is_empty() => Some(Template::parse(s)),
                Some(other @ (Value::Number(_) | Value::Bool(_))) if js::is_truthy(Some(other)) => {
                    Some(Template::parse(&js::to_js_string(Some(other))))
                }
                _ => None,
            }),
            Some("expression") => FlowValue::Expression,
            _ => FlowValue::Unknown(js::to_js_string(ty).into_owned()),
        }
    }

    /// The reference's error for value kinds it cannot evaluate, if this is one.
    pub fn unsupported_error(&self) -> Option<String> {
        match self {
            FlowValue::Expression => Some("Unknown flow value type: expression".to_owned()),
            FlowValue::Unknown(t) => Some(format!("Unknown flow value type: {t}")),
            FlowValue::Untyped(t) => Some(format!("Invalid flow value type: {t}")),
            _ => None,
        }
    }
}

/// The path of a `ref` value; elements that are not strings are converted like JS would.
pub fn ref_path(content: Option<&Value>) -> Vec<String> {
    match content {
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| js::to_js_string(Some(item)).into_owned())
            .collect(),
        _ => Vec::new(),
    }
}

/// `parseJSONContent` + the constant branch of `parseFlowValue`: object, array and map constants
/// given as strings are JSON-decoded (kept raw if that fails); a constant takes the declared type,
/// or the inferred one when nothing is declared. `None` when the content is nil.
pub fn parse_constant(content: Option<&Value>, declared: Option<&VarType>) -> Option<Resolved> {
    let value = decode_json_content(content?, declared);
    if value.is_null() {
        return None;
    }
    let ty = declared
        .cloned()
        .unwrap_or_else(|| VarType::infer(Some(&value)));
    Some(Resolved {
        value: Some(value),
        ty: Some(ty),
        items_ty: None,
    })
}

/// `parseJSONContent`: decode a string when the declared type is object, array or map.
pub fn decode_json_content(content: &Value, declared: Option<&VarType>) -> Value {
    match (declared, content) {
        (Some(VarType::Object | VarType::Array | VarType::Map), Value::String(s)) => {
            serde_json::from_str(s).unwrap_or_else(|_| content.clone())
        }
        _ => content.clone(),
    }
}

/// A template split at its `{{ ... }}` references.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    parts: Vec<TemplatePart>,
}

#[derive(Clone, Debug, PartialEq)]
enum TemplatePart {
    Text(String),
    Ref(Vec<String>),
}

impl Template {
    /// Split like `/\{\{([^\}]+)\}\}/g`: each match is trimmed and split on `.` into a ref path.
    pub fn parse(source: &str) -> Template {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            let after = &rest[open + 2..];
            let inner_len = after.find('}').unwrap_or(after.len());
            if inner_len > 0 && after[inner_len..].starts_with("}}") {
                text.push_str(&rest[..open]);
                if !text.is_empty() {
                    parts.push(TemplatePart::Text(std::mem::take(&mut text)));
                }
                let inner = &after[..inner_len];
                parts.push(TemplatePart::Ref(
                    js::trim(inner).split('.').map(str::to_owned).collect(),
                ));
                rest = &after[inner_len + 2..];
            } else {
                // No match at this `{{`; the regex retries one character later.
                text.push_str(&rest[..open + 1]);
                rest = &rest[open + 1..];
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(TemplatePart::Text(text));
        }
        Template { parts }
    }

    /// Render with a resolver that appends the `String()` of a reference, or nothing when the
    /// reference does not resolve.
    pub fn render(&self, mut resolve: impl FnMut(&[String], &mut String)) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Text(t) => out.push_str(t),
                TemplatePart::Ref(path) => resolve(path, &mut out),
            }
        }
        out
    }
}

/// `lodash.get(value, path)` for JSON: object keys, array indices and `length`, string indices
/// and `length` (in UTF-16 units, as JavaScript counts).
pub fn get_path(value: &Value, path: &[String]) -> Option<Value> {
    let mut current = std::borrow::Cow::Borrowed(value);
    for key in path {
        let next = match current.as_ref() {
            Value::Object(map) => map.get(key.as_str()).cloned(),
            Value::Array(items) => {
                if key == "length" {
                    Some(Value::from(items.len()))
                } else {
                    array_index(key).and_then(|i| items.get(i).cloned())
                }
            }
            Value::String(s) => {
                if key == "length" {
                    Some(Value::from(s.encode_utf16().count()))
                } else {
                    array_index(key).and_then(|i| {
                        let unit = *s.encode_utf16().collect::<Vec<_>>().get(i)?;
                        Some(Value::String(String::from_utf16_lossy(&[unit])))
                    })
                }
            }
            _ => None,
        };
        current = std::borrow::Cow::Owned(next?);
    }
    Some(current.into_owned())
}

/// A canonical array index (`"0"`, `"12"`, not `"01"` or `"+1"`).
fn array_index(key: &str) -> Option<usize> {
    if key.is_empty() || (key.len() > 1 && key.starts_with('0')) {
        return None;
    }
    if !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    key.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render_with(template: &str, values: &[(&str, &str)]) -> String {
        Template::parse(template).render(|path, out| {
            let joined = path.join(".");
            if let Some((_, v)) = values.iter().find(|(k, _)| *k == joined) {
                out.push_str(v);
            }
        })
    }

    #[test]
    fn templates_replace_each_reference_and_keep_the_text() {
        let out = render_with(
            "<Role>{{start_0.work.role}}</Role> {{ start_0.x }}!",
            &[("start_0.work.role", "Chat"), ("start_0.x", "1")],
        );
        assert_eq!(out, "<Role>Chat</Role> 1!");
    }

    #[test]
    fn templates_render_unresolved_references_as_empty_text() {
        assert_eq!(render_with("a{{missing.key}}b", &[]), "ab");
    }

    #[test]
    fn templates_without_a_closing_pair_stay_literal() {
        assert_eq!(render_with("a {{b} c }} {{}}", &[]), "a {{b} c }} {{}}");
        assert_eq!(render_with("{{{x.y}}", &[("{x.y", "V")]), "V");
    }

    #[test]
    fn flow_values_parse_each_kind() {
        assert_eq!(
            FlowValue::from_json(&json!({"type": "constant", "content": 1})),
            FlowValue::Constant(Some(json!(1)))
        );
        assert_eq!(
            FlowValue::from_json(&json!({"type": "ref", "content": ["a", "b"]})),
            FlowValue::Ref(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            FlowValue::from_json(&json!({"type": "template", "content": ""})),
            FlowValue::Template(None)
        );
        assert_eq!(
            FlowValue::from_json(&json!({"type": "expression", "content": "1+1"}))
                .unsupported_error()
                .as_deref(),
            Some("Unknown flow value type: expression")
        );
        assert_eq!(
            FlowValue::from_json(&json!({"content": 1}))
                .unsupported_error()
                .as_deref(),
            Some("Invalid flow value type: undefined")
        );
    }

    #[test]
    fn constants_take_the_declared_type_and_decode_json_strings() {
        let object = parse_constant(Some(&json!("{\"k\": 1}")), Some(&VarType::Object)).unwrap();
        assert_eq!(object.value, Some(json!({"k": 1})));
        assert_eq!(object.ty, Some(VarType::Object));

        let raw = parse_constant(Some(&json!("not json")), Some(&VarType::Array)).unwrap();
        assert_eq!(raw.value, Some(json!("not json")));
        assert_eq!(raw.ty, Some(VarType::Array));

        let inferred = parse_constant(Some(&json!(1.5)), None).unwrap();
        assert_eq!(inferred.ty, Some(VarType::Number));

        assert_eq!(parse_constant(None, Some(&VarType::String)), None);
        assert_eq!(
            parse_constant(Some(&json!(null)), Some(&VarType::String)),
            None
        );
    }

    #[test]
    fn paths_walk_objects_arrays_and_strings() {
        let v = json!({"a": {"b": [10, 20]}, "s": "héllo"});
        let p = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(get_path(&v, &p(&["a", "b", "1"])), Some(json!(20)));
        assert_eq!(get_path(&v, &p(&["a", "b", "length"])), Some(json!(2)));
        assert_eq!(get_path(&v, &p(&["a", "b", "01"])), None);
        assert_eq!(get_path(&v, &p(&["s", "length"])), Some(json!(5)));
        assert_eq!(get_path(&v, &p(&["s", "1"])), Some(json!("é")));
        assert_eq!(get_path(&v, &p(&["a", "missing", "x"])), None);
    }
}
