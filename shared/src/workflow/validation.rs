//! The reference's four schema validators (spec 4.7), in order, each contributing at most its
//! first error: schemaFormat, cycleDetection, edgeSourceTargetExist, startEndNode.
//!
//! They run on the raw JSON because their job is to describe a malformed document; everything
//! after them may assume the shapes they checked.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// Run all four validators; an empty list means the schema is valid.
pub fn validate_schema(schema: &Value) -> Vec<String> {
    if let Err(message) = schema_format(schema) {
        // The other validators presuppose a well-formed document; the reference reports their
        // resulting TypeErrors too, which carry no information.
        return vec![message];
    }
    let layer = Layer::root(schema);
    [
        cycle_detection(&layer),
        edge_source_target_exist(&layer),
        start_end_node(&layer),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect()
}

/// One layer of the document: the root or a node's `blocks` + `edges`.
struct Layer<'a> {
    nodes: &'a [Value],
    edges: &'a [Value],
}

impl<'a> Layer<'a> {
    fn root(schema: &'a Value) -> Layer<'a> {
        Layer {
            nodes: array(schema.get("nodes")),
            edges: array(schema.get("edges")),
        }
    }

    /// The nested layers of this layer's nodes that have `blocks`.
    fn children(&self) -> impl Iterator<Item = Layer<'a>> + 'a {
        self.nodes.iter().filter_map(|node| {
            let blocks = node.get("blocks")?.as_array()?;
            Some(Layer {
                nodes: blocks,
                edges: array(node.get("edges")),
            })
        })
    }
}

fn array(value: Option<&Value>) -> &[Value] {
    value
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn str_field<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

fn schema_format(schema: &Value) -> Result<(), String> {
    if !schema.is_object() {
        return Err("Workflow schema must be a valid object".into());
    }
    let Some(nodes) = schema.get("nodes").and_then(Value::as_array) else {
        return Err("Workflow schema must have a valid nodes array".into());
    };
    let Some(edges) = schema.get("edges").and_then(Value::as_array) else {
        return Err("Workflow schema must have a valid edges array".into());
    };
    layer_format(nodes, edges)
}

fn layer_format(nodes: &[Value], edges: &[Value]) -> Result<(), String> {
    for (i, node) in nodes.iter().enumerate() {
        node_format(node, &format!("nodes[{i}]"))?;
    }
    for (i, edge) in edges.iter().enumerate() {
        edge_format(edge, &format!("edges[{i}]"))?;
    }
    for node in nodes {
        if let Some(blocks) = node.get("blocks").and_then(Value::as_array) {
            layer_format(blocks, array(node.get("edges")))?;
        }
    }
    Ok(())
}

fn non_empty_string(value: Option<&Value>) -> bool {
    value
        .and_then(Value::as_str)
        .is_some_and(|s| !crate::workflow::js::trim(s).is_empty())
}

fn node_format(node: &Value, path: &str) -> Result<(), String> {
    // `typeof node !== 'object'`: arrays pass, and then fail on their missing `id`.
    if !matches!(node, Value::Object(_) | Value::Array(_)) {
        return Err(format!("{path} must be a valid object"));
    }
    if !non_empty_string(node.get("id")) {
        return Err(format!("{path}.id must be a non-empty string"));
    }
    if !non_empty_string(node.get("type")) {
        return Err(format!("{path}.type must be a non-empty string"));
    }
    // `!node.meta || typeof node.meta !== 'object'`: arrays count as objects in JavaScript.
    if !matches!(node.get("meta"), Some(Value::Object(_) | Value::Array(_))) {
        return Err(format!("{path}.meta must be a valid object"));
    }
    let data = node.get("data");
    if !matches!(data, Some(Value::Object(_) | Value::Array(_))) {
        return Err(format!("{path}.data must be a valid object"));
    }
    if node.get("blocks").is_some_and(|b| !b.is_array()) {
        return Err(format!("{path}.blocks must be an array if present"));
    }
    if node.get("edges").is_some_and(|e| !e.is_array()) {
        return Err(format!("{path}.edges must be an array if present"));
    }
    for key in ["inputs", "outputs", "inputsValues"] {
        if let Some(v) = data.and_then(|d| d.get(key))
            && !matches!(v, Value::Object(_) | Value::Array(_))
        {
            return Err(format!(
                "{path}.data.{key} must be a valid object if present"
            ));
        }
    }
    if data
        .and_then(|d| d.get("title"))
        .is_some_and(|t| !t.is_string())
    {
        return Err(format!("{path}.data.title must be a string if present"));
    }
    Ok(())
}

fn edge_format(edge: &Value, path: &str) -> Result<(), String> {
    if !matches!(edge, Value::Object(_) | Value::Array(_)) {
        return Err(format!("{path} must be a valid object"));
    }
    if !non_empty_string(edge.get("sourceNodeID")) {
        return Err(format!("{path}.sourceNodeID must be a non-empty string"));
    }
    if !non_empty_string(edge.get("targetNodeID")) {
        return Err(format!("{path}.targetNodeID must be a non-empty string"));
    }
    for key in ["sourcePortID", "targetPortID"] {
        if edge.get(key).is_some_and(|p| !p.is_string()) {
            return Err(format!("{path}.{key} must be a string if present"));
        }
    }
    Ok(())
}

fn cycle_detection(layer: &Layer<'_>) -> Result<(), String> {
    const CYCLE: &str = "Workflow schema contains a cycle, which is not allowed";
    // Node ids in first-seen order, as the reference's Set iterates them.
    let mut ids: Vec<&str> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for node in layer.nodes {
        let id = str_field(node, "id");
        if !index.contains_key(id) {
            index.insert(id, ids.len());
            ids.push(id);
        }
    }
    let mut adjacency: Vec<Vec<usize>> = vec![Vec::new(); ids.len()];
    for edge in layer.edges {
        let (Some(&from), target) = (
            index.get(str_field(edge, "sourceNodeID")),
            str_field(edge, "targetNodeID"),
        ) else {
            continue;
        };
        // A target outside the layer is an unvisited dead end, as in the reference.
        adjacency[from].push(index.get(target).copied().unwrap_or(usize::MAX));
    }

    // Iterative three-colour DFS: a recursive one would overflow the stack on a long chain.
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour = vec![Colour::White; ids.len()];
    for root in 0..ids.len() {
        if colour[root] != Colour::White {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        colour[root] = Colour::Grey;
        while let Some((node, next_edge)) = stack.last_mut() {
            let node = *node;
            if let Some(&neighbour) = adjacency[node].get(*next_edge) {
                *next_edge += 1;
                if neighbour == usize::MAX {
                    continue;
                }
                match colour[neighbour] {
                    Colour::Grey => return Err(CYCLE.into()),
                    Colour::White => {
                        colour[neighbour] = Colour::Grey;
                        stack.push((neighbour, 0));
                    }
                    Colour::Black => {}
                }
            } else {
                colour[node] = Colour::Black;
                stack.pop();
            }
        }
    }
    for child in layer.children() {
        cycle_detection(&child)?;
    }
    Ok(())
}

fn edge_source_target_exist(layer: &Layer<'_>) -> Result<(), String> {
    let ids: HashSet<&str> = layer.nodes.iter().map(|n| str_field(n, "id")).collect();
    for edge in layer.edges {
        let source = str_field(edge, "sourceNodeID");
        if !ids.contains(source) {
            return Err(format!(
                "Workflow schema edge source node \"{source}\" not exist"
            ));
        }
        let target = str_field(edge, "targetNodeID");
        if !ids.contains(target) {
            return Err(format!(
                "Workflow schema edge target node \"{target}\" not exist"
            ));
        }
    }
    for child in layer.children() {
        edge_source_target_exist(&child)?;
    }
    Ok(())
}

fn count_types(layer: &Layer<'_>, first: &str, second: &str) -> (usize, usize) {
    layer
        .nodes
        .iter()
        .fold((0, 0), |(a, b), node| match str_field(node, "type") {
            t if t == first => (a + 1, b),
            t if t == second => (a, b + 1),
            _ => (a, b),
        })
}

fn start_end_node(layer: &Layer<'_>) -> Result<(), String> {
    let (starts, ends) = count_types(layer, "start", "end");
    match (starts, ends) {
        (0, 0) => return Err("Workflow schema must have a start node and an end node".into()),
        (0, _) => return Err("Workflow schema must have a start node".into()),
        (_, 0) => return Err("Workflow schema must have an end node".into()),
        (s, _) if s > 1 => return Err("Workflow schema must have only one start node".into()),
        (_, e) if e > 1 => return Err("Workflow schema must have only one end node".into()),
        _ => {}
    }
    for child in layer.children() {
        block_start_end_node(&child)?;
    }
    Ok(())
}

fn block_start_end_node(layer: &Layer<'_>) -> Result<(), String> {
    let (starts, ends) = count_types(layer, "block-start", "block-end");
    match (starts, ends) {
        (0, 0) => {
            return Err(
                "Workflow block schema must have a block-start node and a block-end node".into(),
            );
        }
        (0, _) => return Err("Workflow block schema must have a block-start node".into()),
        (_, 0) => return Err("Workflow block schema must have an block-end node".into()),
        (s, _) if s > 1 => {
            return Err("Workflow block schema must have only one block-start node".into());
        }
        (_, e) if e > 1 => {
            return Err("Workflow block schema must have only one block-end node".into());
        }
        _ => {}
    }
    for child in layer.children() {
        block_start_end_node(&child)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(id: &str, ty: &str) -> Value {
        json!({"id": id, "type": ty, "meta": {"position": {"x": 0, "y": 0}}, "data": {}})
    }

    fn edge(from: &str, to: &str) -> Value {
        json!({"sourceNodeID": from, "targetNodeID": to})
    }

    fn errors(schema: Value) -> Vec<String> {
        validate_schema(&schema)
    }

    #[test]
    fn a_valid_acyclic_workflow_has_no_errors() {
        let schema = json!({
            "nodes": [node("start", "start"), node("mid", "x"), node("isolated", "x"), node("end", "end")],
            "edges": [edge("start", "mid"), edge("mid", "end")]
        });
        assert!(errors(schema).is_empty());
    }

    #[test]
    fn schema_format_messages_match_the_reference() {
        let cases = [
            (json!(null), "Workflow schema must be a valid object"),
            (
                json!({"edges": []}),
                "Workflow schema must have a valid nodes array",
            ),
            (
                json!({"nodes": "x", "edges": []}),
                "Workflow schema must have a valid nodes array",
            ),
            (
                json!({"nodes": []}),
                "Workflow schema must have a valid edges array",
            ),
            (
                json!({"nodes": [1], "edges": []}),
                "nodes[0] must be a valid object",
            ),
            (
                json!({"nodes": [{"type": "t", "meta": {}, "data": {}}], "edges": []}),
                "nodes[0].id must be a non-empty string",
            ),
            (
                json!({"nodes": [{"id": " ", "type": "t", "meta": {}, "data": {}}], "edges": []}),
                "nodes[0].id must be a non-empty string",
            ),
            (
                json!({"nodes": [{"id": "a", "meta": {}, "data": {}}], "edges": []}),
                "nodes[0].type must be a non-empty string",
            ),
            (
                json!({"nodes": [{"id": "a", "type": "t", "data": {}}], "edges": []}),
                "nodes[0].meta must be a valid object",
            ),
            (
                json!({"nodes": [{"id": "a", "type": "t", "meta": {}}], "edges": []}),
                "nodes[0].data must be a valid object",
            ),
            (
                json!({"nodes": [{"id": "a", "type": "t", "meta": {}, "data": {}, "blocks": {}}], "edges": []}),
                "nodes[0].blocks must be an array if present",
            ),
            (
                json!({"nodes": [{"id": "a", "type": "t", "meta": {}, "data": {}, "edges": 1}], "edges": []}),
                "nodes[0].edges must be an array if present",
            ),
            (
                json!({"nodes": [{"id": "a", "type": "t", "meta": {}, "data": {"inputs": 1}}], "edges": []}),
                "nodes[0].data.inputs must be a valid object if present",
            ),
            (
                json!({"nodes": [{"id": "a", "type": "t", "meta": {}, "data": {"outputs": null}}], "edges": []}),
                "nodes[0].data.outputs must be a valid object if present",
            ),
            (
                json!({"nodes": [{"id": "a", "type": "t", "meta": {}, "data": {"inputsValues": "x"}}], "edges": []}),
                "nodes[0].data.inputsValues must be a valid object if present",
            ),
            (
                json!({"nodes": [{"id": "a", "type": "t", "meta": {}, "data": {"title": 1}}], "edges": []}),
                "nodes[0].data.title must be a string if present",
            ),
            (
                json!({"nodes": [], "edges": [null]}),
                "edges[0] must be a valid object",
            ),
            (
                json!({"nodes": [], "edges": [{"targetNodeID": "b"}]}),
                "edges[0].sourceNodeID must be a non-empty string",
            ),
            (
                json!({"nodes": [], "edges": [{"sourceNodeID": "a"}]}),
                "edges[0].targetNodeID must be a non-empty string",
            ),
            (
                json!({"nodes": [], "edges": [{"sourceNodeID": "a", "targetNodeID": "b", "sourcePortID": 1}]}),
                "edges[0].sourcePortID must be a string if present",
            ),
            (
                json!({"nodes": [], "edges": [{"sourceNodeID": "a", "targetNodeID": "b", "targetPortID": false}]}),
                "edges[0].targetPortID must be a string if present",
            ),
        ];
        for (schema, expected) in cases {
            assert_eq!(
                errors(schema.clone()),
                vec![expected.to_string()],
                "{schema}"
            );
        }
    }

    #[test]
    fn nested_block_format_errors_use_the_block_index() {
        let mut loop_node = node("loop", "loop");
        loop_node["blocks"] = json!([node("bs", "block-start"), {"id": "x"}]);
        let schema = json!({"nodes": [node("start", "start"), loop_node], "edges": []});
        assert_eq!(
            errors(schema),
            vec!["nodes[1].type must be a non-empty string"]
        );
    }

    #[test]
    fn cycles_are_detected_including_self_loops_and_nested_blocks() {
        let cyclic = json!({
            "nodes": [node("start", "start"), node("a", "x"), node("b", "x"), node("end", "end")],
            "edges": [edge("start", "a"), edge("a", "b"), edge("b", "a"), edge("b", "end")]
        });
        assert_eq!(
            errors(cyclic),
            vec!["Workflow schema contains a cycle, which is not allowed"]
        );
        let self_loop = json!({
            "nodes": [node("start", "start"), node("s", "x"), node("end", "end")],
            "edges": [edge("start", "s"), edge("s", "s"), edge("s", "end")]
        });
        assert_eq!(
            errors(self_loop),
            vec!["Workflow schema contains a cycle, which is not allowed"]
        );
        let mut container = node("c", "loop");
        container["blocks"] = json!([node("bs", "block-start"), node("be", "block-end")]);
        container["edges"] = json!([edge("bs", "be"), edge("be", "bs")]);
        let nested = json!({
            "nodes": [node("start", "start"), container, node("end", "end")],
            "edges": [edge("start", "c"), edge("c", "end")]
        });
        assert_eq!(
            errors(nested),
            vec!["Workflow schema contains a cycle, which is not allowed"]
        );
    }

    #[test]
    fn a_long_chain_does_not_overflow_the_stack() {
        let n = 200_000;
        let mut nodes = vec![node("start", "start")];
        let mut edges = vec![edge("start", "n0")];
        for i in 0..n {
            nodes.push(node(&format!("n{i}"), "x"));
            if i + 1 < n {
                edges.push(edge(&format!("n{i}"), &format!("n{}", i + 1)));
            }
        }
        nodes.push(node("end", "end"));
        edges.push(edge(&format!("n{}", n - 1), "end"));
        assert!(errors(json!({"nodes": nodes, "edges": edges})).is_empty());
    }

    #[test]
    fn edges_must_point_at_nodes_of_their_layer() {
        let schema = json!({
            "nodes": [node("start", "start"), node("end", "end")],
            "edges": [edge("start", "nonexistent")]
        });
        assert_eq!(
            errors(schema),
            vec!["Workflow schema edge target node \"nonexistent\" not exist"]
        );
        let schema = json!({
            "nodes": [node("start", "start"), node("end", "end")],
            "edges": [edge("ghost", "end")]
        });
        assert_eq!(
            errors(schema),
            vec!["Workflow schema edge source node \"ghost\" not exist"]
        );
    }

    #[test]
    fn start_and_end_node_messages_match_the_reference() {
        let cases = [
            (
                vec![],
                "Workflow schema must have a start node and an end node",
            ),
            (
                vec![node("e", "end")],
                "Workflow schema must have a start node",
            ),
            (
                vec![node("s", "start")],
                "Workflow schema must have an end node",
            ),
            (
                vec![node("s", "start"), node("s2", "start"), node("e", "end")],
                "Workflow schema must have only one start node",
            ),
            (
                vec![node("s", "start"), node("e", "end"), node("e2", "end")],
                "Workflow schema must have only one end node",
            ),
        ];
        for (nodes, expected) in cases {
            assert_eq!(
                errors(json!({"nodes": nodes, "edges": []})),
                vec![expected.to_string()]
            );
        }
    }

    #[test]
    fn block_start_and_end_messages_match_the_reference() {
        let cases = [
            (
                vec![],
                "Workflow block schema must have a block-start node and a block-end node",
            ),
            (
                vec![node("be", "block-end")],
                "Workflow block schema must have a block-start node",
            ),
            (
                vec![node("bs", "block-start")],
                "Workflow block schema must have an block-end node",
            ),
            (
                vec![
                    node("bs", "block-start"),
                    node("bs2", "block-start"),
                    node("be", "block-end"),
                ],
                "Workflow block schema must have only one block-start node",
            ),
            (
                vec![
                    node("bs", "block-start"),
                    node("be", "block-end"),
                    node("be2", "block-end"),
                ],
                "Workflow block schema must have only one block-end node",
            ),
        ];
        for (blocks, expected) in cases {
            let mut container = node("loop", "loop");
            container["blocks"] = json!(blocks);
            let schema = json!({
                "nodes": [node("s", "start"), container, node("e", "end")],
                "edges": []
            });
            assert_eq!(errors(schema), vec![expected.to_string()]);
        }
    }

    #[test]
    fn each_validator_contributes_its_first_error() {
        let schema = json!({
            "nodes": [node("start1", "start"), node("start2", "start"), node("A", "x"), node("B", "x")],
            "edges": [edge("start1", "A"), edge("A", "B"), edge("B", "A"), edge("A", "nonexistent")]
        });
        assert_eq!(
            errors(schema),
            vec![
                "Workflow schema contains a cycle, which is not allowed",
                "Workflow schema edge target node \"nonexistent\" not exist",
                "Workflow schema must have an end node",
            ]
        );
    }
}
