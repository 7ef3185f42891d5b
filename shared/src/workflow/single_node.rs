//! A single-node test run (FlowGram's roadmap; Dify's draft node run) as an ordinary run: the
//! node, alone, between a start node that outputs the given inputs and an end node.
//!
//! Why a derived schema and not an engine entry point: the run then takes the whole path of
//! any run (the queue, a worker, the report, the stream, cancel, retries), and the engine
//! keeps one way to execute a node. The node keeps its `data`; each input the caller gives
//! replaces the node's `inputsValues` entry with a reference to the start node's output of
//! that name, so values are typed and checked against the node's declared `inputs` like a
//! run's start inputs. An input not given keeps its constant; one not given whose value came
//! from other nodes (a reference, a template) is missing, and the node says so as it would.

use serde_json::{Map, Value, json};

/// The id of the derived start node and of the derived end node.
pub const START_ID: &str = "run_node_start";
pub const END_ID: &str = "run_node_end";

/// Why a node cannot be run alone; each names the request field at fault.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum SingleNodeError {
    #[error("the schema is not a JSON object with a `nodes` array")]
    Schema,
    #[error("no node with id \"{0}\" in the schema")]
    UnknownNode(String),
    #[error("a {ty} node cannot run alone (only nodes that take inputs: llm, code, http)")]
    NotRunnableAlone { ty: String },
    #[error("the node has no input \"{0}\"")]
    UnknownInput(String),
}

impl SingleNodeError {
    /// The request field the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            SingleNodeError::Schema => "schema",
            SingleNodeError::UnknownNode(_) | SingleNodeError::NotRunnableAlone { .. } => "nodeID",
            SingleNodeError::UnknownInput(_) => "inputs",
        }
    }
}

/// Node types a single-node run accepts: those whose inputs are all named `inputsValues`.
/// The others are structure (start, end, loop, blocks, break, continue) or read other
/// nodes' variables directly (condition).
const RUNNABLE_ALONE: [&str; 3] = ["llm", "code", "http"];

/// The schema of a run of `node_id` alone with `inputs` (checked: each must be one of the
/// node's inputs). The run's start inputs are `inputs` themselves.
pub fn single_node_schema(
    schema: &Value,
    node_id: &str,
    inputs: &Map<String, Value>,
) -> Result<Value, SingleNodeError> {
    let nodes = schema.get("nodes").and_then(Value::as_array);
    let nodes = nodes.ok_or(SingleNodeError::Schema)?;
    let node = find(nodes, node_id).ok_or_else(|| SingleNodeError::UnknownNode(node_id.into()))?;
    let ty = node["type"].as_str().unwrap_or_default();
    if !RUNNABLE_ALONE.contains(&ty) {
        return Err(SingleNodeError::NotRunnableAlone { ty: ty.to_owned() });
    }
    let mut node = node.clone();
    let data = &node["data"];
    let declared = data["inputs"]["properties"].as_object();
    let mut values = data["inputsValues"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for key in inputs.keys() {
        let known = values.contains_key(key) || declared.is_some_and(|d| d.contains_key(key));
        if !known {
            return Err(SingleNodeError::UnknownInput(key.clone()));
        }
    }
    // Given inputs come from the start node; constants stay; the rest is missing.
    values.retain(|key, value| inputs.contains_key(key) || value["type"] == "constant");
    for key in inputs.keys() {
        values.insert(
            key.clone(),
            json!({"type": "ref", "content": [START_ID, key]}),
        );
    }
    // The start node checks the given inputs against their declared types; required ones
    // are required unless the node has a constant for them.
    let properties: Map<String, Value> = inputs
        .keys()
        .map(|key| {
            let declared = declared.and_then(|d| d.get(key)).cloned();
            (key.clone(), declared.unwrap_or_else(|| json!({})))
        })
        .collect();
    let required: Vec<Value> = data["inputs"]["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|key| {
            key.as_str()
                .is_some_and(|k| !values.get(k).is_some_and(|v| v["type"] == "constant"))
        })
        .cloned()
        .collect();
    node["data"]["inputsValues"] = Value::Object(values);
    // Alone, a node has no loop around it and no ports to follow.
    if let Some(node) = node.as_object_mut() {
        node.remove("blocks");
        node.remove("edges");
    }
    let meta = json!({"position": {"x": 0, "y": 0}});
    if node.get("meta").is_none_or(|m| !m.is_object()) {
        node["meta"] = meta.clone();
    }
    let start = json!({"id": START_ID, "type": "start", "meta": meta, "data": {"title": "Start",
        "outputs": {"type": "object", "properties": properties, "required": required}}});
    let end = json!({"id": END_ID, "type": "end", "meta": meta, "data": {"title": "End"}});
    Ok(json!({
        "nodes": [start, node, end],
        "edges": [
            {"sourceNodeID": START_ID, "targetNodeID": node_id},
            {"sourceNodeID": node_id, "targetNodeID": END_ID},
        ],
    }))
}

