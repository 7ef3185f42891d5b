//! `condition`: picks the output port of the first true condition, or `else` (spec 2.1).

use async_trait::async_trait;
use serde_json::Value;

use crate::workflow::executor::{NodeContext, NodeExecutor, NodeOutput};
use crate::workflow::js;
use crate::workflow::node_error::NodeError;
use crate::workflow::scope::Scope;
use crate::workflow::types::VarType;
use crate::workflow::value::{self, FlowValue};

pub struct ConditionExecutor;

#[async_trait]
impl NodeExecutor for ConditionExecutor {
    async fn execute(&self, ctx: NodeContext<'_>) -> Result<NodeOutput, NodeError> {
        let items = match ctx.data().get("conditions") {
            Some(Value::Array(items)) => items,
            // Missing conditions: no branch, so every next node runs.
            other if !js::is_truthy(other) => return Ok(NodeOutput::empty()),
            _ => return Err("conditions.map is not a function".into()),
        };
        let scope = ctx.scope();
        // Like the reference: parse every item, then filter, then find the first true one.
        let parsed = items
            .iter()
            .map(|item| parse_condition(scope, item))
            .collect::<Result<Vec<_>, _>>()?;
        let mut kept = Vec::with_capacity(parsed.len());
        for condition in parsed {
            if check_condition(&condition)? {
                kept.push(condition);
            }
        }
        for condition in &kept {
            if evaluate(condition)? {
                return Ok(match &condition.key {
                    Some(key) => NodeOutput::empty().with_branch(key.clone()),
                    None => NodeOutput::empty(),
                });
            }
        }
        Ok(NodeOutput::empty().with_branch("else"))
    }
}

/// One parsed condition item.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    pub key: Option<String>,
    pub operator: String,
    pub left: Value,
    pub left_type: VarType,
    pub right: Value,
    pub right_type: VarType,
}

fn parse_condition(scope: &Scope<'_>, item: &Value) -> Result<Condition, NodeError> {
    let key = match item.get("key") {
        None | Some(Value::Null) => None,
        Some(k) => Some(js::to_js_string(Some(k)).into_owned()),
    };
    let value = item.get("value");
    let left = value.and_then(|v| v.get("left"));
    let operator = js::to_js_string(value.and_then(|v| v.get("operator"))).into_owned();
    let right = value.and_then(|v| v.get("right"));

    if left.and_then(|l| l.get("type")).and_then(Value::as_str) != Some("ref") {
        return Err(format!("Invalid ref value: {}", js::to_js_string(left)).into());
    }
    let parsed_left = scope.resolve_ref(&value::ref_path(left.and_then(|l| l.get("content"))));
    let (left_value, left_type) = match parsed_left {
        Some(r) => (
            r.value.unwrap_or(Value::Null),
            r.ty.unwrap_or(VarType::Null),
        ),
        None => (Value::Null, VarType::Null),
    };
    let rule_type = rule(&left_type, &operator).flatten();
    let parsed_right = match right {
        Some(right) if js::is_truthy(Some(right)) => {
            scope.parse_flow_value(&FlowValue::from_json(right), rule_type.as_ref())?
        }
        _ => None,
    };
    let (right_value, right_type) = match parsed_right {
        Some(r) => (
            r.value.unwrap_or(Value::Null),
            r.ty.unwrap_or(VarType::Null),
        ),
        None => (Value::Null, VarType::Null),
    };
    Ok(Condition {
        key,
        operator,
        left: left_value,
        left_type,
        right: right_value,
        right_type,
    })
}

