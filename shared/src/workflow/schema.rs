//! Schema parsing: validation, then compilation into an indexed [`Document`] that runs never have
//! to re-read: adjacency keyed by (node, port), decoded constants, split templates.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::scope::Variable;
use super::types::VarType;
use super::validation;
use super::value::{self, FlowValue, Resolved};

/// A validated, compiled workflow schema. Cheap to clone; share it in an `Arc` across runs.
#[derive(Clone, Debug)]
pub struct WorkflowSchema {
    raw: Arc<Value>,
    doc: Arc<Document>,
}

impl WorkflowSchema {
    /// The schema JSON it was parsed from.
    pub fn as_json(&self) -> &Value {
        &self.raw
    }

    /// The start node's output schema, which start inputs are validated against.
    pub fn start_outputs(&self) -> Option<&Value> {
        self.doc.start_outputs.as_ref()
    }

    /// Every node id, nested blocks included, in document order.
    pub fn node_ids(&self) -> impl Iterator<Item = &str> {
        self.doc.nodes.iter().map(|n| n.id.as_str())
    }

    pub(crate) fn document(&self) -> &Document {
        &self.doc
    }
}

impl Serialize for WorkflowSchema {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for WorkflowSchema {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Value::deserialize(deserializer)?;
        from_value(raw).map_err(|errors| serde::de::Error::custom(errors.join("; ")))
    }
}

/// Parse the schema JSON text and run the four validators (spec 4.7) plus the document-build
/// checks of spec 4.1. `Err` is the list of messages, exact reference texts where they exist.
pub fn parse_schema(schema_json: &str) -> Result<WorkflowSchema, Vec<String>> {
    let raw: Value = serde_json::from_str(schema_json)
        .map_err(|e| vec![format!("Workflow schema is not valid JSON: {e}")])?;
    from_value(raw)
}

fn from_value(raw: Value) -> Result<WorkflowSchema, Vec<String>> {
    let errors = validation::validate_schema(&raw);
    if !errors.is_empty() {
        return Err(errors);
    }
    let doc = Document::build(&raw).map_err(|e| vec![e])?;
    Ok(WorkflowSchema {
        raw: Arc::new(raw),
        doc: Arc::new(doc),
    })
}

/// Node types whose out-edges are never followed.
pub(crate) const TERMINATING_TYPES: [&str; 4] = ["end", "block-end", "break", "continue"];

/// A compiled node.
#[derive(Debug)]
pub(crate) struct Node {
    pub id: String,
    pub ty: String,
    /// `schema.data` minus `title`, `inputsValues`, `inputs` and `outputs`: the snapshot's `data`.
    pub data: Map<String, Value>,
    /// `data`'s size as JSON: what each execution's snapshot adds to the report for it.
    pub data_bytes: usize,
    pub inputs: Vec<InputEntry>,
    /// `None` unless `data.outputs` is an object schema with properties.
    pub outputs: Option<Vec<OutputEntry>>,
    pub prev: Vec<usize>,
    pub next: Vec<usize>,
    /// Output port id → targets, in edge order. Ports default to `defaultOutput`.
    pub out_ports: Vec<(String, Vec<usize>)>,
    pub children: Vec<usize>,
    pub terminating: bool,
}

/// One declared input: key, declared type and the value to resolve.
#[derive(Debug)]
pub(crate) struct InputEntry {
    pub key: String,
    pub declared: Option<VarType>,
    pub value: PlannedValue,
}

#[derive(Debug)]
pub(crate) enum PlannedValue {
    /// A constant decoded at compile time (`None` resolves to nothing).
    Constant(Option<Resolved>),
    Flow(FlowValue),
}

/// One declared output: where `setNodeOutputs` stores it and its default.
#[derive(Debug)]
pub(crate) struct OutputEntry {
    pub key: String,
    pub ty: Option<VarType>,
    pub items_ty: Option<VarType>,
    pub default: Option<Value>,
}

/// The flattened, indexed workflow.
#[derive(Debug)]
pub(crate) struct Document {
    pub nodes: Vec<Node>,
    pub start: Option<usize>,
    pub start_outputs: Option<Value>,
    pub globals: Vec<(String, Variable)>,
}