/// The node with this id, at any depth (loop bodies included).
fn find<'a>(nodes: &'a [Value], id: &str) -> Option<&'a Value> {
    nodes.iter().find_map(|node| {
        if node["id"] == id {
            return Some(node);
        }
        find(node["blocks"].as_array().map_or(&[], Vec::as_slice), id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::{parse_schema, validate_inputs};

    fn code_schema() -> Value {
        json!({"nodes": [
            {"id": "start_0", "type": "start", "data": {}},
            {"id": "loop_0", "type": "loop", "data": {}, "blocks": [
                {"id": "code_0", "type": "code", "data": {
                    "inputsValues": {
                        "input": {"type": "ref", "content": ["start_0", "x"]},
                        "fixed": {"type": "constant", "content": 2},
                        "other": {"type": "template", "content": "{{start_0.y}}"}},
                    "inputs": {"type": "object", "required": ["input", "fixed"],
                        "properties": {"input": {"type": "string"}, "fixed": {"type": "number"},
                                       "other": {"type": "string"}}},
                    "script": {"language": "javascript", "content": "..."}}}]},
            {"id": "end_0", "type": "end", "data": {}}], "edges": []})
    }

    fn inputs(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn the_node_runs_between_a_start_that_gives_its_inputs_and_an_end() {
        let derived =
            single_node_schema(&code_schema(), "code_0", &inputs(json!({"input": "a"}))).unwrap();
        let schema = parse_schema(&derived.to_string()).unwrap();
        let node = &derived["nodes"][1];
        assert_eq!(node["id"], "code_0");
        assert_eq!(
            node["data"]["inputsValues"],
            json!({"input": {"type": "ref", "content": [START_ID, "input"]},
                   "fixed": {"type": "constant", "content": 2}})
        );
        // The start checks types and what is required (the constant is not).
        assert!(validate_inputs(&schema, &inputs(json!({"input": "a"}))).is_ok());
        let wrong = validate_inputs(&schema, &inputs(json!({"input": 3}))).unwrap_err();
        assert!(wrong[0].contains("input"), "{wrong:?}");
        let missing = validate_inputs(&schema, &inputs(json!({}))).unwrap_err();
        assert!(missing[0].contains("input"), "{missing:?}");
    }

    #[test]
    fn unknown_nodes_structure_nodes_and_unknown_inputs_are_refused() {
        let schema = code_schema();
        let none = Map::new();
        assert_eq!(
            single_node_schema(&schema, "nope", &none).unwrap_err(),
            SingleNodeError::UnknownNode("nope".into())
        );
        let error = single_node_schema(&schema, "loop_0", &none).unwrap_err();
        assert_eq!(error.field(), "nodeID");
        assert!(error.to_string().contains("a loop node cannot run alone"));
        let error = single_node_schema(&schema, "code_0", &inputs(json!({"zzz": 1}))).unwrap_err();
        assert_eq!(
            (error.field(), error),
            ("inputs", SingleNodeError::UnknownInput("zzz".into()))
        );
        assert_eq!(
            single_node_schema(&json!({}), "code_0", &none).unwrap_err(),
            SingleNodeError::Schema
        );
    }
}