/// The rules table: `None` when the left type has no rules at all, `Some(None)` when it has no
/// rule for this operator, else the type the right side must have.
pub(crate) fn rule(left: &VarType, operator: &str) -> Option<Option<VarType>> {
    use VarType as T;
    let expected = match (left, operator) {
        (T::String, "eq" | "neq" | "contains" | "not_contains") => T::String,
        (T::String, "in" | "nin") => T::Array,
        (T::String, "is_empty" | "is_not_empty") => T::Null,
        (T::String, _) => return Some(None),
        (T::Number, "eq" | "neq" | "gt" | "gte" | "lt" | "lte") => T::Number,
        (T::Integer, "eq" | "neq" | "gt" | "gte" | "lt" | "lte") => T::Integer,
        (T::Number | T::Integer, "in" | "nin") => T::Array,
        (T::Number | T::Integer, "is_empty" | "is_not_empty") => T::Null,
        (T::Number | T::Integer, _) => return Some(None),
        (T::Boolean, "eq" | "neq") => T::Boolean,
        (T::Boolean, "is_true" | "is_false" | "is_empty" | "is_not_empty") => T::Null,
        (T::Boolean, "in" | "nin") => T::Array,
        (T::Boolean, _) => return Some(None),
        (T::Object | T::Map | T::Array, "is_empty" | "is_not_empty") => T::Null,
        (T::Object | T::Map | T::Array, _) => return Some(None),
        (T::DateTime, "eq" | "neq" | "gt" | "gte" | "lt" | "lte") => T::DateTime,
        (T::DateTime, "is_empty" | "is_not_empty") => T::Null,
        (T::DateTime, _) => return Some(None),
        (T::Null, "eq" | "is_empty" | "is_not_empty") => T::Null,
        (T::Null, _) => return Some(None),
        (T::Other(_), _) => return None,
    };
    Some(Some(expected))
}

/// `checkCondition`: errors for unsupported types and operators, `false` (drop) when the right
/// side's type does not fit the rule.
pub(crate) fn check_condition(condition: &Condition) -> Result<bool, NodeError> {
    let left = condition.left_type.as_str();
    let Some(rules) = rule(&condition.left_type, &condition.operator) else {
        return Err(format!("Condition left type \"{left}\" is not supported").into());
    };
    let Some(expected) = rules else {
        return Err(format!(
            "Condition left type \"{left}\" has no operator \"{}\"",
            condition.operator
        )
        .into());
    };
    Ok(VarType::is_equal(
        Some(&expected),
        Some(&condition.right_type),
    ))
}

/// The per-type handlers.
pub(crate) fn evaluate(condition: &Condition) -> Result<bool, NodeError> {
    use VarType as T;
    let (left, right) = (&condition.left, &condition.right);
    let nil = js::is_nil(Some(left));
    let op = condition.operator.as_str();
    let ordered =
        |f: fn(std::cmp::Ordering) -> bool| js::compare(Some(left), Some(right)).is_some_and(f);
    let result = match (&condition.left_type, op) {
        (_, "is_empty") => nil,
        (_, "is_not_empty") => !nil,
        (T::Null, "eq") => nil && right.is_null(),
        (T::DateTime, _) => {
            let l = js::date_time_ms(Some(left));
            let r = js::date_time_ms(Some(right));
            match (op, l, r) {
                ("neq", l, r) => !(l.is_some() && l == r),
                (_, Some(l), Some(r)) => match op {
                    "eq" => l == r,
                    "gt" => l > r,
                    "gte" => l >= r,
                    "lt" => l < r,
                    "lte" => l <= r,
                    _ => false,
                },
                _ => false,
            }
        }
        (_, "eq") => js::strict_equals(Some(left), Some(right)),
        (_, "neq") => !js::strict_equals(Some(left), Some(right)),
        (T::Number | T::Integer, "gt") => ordered(|o| o.is_gt()),
        (T::Number | T::Integer, "gte") => ordered(|o| o.is_ge()),
        (T::Number | T::Integer, "lt") => ordered(|o| o.is_lt()),
        (T::Number | T::Integer, "lte") => ordered(|o| o.is_le()),
        (T::String, "contains") => includes(left, right, "leftValue")?,
        (T::String, "not_contains") => !includes(left, right, "leftValue")?,
        (_, "in") => includes(right, left, "rightValue")?,
        (_, "nin") => !includes(right, left, "rightValue")?,
        (T::Boolean, "is_true") => left == &Value::Bool(true),
        (T::Boolean, "is_false") => left == &Value::Bool(false),
        _ => false,
    };
    Ok(result)
}

