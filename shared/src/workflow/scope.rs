//! A run's mutable state for one layer of execution: variables, executed nodes and the loop flags.
//!
//! The root scope lives for the whole run; every loop iteration gets a child scope whose variable
//! lookups fall back to its parent (the reference's `runtime.sub()`), so iterations never copy the
//! outer variables.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use serde_json::{Map, Value};

use super::js;
use super::node_error::NodeError;
use super::types::VarType;
use super::value::{self, FlowValue, Resolved, Template};

/// A stored variable: its value (`None` is `undefined`), declared type and array item type.
#[derive(Clone, Debug, PartialEq)]
pub struct Variable {
    pub value: Option<Value>,
    pub ty: Option<VarType>,
    pub items_ty: Option<VarType>,
}

impl From<Resolved> for Variable {
    fn from(r: Resolved) -> Self {
        Variable {
            value: r.value,
            ty: r.ty,
            items_ty: r.items_ty,
        }
    }
}

#[derive(Default)]
struct ScopeState {
    /// nodeID → key → variable.
    vars: HashMap<String, HashMap<String, Variable>>,
    /// Indexed by the node's position in the compiled document.
    executed: Vec<bool>,
}

/// One execution layer. See the module docs.
pub struct Scope<'p> {
    parent: Option<&'p Scope<'p>>,
    node_count: usize,
    state: Mutex<ScopeState>,
    loop_break: AtomicBool,
    loop_continue: AtomicBool,
}

