//! `loop`: runs its `blocks` body once per array item or object entry, sequentially, and collects
//! `loopOutputs` into arrays (spec 2.5).

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::workflow::executor::{NodeContext, NodeExecutor, NodeOutput};
use crate::workflow::js;
use crate::workflow::node_error::NodeError;
use crate::workflow::scope::Variable;
use crate::workflow::types::VarType;
use crate::workflow::value::{self, Resolved};

pub struct LoopExecutor;

/// One iteration's subject.
struct Entry {
    key: Option<String>,
    value: Value,
    ty: Option<VarType>,
    items_ty: Option<VarType>,
}

#[async_trait]
impl NodeExecutor for LoopExecutor {
    async fn execute(&self, ctx: NodeContext<'_>) -> Result<NodeOutput, NodeError> {
        let loop_id = ctx.node_id().to_owned();
        let entries = loop_entries(&ctx)?;
        let max = ctx.config().max_loop_iterations;
        if entries.len() as u64 > max {
            return Err(format!(
                "Loop \"loopFor\" has {} items, more than the limit of {max} iterations (max_loop_iterations)",
                entries.len()
            )
            .into());
        }
        let Some(block_start) = ctx.child_of_type("block-start") else {
            return Err("Loop block start node not found".into());
        };
        let outputs_declared: Vec<(&String, &Value)> = match ctx.data().get("loopOutputs") {
            Some(Value::Object(map)) => map.iter().collect(),
            _ => Vec::new(),
        };
        let locals = format!("{loop_id}_locals");

        let mut block_outputs: Vec<Vec<Option<Resolved>>> = Vec::new();
        for (index, entry) in entries.into_iter().enumerate() {
            let sub = ctx.scope().child();
            sub.set_variable(
                &locals,
                "item",
                Variable {
                    value: Some(entry.value),
                    ty: entry.ty,
                    items_ty: entry.items_ty,
                },
            );
            if let Some(key) = entry.key {
                sub.set_variable(
                    &locals,
                    "key",
                    Variable {
                        value: Some(Value::String(key)),
                        ty: Some(VarType::String),
                        items_ty: None,
                    },
                );
            }
            sub.set_variable(
                &locals,
                "index",
                Variable {
                    value: Some(Value::from(index)),
                    ty: Some(VarType::Number),
                    items_ty: None,
                },
            );
            if ctx.run_block(&sub, block_start).await.is_err() {
                return Err("Loop block execute error".into());
            }
            if sub.break_requested() {
                break;
            }
            if sub.continue_requested() {
                continue;
            }
            let mut row = Vec::with_capacity(outputs_declared.len());
            for (_, reference) in &outputs_declared {
                if reference.get("type").and_then(Value::as_str) != Some("ref") {
                    return Err(format!(
                        "Invalid ref value: {}",
                        js::to_js_string(Some(reference))
                    )
                    .into());
                }
                row.push(sub.resolve_ref(&value::ref_path(reference.get("content"))));
            }
            block_outputs.push(row);
        }

        let mut outputs = Map::new();
        for (column, (name, _)) in outputs_declared.iter().enumerate() {
            let mut values = Vec::with_capacity(block_outputs.len());
            let mut items_ty: Option<Option<VarType>> = None;
            for row in &block_outputs {
                let Some(resolved) = &row[column] else {
                    // The reference reads `.type` of the missing variable.
                    return Err("Cannot read properties of undefined (reading 'type')".into());
                };
                match &items_ty {
                    None => items_ty = Some(resolved.ty.clone()),
                    Some(expected) if expected != &resolved.ty => {
                        return Err(format!(
                            "Array items type must be same, expect {}, but got {}",
                            VarType::display(expected.as_ref()),
                            VarType::display(resolved.ty.as_ref())
                        )
                        .into());
                    }
                    Some(_) => {}
                }
                values.push(resolved.value.clone().unwrap_or(Value::Null));
            }
            ctx.scope().set_variable(
                &loop_id,
                name,
                Variable {
                    value: Some(Value::Array(values.clone())),
                    ty: Some(VarType::Array),
                    items_ty: items_ty.flatten(),
                },
            );
            outputs.insert((*name).clone(), Value::Array(values));
        }
        Ok(NodeOutput::new(outputs))
    }
}

/// `getLoopEntries` + `checkLoopVariable`.
fn loop_entries(ctx: &NodeContext<'_>) -> Result<Vec<Entry>, NodeError> {
    let loop_for = ctx.data().get("loopFor");
    if loop_for.and_then(|l| l.get("type")).and_then(Value::as_str) != Some("ref") {
        return Err(format!("Invalid ref value: {}", js::to_js_string(loop_for)).into());
    }
    let resolved = ctx
        .scope()
        .resolve_ref(&value::ref_path(loop_for.and_then(|l| l.get("content"))));
    let Some(resolved) = resolved.filter(|r| js::is_truthy(r.value.as_ref())) else {
        return Err("Loop \"loopFor\" is required".into());
    };
    let not_iterable = || NodeError::new("Loop \"loopFor\" must be an array or object");
    match (resolved.ty, resolved.value) {
        (Some(VarType::Array), Some(Value::Array(items))) => {
            let Some(items_ty) = resolved.items_ty else {
                return Err("Loop \"loopFor.items\" must be array items".into());
            };
            Ok(items
                .into_iter()
                .map(|value| Entry {
                    key: None,
                    value,
                    ty: Some(items_ty.clone()),
                    items_ty: None,
                })
                .collect())
        }
        (Some(VarType::Object), Some(Value::Object(map))) => Ok(map
            .into_iter()
            .map(|(key, value)| {
                let ty = VarType::infer(Some(&value));
                let items_ty = match &value {
                    Value::Array(items) => Some(VarType::infer(items.first())),
                    _ => None,
                };
                Entry {
                    key: Some(key),
                    value,
                    ty: Some(ty),
                    items_ty,
                }
            })
            .collect()),
        _ => Err(not_iterable()),
    }
}