/// `container.includes(item)` for a string (substring) or an array (`===` membership).
fn includes(container: &Value, item: &Value, name: &str) -> Result<bool, NodeError> {
    match container {
        Value::String(s) => Ok(s.contains(js::to_js_string(Some(item)).as_ref())),
        Value::Array(items) => Ok(items
            .iter()
            .any(|element| js::strict_equals(Some(element), Some(item)))),
        _ => Err(format!("{name}.includes is not a function").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cond(
        left: Value,
        left_type: VarType,
        op: &str,
        right: Value,
        right_type: VarType,
    ) -> Condition {
        Condition {
            key: Some("if".into()),
            operator: op.into(),
            left,
            left_type,
            right,
            right_type,
        }
    }

    fn eval(left: Value, left_type: VarType, op: &str, right: Value) -> bool {
        let right_type = rule(&left_type, op).flatten().unwrap_or(VarType::Null);
        let c = cond(left, left_type, op, right, right_type);
        assert!(check_condition(&c).unwrap(), "rule check for {op}");
        evaluate(&c).unwrap()
    }

    #[test]
    fn eq_and_neq_use_strict_equality() {
        assert!(eval(json!(1), VarType::Integer, "eq", json!(1.0)));
        assert!(!eval(json!(1), VarType::Integer, "eq", json!("1")));
        assert!(eval(json!("a"), VarType::String, "neq", json!("b")));
        assert!(!eval(json!(true), VarType::Boolean, "neq", json!(true)));
    }

    #[test]
    fn numeric_comparisons_follow_javascript() {
        assert!(eval(json!(3), VarType::Number, "gt", json!(2)));
        assert!(eval(json!(2), VarType::Integer, "gte", json!(2)));
        assert!(eval(json!(1.5), VarType::Number, "lt", json!(2)));
        assert!(eval(json!(2), VarType::Integer, "lte", json!(2)));
        assert!(!eval(json!(2), VarType::Integer, "lt", json!(2)));
        assert!(eval(json!(10), VarType::Number, "gt", json!("9")));
        assert!(!eval(json!(1), VarType::Number, "gt", json!("abc")));
    }

    #[test]
    fn in_and_nin_check_membership_in_the_right_array() {
        assert!(eval(json!("b"), VarType::String, "in", json!(["a", "b"])));
        assert!(eval(json!(3), VarType::Integer, "nin", json!([1, 2])));
        assert!(eval(json!(true), VarType::Boolean, "in", json!([true])));
    }

    #[test]
    fn contains_and_not_contains_are_substring_checks() {
        assert!(eval(
            json!("hello world"),
            VarType::String,
            "contains",
            json!("lo w")
        ));
        assert!(eval(
            json!("hello"),
            VarType::String,
            "not_contains",
            json!("x")
        ));
    }

    #[test]
    fn is_empty_means_nil_only() {
        for (value, empty) in [
            (json!(""), false),
            (json!(" "), false),
            (json!("x"), false),
            (json!(null), true),
        ] {
            assert_eq!(
                eval(value.clone(), VarType::String, "is_empty", json!(null)),
                empty
            );
            assert_eq!(
                eval(value, VarType::String, "is_not_empty", json!(null)),
                !empty
            );
        }
        assert!(!eval(json!({}), VarType::Object, "is_empty", json!(null)));
        assert!(!eval(json!([]), VarType::Array, "is_empty", json!(null)));
        assert!(eval(json!({}), VarType::Map, "is_not_empty", json!(null)));
        assert!(eval(json!(null), VarType::Null, "is_empty", json!(null)));
        assert!(eval(
            json!(0),
            VarType::Integer,
            "is_not_empty",
            json!(null)
        ));
    }

    #[test]
    fn is_true_and_is_false_need_real_booleans() {
        assert!(eval(json!(true), VarType::Boolean, "is_true", json!(null)));
        assert!(eval(
            json!(false),
            VarType::Boolean,
            "is_false",
            json!(null)
        ));
        assert!(!eval(
            json!(false),
            VarType::Boolean,
            "is_true",
            json!(null)
        ));
    }

    #[test]
    fn date_times_compare_as_timestamps() {
        let a = json!("2000-01-01T00:00:00.000Z");
        let b = json!("2000-01-02T00:00:00Z");
        assert!(eval(a.clone(), VarType::DateTime, "lt", b.clone()));
        assert!(eval(b.clone(), VarType::DateTime, "gte", a.clone()));
        assert!(eval(
            a.clone(),
            VarType::DateTime,
            "eq",
            json!("2000-01-01T00:00:00Z")
        ));
        assert!(eval(a.clone(), VarType::DateTime, "neq", b));
        assert!(eval(a, VarType::DateTime, "neq", json!("garbage")));
    }

    #[test]
    fn null_eq_is_true_when_both_sides_are_nil() {
        assert!(eval(json!(null), VarType::Null, "eq", json!(null)));
    }

    #[test]
    fn unsupported_types_and_operators_are_errors() {
        let c = cond(
            json!(1),
            VarType::Other("file".into()),
            "eq",
            json!(1),
            VarType::Integer,
        );
        assert_eq!(
            check_condition(&c).unwrap_err().message(),
            "Condition left type \"file\" is not supported"
        );
        let c = cond(json!({}), VarType::Object, "eq", json!(1), VarType::Integer);
        assert_eq!(
            check_condition(&c).unwrap_err().message(),
            "Condition left type \"object\" has no operator \"eq\""
        );
    }

    #[test]
    fn a_right_side_of_the_wrong_type_drops_the_item() {
        let c = cond(
            json!("a"),
            VarType::String,
            "eq",
            json!(1),
            VarType::Integer,
        );
        assert!(!check_condition(&c).unwrap());
        // number and integer are interchangeable
        let c = cond(json!(1), VarType::Integer, "eq", json!(1), VarType::Number);
        assert!(check_condition(&c).unwrap());
    }

    #[test]
    fn the_rules_table_matches_the_spec() {
        let ops = [
            "eq",
            "neq",
            "gt",
            "gte",
            "lt",
            "lte",
            "in",
            "nin",
            "contains",
            "not_contains",
            "is_empty",
            "is_not_empty",
            "is_true",
            "is_false",
        ];
        let allowed = |t: VarType| -> Vec<&str> {
            ops.iter()
                .copied()
                .filter(|op| rule(&t, op).flatten().is_some())
                .collect()
        };
        assert_eq!(
            allowed(VarType::String),
            [
                "eq",
                "neq",
                "in",
                "nin",
                "contains",
                "not_contains",
                "is_empty",
                "is_not_empty"
            ]
        );
        assert_eq!(
            allowed(VarType::Number),
            [
                "eq",
                "neq",
                "gt",
                "gte",
                "lt",
                "lte",
                "in",
                "nin",
                "is_empty",
                "is_not_empty"
            ]
        );
        assert_eq!(
            allowed(VarType::Boolean),
            [
                "eq",
                "neq",
                "in",
                "nin",
                "is_empty",
                "is_not_empty",
                "is_true",
                "is_false"
            ]
        );
        assert_eq!(allowed(VarType::Array), ["is_empty", "is_not_empty"]);
        assert_eq!(allowed(VarType::Object), ["is_empty", "is_not_empty"]);
        assert_eq!(allowed(VarType::Map), ["is_empty", "is_not_empty"]);
        assert_eq!(
            allowed(VarType::DateTime),
            [
                "eq",
                "neq",
                "gt",
                "gte",
                "lt",
                "lte",
                "is_empty",
                "is_not_empty"
            ]
        );
        assert_eq!(allowed(VarType::Null), ["eq", "is_empty", "is_not_empty"]);
        assert_eq!(
            rule(&VarType::String, "is_empty"),
            Some(Some(VarType::Null))
        );
        assert_eq!(rule(&VarType::String, "in"), Some(Some(VarType::Array)));
    }

    #[test]
    fn includes_on_a_non_container_is_the_javascript_type_error() {
        let c = cond(json!("a"), VarType::String, "in", json!(5), VarType::Array);
        assert_eq!(
            evaluate(&c).unwrap_err().message(),
            "rightValue.includes is not a function"
        );
    }
}