impl Document {
    fn build(raw: &Value) -> Result<Document, String> {
        let mut nodes = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut edges: Vec<&Value> = Vec::new();
        flatten(raw, None, &mut nodes, &mut index, &mut edges)?;

        let mut seen_ports: HashSet<(usize, String)> = HashSet::new();
        for edge in edges {
            let source = edge
                .get("sourceNodeID")
                .and_then(Value::as_str)
                .unwrap_or("");
            let target = edge
                .get("targetNodeID")
                .and_then(Value::as_str)
                .unwrap_or("");
            let port = edge
                .get("sourcePortID")
                .and_then(Value::as_str)
                .unwrap_or("defaultOutput");
            let (Some(&from), Some(&to)) = (index.get(source), index.get(target)) else {
                let target_port = edge
                    .get("targetPortID")
                    .and_then(Value::as_str)
                    .unwrap_or("defaultInput");
                return Err(format!(
                    "Invalid edge schema ID: {source}_{port}-{target}_{target_port}, from: {source}, to: {target}"
                ));
            };
            nodes[from].next.push(to);
            nodes[to].prev.push(from);
            let ports = &mut nodes[from].out_ports;
            if seen_ports.insert((from, port.to_owned())) {
                ports.push((port.to_owned(), vec![to]));
            } else if let Some((_, targets)) = ports.iter_mut().find(|(p, _)| p == port) {
                targets.push(to);
            }
        }

        // The reference finds the first start node among root-layer nodes, which it lists first.
        let nested: HashSet<usize> = nodes
            .iter()
            .flat_map(|n| n.children.iter().copied())
            .collect();
        let start = (0..nodes.len()).find(|i| !nested.contains(i) && nodes[*i].ty == "start");
        let start_outputs = start
            .and_then(|i| raw_node_data(raw, &nodes[i].id).and_then(|d| d.get("outputs").cloned()));
        Ok(Document {
            start,
            start_outputs,
            globals: compile_globals(raw.get("globalVariable")),
            nodes,
        })
    }
}

/// The `data` of the root-layer node with this id (the start node lives there).
fn raw_node_data<'a>(raw: &'a Value, id: &str) -> Option<&'a Value> {
    raw.get("nodes")?
        .as_array()?
        .iter()
        .find(|n| n.get("id").and_then(Value::as_str) == Some(id))?
        .get("data")
}