impl<'p> Scope<'p> {
    pub(crate) fn root(node_count: usize) -> Scope<'static> {
        Scope {
            parent: None,
            node_count,
            state: Mutex::new(ScopeState {
                vars: HashMap::new(),
                executed: vec![false; node_count],
            }),
            loop_break: AtomicBool::new(false),
            loop_continue: AtomicBool::new(false),
        }
    }

    /// A fresh layer whose variable lookups fall back to `self`.
    pub fn child(&'p self) -> Scope<'p> {
        Scope {
            parent: Some(self),
            node_count: self.node_count,
            state: Mutex::new(ScopeState {
                vars: HashMap::new(),
                executed: vec![false; self.node_count],
            }),
            loop_break: AtomicBool::new(false),
            loop_continue: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ScopeState> {
        // A poisoned lock only means another task panicked mid-update; the data is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Store a variable in this layer (`variableStore.setVariable`).
    pub fn set_variable(&self, node_id: &str, key: &str, variable: Variable) {
        let mut state = self.lock();
        match state.vars.get_mut(node_id) {
            Some(node_vars) => {
                node_vars.insert(key.to_owned(), variable);
            }
            None => {
                let mut node_vars = HashMap::new();
                node_vars.insert(key.to_owned(), variable);
                state.vars.insert(node_id.to_owned(), node_vars);
            }
        }
    }

    /// Find the layer that holds `node_id` (nearest first) and look `key` up in it, like the
    /// reference's `globalGet(nodeID)?.get(key)`.
    pub fn with_variable<R>(
        &self,
        node_id: &str,
        key: &str,
        f: impl FnOnce(Option<&Variable>) -> R,
    ) -> R {
        let mut scope = Some(self);
        while let Some(current) = scope {
            let state = current.lock();
            if let Some(node_vars) = state.vars.get(node_id) {
                return f(node_vars.get(key));
            }
            drop(state);
            scope = current.parent;
        }
        f(None)
    }

    /// Replace the value of an existing variable, optionally at a path inside it; `false` when
    /// the variable does not exist.
    pub fn assign_variable(&self, node_id: &str, key: &str, path: &[String], value: Value) -> bool {
        let mut scope = Some(self);
        while let Some(current) = scope {
            let mut state = current.lock();
            if let Some(node_vars) = state.vars.get_mut(node_id) {
                let Some(variable) = node_vars.get_mut(key) else {
                    return false;
                };
                if path.is_empty() {
                    variable.ty = Some(VarType::infer(Some(&value)));
                    variable.items_ty = match &value {
                        Value::Array(items) => Some(VarType::infer(items.first())),
                        _ => None,
                    };
                    variable.value = Some(value);
                    return true;
                }
                let target = variable
                    .value
                    .get_or_insert_with(|| Value::Object(Map::new()));
                return set_path(target, path, value);
            }
            drop(state);
            scope = current.parent;
        }
        false
    }

    /// `parseRef`: `[nodeID, key, ...path]`. Without a path the stored (declared) type is kept;
    /// with one the value comes from `lodash.get` and its type is inferred.
    pub fn resolve_ref(&self, path: &[String]) -> Option<Resolved> {
        let [node_id, key, rest @ ..] = path else {
            return None;
        };
        self.with_variable(node_id, key, |variable| {
            let variable = variable?;
            if rest.is_empty() {
                return Some(Resolved {
                    value: variable.value.clone(),
                    ty: variable.ty.clone(),
                    items_ty: variable.items_ty.clone(),
                });
            }
            let value = variable
                .value
                .as_ref()
                .and_then(|v| value::get_path(v, rest));
            let ty = VarType::infer(value.as_ref());
            let items_ty = match &value {
                Some(Value::Array(items)) => Some(VarType::infer(items.first())),
                _ => None,
            };
            Some(Resolved {
                value,
                ty: Some(ty),
                items_ty,
            })
        })
    }

    /// `parseTemplate`: every reference renders through `String()`; unresolved ones render as `''`.
    pub fn render_template(&self, template: &Template) -> String {
        template.render(|path, out| {
            let [node_id, key, rest @ ..] = path else {
                return;
            };
            self.with_variable(node_id, key, |variable| {
                let Some(variable) = variable else {
                    return;
                };
                if rest.is_empty() {
                    out.push_str(&js::to_js_string(variable.value.as_ref()));
                } else {
                    let found = variable
                        .value
                        .as_ref()
                        .and_then(|v| value::get_path(v, rest));
                    out.push_str(&js::to_js_string(found.as_ref()));
                }
            });
        })
    }

    /// `parseFlowValue` with a declared type (used by constants).
    pub fn parse_flow_value(
        &self,
        flow_value: &FlowValue,
        declared: Option<&VarType>,
    ) -> Result<Option<Resolved>, NodeError> {
        match flow_value {
            FlowValue::Constant(content) => Ok(value::parse_constant(content.as_ref(), declared)),
            FlowValue::Ref(path) => Ok(self.resolve_ref(path)),
            FlowValue::Template(None) => Ok(None),
            FlowValue::Template(Some(template)) => Ok(Some(Resolved {
                value: Some(Value::String(self.render_template(template))),
                ty: Some(VarType::String),
                items_ty: None,
            })),
            other => Err(NodeError::new(
                other.unsupported_error().unwrap_or_default(),
            )),
        }
    }

    /// `parseInputs({values, declare})` over raw schema JSON, for node data such as HTTP headers.
    pub fn parse_inputs_json(
        &self,
        values: Option<&Value>,
        declare: Option<&Value>,
    ) -> Result<Map<String, Value>, NodeError> {
        let (Some(Value::Object(values)), Some(declare)) = (values, declare) else {
            return Ok(Map::new());
        };
        if !js::is_truthy(Some(declare)) {
            return Ok(Map::new());
        }
        let properties = declare.get("properties").and_then(Value::as_object);
        let mut out = Map::new();
        for (key, raw) in values {
            let Some(type_info) = properties.and_then(|p| p.get(key)) else {
                continue;
            };
            if !js::is_truthy(Some(type_info)) {
                continue;
            }
            let declared = VarType::declared_in(Some(type_info));
            let parsed = self.parse_flow_value(&FlowValue::from_json(raw), declared.as_ref())?;
            insert_checked(&mut out, key, parsed, declared.as_ref());
        }
        Ok(out)
    }

    pub(crate) fn is_executed(&self, index: usize) -> bool {
        self.lock().executed.get(index).copied().unwrap_or(false)
    }

    pub(crate) fn mark_executed(&self, indices: impl IntoIterator<Item = usize>) {
        let mut state = self.lock();
        for index in indices {
            if let Some(slot) = state.executed.get_mut(index) {
                *slot = true;
            }
        }
    }

    /// Set by a `break` node in this layer.
    pub fn request_break(&self) {
        self.loop_break.store(true, Ordering::Relaxed);
    }

    /// Set by a `continue` node in this layer.
    pub fn request_continue(&self) {
        self.loop_continue.store(true, Ordering::Relaxed);
    }

    pub fn break_requested(&self) -> bool {
        self.loop_break.load(Ordering::Relaxed)
    }

    pub fn continue_requested(&self) -> bool {
        self.loop_continue.load(Ordering::Relaxed)
    }
}

/// The tail of `parseInputs`: drop unresolved values, type mismatches and `undefined`.
pub(crate) fn insert_checked(
    out: &mut Map<String, Value>,
    key: &str,
    parsed: Option<Resolved>,
    declared: Option<&VarType>,
) {
    let Some(parsed) = parsed else { return };
    if !VarType::is_equal(parsed.ty.as_ref(), declared) {
        return;
    }
    if let Some(value) = parsed.value {
        out.insert(key.to_owned(), value);
    }
}

/// `lodash.set` for JSON: creates objects along the way; fails on non-container intermediates.
fn set_path(target: &mut Value, path: &[String], value: Value) -> bool {
    let Some((last, parents)) = path.split_last() else {
        *target = value;
        return true;
    };
    let mut current = target;
    for key in parents {
        current = match current {
            Value::Object(map) => map
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new())),
            Value::Array(items) => match key.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                Some(item) => item,
                None => return false,
            },
            _ => return false,
        };
    }
    match current {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            true
        }
        Value::Array(items) => match last.parse::<usize>().ok() {
            Some(i) if i < items.len() => {
                items[i] = value;
                true
            }
            Some(i) if i == items.len() => {
                items.push(value);
                true
            }
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn var(value: Value, ty: VarType) -> Variable {
        Variable {
            value: Some(value),
            ty: Some(ty),
            items_ty: None,
        }
    }

    fn path(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn refs_without_a_path_keep_the_declared_type() {
        let scope = Scope::root(0);
        scope.set_variable("start_0", "n", var(json!("5"), VarType::Integer));
        let r = scope.resolve_ref(&path(&["start_0", "n"])).unwrap();
        assert_eq!(r.value, Some(json!("5")));
        assert_eq!(r.ty, Some(VarType::Integer));
    }

    #[test]
    fn refs_with_a_path_infer_the_type() {
        let scope = Scope::root(0);
        scope.set_variable(
            "start_0",
            "work",
            var(
                json!({"task": "t", "n": 2.5, "list": ["a"]}),
                VarType::Object,
            ),
        );
        let r = scope.resolve_ref(&path(&["start_0", "work", "n"])).unwrap();
        assert_eq!(r.ty, Some(VarType::Number));
        let r = scope
            .resolve_ref(&path(&["start_0", "work", "list"]))
            .unwrap();
        assert_eq!(r.items_ty, Some(VarType::String));
        let missing = scope
            .resolve_ref(&path(&["start_0", "work", "nope"]))
            .unwrap();
        assert_eq!(missing.value, None);
        assert_eq!(missing.ty, Some(VarType::Null));
    }

    #[test]
    fn refs_shorter_than_two_elements_resolve_to_nothing() {
        let scope = Scope::root(0);
        scope.set_variable("a", "b", var(json!(1), VarType::Integer));
        assert_eq!(scope.resolve_ref(&path(&["a"])), None);
        assert_eq!(scope.resolve_ref(&[]), None);
    }

    #[test]
    fn child_scopes_fall_back_to_their_parent() {
        let root = Scope::root(0);
        root.set_variable("start_0", "x", var(json!(1), VarType::Integer));
        let child = root.child();
        child.set_variable("loop_0_locals", "item", var(json!("i"), VarType::String));
        assert!(child.resolve_ref(&path(&["start_0", "x"])).is_some());
        assert!(
            child
                .resolve_ref(&path(&["loop_0_locals", "item"]))
                .is_some()
        );
        assert!(
            root.resolve_ref(&path(&["loop_0_locals", "item"]))
                .is_none()
        );
    }

    #[test]
    fn templates_render_values_through_javascript_string() {
        let scope = Scope::root(0);
        scope.set_variable("n", "a", var(json!(0.5), VarType::Number));
        scope.set_variable("n", "o", var(json!({"k": [1, 2]}), VarType::Object));
        let t = Template::parse("{{n.a}}|{{n.o}}|{{n.o.k}}|{{n.o.missing}}|{{x.y}}");
        assert_eq!(
            scope.render_template(&t),
            "0.5|[object Object]|1,2|undefined|"
        );
    }

    #[test]
    fn parse_inputs_drops_unknown_keys_nulls_and_type_mismatches() {
        let scope = Scope::root(0);
        scope.set_variable("s", "num", var(json!(1), VarType::Integer));
        let values = json!({
            "a": {"type": "constant", "content": "x"},
            "b": {"type": "ref", "content": ["s", "num"]},
            "c": {"type": "ref", "content": ["s", "missing"]},
            "d": {"type": "constant", "content": null},
            "undeclared": {"type": "constant", "content": 1}
        });
        let declare = json!({"type": "object", "properties": {
            "a": {"type": "string"}, "b": {"type": "string"},
            "c": {"type": "string"}, "d": {"type": "string"}
        }});
        let out = scope
            .parse_inputs_json(Some(&values), Some(&declare))
            .unwrap();
        assert_eq!(Value::Object(out), json!({"a": "x"}));
    }

    #[test]
    fn assigning_a_path_updates_the_stored_value() {
        let scope = Scope::root(0);
        scope.set_variable("v", "o", var(json!({"a": 1}), VarType::Object));
        assert!(scope.assign_variable("v", "o", &path(&["b", "c"]), json!(2)));
        let r = scope.resolve_ref(&path(&["v", "o"])).unwrap();
        assert_eq!(r.value, Some(json!({"a": 1, "b": {"c": 2}})));
        assert!(!scope.assign_variable("v", "missing", &[], json!(1)));
    }
}
