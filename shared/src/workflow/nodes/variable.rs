//! `variable`: declares new variables and assigns existing ones (decision 7).
//!
//! `data.assign` is a list of `{operator: 'declare', left: name, right: value}` and
//! `{operator: 'assign', left: ref, right: value}`. Declarations become the node's outputs and
//! are visible to the items after them; assignments change the referenced variable in place.

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::workflow::executor::{NodeContext, NodeExecutor, NodeOutput};
use crate::workflow::js;
use crate::workflow::node_error::NodeError;
use crate::workflow::scope::Variable;
use crate::workflow::types::VarType;
use crate::workflow::value::{self, FlowValue};

pub struct VariableExecutor;

#[async_trait]
impl NodeExecutor for VariableExecutor {
    async fn execute(&self, ctx: NodeContext<'_>) -> Result<NodeOutput, NodeError> {
        let items = match ctx.data().get("assign") {
            Some(Value::Array(items)) => items.as_slice(),
            None | Some(Value::Null) => &[],
            Some(_) => return Err("Variable node \"assign\" must be an array".into()),
        };
        let scope = ctx.scope();
        let mut outputs = Map::new();
        for item in items {
            let right = item.get("right");
            // A declared schema on the right side (`right.schema.type`) types constants.
            let declared = VarType::declared_in(right.and_then(|r| r.get("schema")));
            let resolved = match right {
                Some(right) => {
                    scope.parse_flow_value(&FlowValue::from_json(right), declared.as_ref())?
                }
                None => None,
            };
            match item.get("operator").and_then(Value::as_str) {
                Some("declare") => {
                    let Some(Value::String(name)) = item
                        .get("left")
                        .filter(|l| l.as_str().is_some_and(|s| !js::trim(s).is_empty()))
                    else {
                        return Err("Variable declaration needs a name".into());
                    };
                    let Some(resolved) = resolved.filter(|r| r.value.is_some()) else {
                        continue;
                    };
                    if let Some(value) = &resolved.value {
                        outputs.insert(name.clone(), value.clone());
                    }
                    scope.set_variable(ctx.node_id(), name, Variable::from(resolved));
                }
                Some("assign") => {
                    let left = item.get("left");
                    if left.and_then(|l| l.get("type")).and_then(Value::as_str) != Some("ref") {
                        return Err(format!("Invalid ref value: {}", js::to_js_string(left)).into());
                    }
                    let path = value::ref_path(left.and_then(|l| l.get("content")));
                    let [node_id, key, rest @ ..] = path.as_slice() else {
                        return Err("Variable assignment needs a variable to assign".into());
                    };
                    let value = resolved.and_then(|r| r.value).unwrap_or(Value::Null);
                    if !scope.assign_variable(node_id, key, rest, value) {
                        return Err(format!("Variable \"{}\" not found", path.join(".")).into());
                    }
                }
                _ => {
                    return Err(format!(
                        "Unknown variable operator \"{}\"",
                        js::to_js_string(item.get("operator"))
                    )
                    .into());
                }
            }
        }
        Ok(NodeOutput::new(outputs))
    }
}