/// Flatten a layer and its nested `blocks` into `nodes`, collecting every layer's edges.
fn flatten<'a>(
    layer: &'a Value,
    parent: Option<usize>,
    nodes: &mut Vec<Node>,
    index: &mut HashMap<String, usize>,
    edges: &mut Vec<&'a Value>,
) -> Result<(), String> {
    let (node_key, edge_key) = if parent.is_none() {
        ("nodes", "edges")
    } else {
        ("blocks", "edges")
    };
    for schema in layer
        .get(node_key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let node = compile_node(schema);
        if index.contains_key(&node.id) {
            // The reference silently keeps the last node of an id and never runs the others.
            return Err(format!(
                "Workflow schema node ID \"{}\" is not unique",
                node.id
            ));
        }
        let position = nodes.len();
        index.insert(node.id.clone(), position);
        nodes.push(node);
        if let Some(parent) = parent {
            nodes[parent].children.push(position);
        }
        if schema.get("blocks").is_some_and(Value::is_array) {
            flatten(schema, Some(position), nodes, index, edges)?;
        }
    }
    edges.extend(
        layer
            .get(edge_key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten(),
    );
    Ok(())
}

fn compile_node(schema: &Value) -> Node {
    let id = schema
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let ty = schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let raw_data = schema.get("data").and_then(Value::as_object);
    let mut data = raw_data.cloned().unwrap_or_default();
    let inputs_values = data.remove("inputsValues");
    let inputs = data.remove("inputs");
    let outputs = data.remove("outputs");
    data.remove("title");
    let terminating = TERMINATING_TYPES.contains(&ty.as_str());
    Node {
        inputs: compile_inputs(inputs_values.as_ref(), inputs.as_ref()),
        outputs: compile_outputs(outputs.as_ref()),
        id,
        ty,
        data_bytes: super::limits::json_size_within(&data, usize::MAX),
        data,
        prev: Vec::new(),
        next: Vec::new(),
        out_ports: Vec::new(),
        children: Vec::new(),
        terminating,
    }
}

/// `parseInputs` minus the run-time part: keep declared keys in `inputsValues` order and decode
/// constants now.
fn compile_inputs(values: Option<&Value>, declare: Option<&Value>) -> Vec<InputEntry> {
    let (Some(Value::Object(values)), Some(declare)) = (values, declare) else {
        return Vec::new();
    };
    let properties = declare.get("properties").and_then(Value::as_object);
    let mut entries = Vec::new();
    for (key, raw) in values {
        let Some(type_info) = properties.and_then(|p| p.get(key)) else {
            continue;
        };
        if !super::js::is_truthy(Some(type_info)) {
            continue;
        }
        let declared = VarType::declared_in(Some(type_info));
        let value = match FlowValue::from_json(raw) {
            FlowValue::Constant(content) => {
                PlannedValue::Constant(value::parse_constant(content.as_ref(), declared.as_ref()))
            }
            other => PlannedValue::Flow(other),
        };
        entries.push(InputEntry {
            key: key.clone(),
            declared,
            value,
        });
    }
    entries
}

fn compile_outputs(outputs: Option<&Value>) -> Option<Vec<OutputEntry>> {
    let outputs = outputs?;
    if outputs.get("type").and_then(Value::as_str) != Some("object") {
        return None;
    }
    let properties = outputs.get("properties").and_then(Value::as_object)?;
    Some(
        properties
            .iter()
            .filter(|(key, info)| !key.is_empty() && super::js::is_truthy(Some(info)))
            .map(|(key, info)| {
                let ty = VarType::declared_in(Some(info));
                OutputEntry {
                    key: key.clone(),
                    items_ty: VarType::declared_items_in(Some(info)),
                    default: info
                        .get("default")
                        .map(|d| value::decode_json_content(d, ty.as_ref())),
                    ty,
                }
            })
            .collect(),
    )
}

/// `global` variables: every declared property, with its (JSON-decoded) default.
fn compile_globals(global: Option<&Value>) -> Vec<(String, Variable)> {
    let Some(properties) = global
        .and_then(|g| g.get("properties"))
        .and_then(Value::as_object)
    else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(key, info)| {
            let ty = VarType::declared_in(Some(info));
            let variable = Variable {
                value: info
                    .get("default")
                    .map(|d| value::decode_json_content(d, ty.as_ref())),
                items_ty: VarType::declared_items_in(Some(info)),
                ty,
            };
            (key.clone(), variable)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(id: &str, ty: &str) -> Value {
        json!({"id": id, "type": ty, "meta": {"position": {"x": 0, "y": 0}}, "data": {}})
    }

    #[test]
    fn invalid_json_is_a_message_not_a_panic() {
        let errors = parse_schema("{not json").unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("Workflow schema is not valid JSON"));
    }

    #[test]
    fn validation_errors_are_returned_as_messages() {
        let errors = parse_schema(r#"{"nodes": [], "edges": []}"#).unwrap_err();
        assert_eq!(
            errors,
            vec!["Workflow schema must have a start node and an end node"]
        );
    }

    #[test]
    fn duplicate_node_ids_are_rejected() {
        let mut loop_node = node("loop", "loop");
        loop_node["blocks"] = json!([node("bs", "block-start"), node("start", "block-end")]);
        let schema =
            json!({"nodes": [node("start", "start"), loop_node, node("end", "end")], "edges": []});
        assert_eq!(
            parse_schema(&schema.to_string()).unwrap_err(),
            vec!["Workflow schema node ID \"start\" is not unique"]
        );
    }

    #[test]
    fn ports_are_keyed_by_node_and_port() {
        let schema = json!({
            "nodes": [node("start", "start"), node("c1", "condition"), node("c2", "condition"),
                      node("a", "x"), node("b", "x"), node("end", "end")],
            "edges": [
                {"sourceNodeID": "start", "targetNodeID": "c1"},
                {"sourceNodeID": "c1", "targetNodeID": "a", "sourcePortID": "if_1"},
                {"sourceNodeID": "c2", "targetNodeID": "b", "sourcePortID": "if_1"},
                {"sourceNodeID": "c1", "targetNodeID": "end", "sourcePortID": "if_1"}
            ]
        });
        let parsed = parse_schema(&schema.to_string()).unwrap();
        let doc = parsed.document();
        let c1 = &doc.nodes[1];
        assert_eq!(c1.out_ports, vec![("if_1".to_string(), vec![3, 5])]);
        let c2 = &doc.nodes[2];
        assert_eq!(c2.out_ports, vec![("if_1".to_string(), vec![4])]);
        assert_eq!(doc.nodes[5].prev, vec![1]);
    }

    #[test]
    fn snapshot_data_drops_title_inputs_and_outputs() {
        let mut code = node("code", "code");
        code["data"] = json!({"title": "T", "inputs": {}, "outputs": {}, "inputsValues": {}, "script": {"language": "javascript"}});
        let schema =
            json!({"nodes": [node("start", "start"), code, node("end", "end")], "edges": []});
        let parsed = parse_schema(&schema.to_string()).unwrap();
        assert_eq!(
            Value::Object(parsed.document().nodes[1].data.clone()),
            json!({"script": {"language": "javascript"}})
        );
    }

    #[test]
    fn the_schema_round_trips_through_serde() {
        let schema = json!({"nodes": [node("start", "start"), node("end", "end")], "edges": []});
        let parsed = parse_schema(&schema.to_string()).unwrap();
        let text = serde_json::to_string(&parsed).unwrap();
        let back: WorkflowSchema = serde_json::from_str(&text).unwrap();
        assert_eq!(back.as_json(), &schema);
        assert!(serde_json::from_str::<WorkflowSchema>(r#"{"nodes": []}"#).is_err());
    }
}
