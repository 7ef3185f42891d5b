//! `POST /api/task/run-node`: one node run alone with given inputs, through the queue like a
//! run: its outputs, its error, and a 400 naming the field for what cannot run.

use serde_json::{Value, json};

use crate::helpers::{
    MockLlm, Stack, both_deployments,
    runs::{fixture, report},
};

async fn run_node(stack: &Stack, body: Value) -> (u16, Value) {
    let r = stack
        .client
        .post(stack.url("/api/task/run-node"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

both_deployments! {
    async fn a_node_runs_alone_and_answers_its_outputs(stack: Stack) {
        let llm = MockLlm::start().await;
        let schema = fixture("basic", &llm).to_string();
        // The llm node: given inputs replace its references; its constants (key, host) stay.
        let (status, body) = run_node(&stack, json!({"schema": schema, "nodeID": "llm_0",
            "inputs": {"modelName": "m", "temperature": 0.5, "prompt": "just this"}})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "succeeded", "{body}");
        assert_eq!(body["nodeID"], "llm_0");
        let answer = body["outputs"]["result"].as_str().unwrap();
        assert!(answer.contains("my name is m") && answer.contains("prompt is \"just this\""), "{answer}");
        assert!(answer.contains("You are a helpful AI assistant."), "the constant system prompt stays: {answer}");
        assert!(body["timeCost"].is_number(), "{body}");
        assert_eq!(llm.requests().len(), 1, "one provider call");
        // It was a run like any other: its report is there, with that one node.
        let id = body["taskID"].as_str().unwrap();
        let rep = report(&stack, id).await;
        assert_eq!(rep["reports"]["llm_0"]["snapshots"][0]["outputs"]["result"], answer);

        // A code node, inside nothing; the schema may be given as an object too.
        let (status, body) = run_node(&stack, json!({"schema": fixture("code", &llm), "nodeID": "code_0",
            "inputs": {"input": "ab"}})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["outputs"]["key0"], "abab", "{body}");
        assert_eq!(body["outputs"]["key1"], json!(["hello", "world"]), "{body}");
    }
}

both_deployments! {
    async fn a_failing_node_answers_its_error(stack: Stack) {
        let llm = MockLlm::start().await;
        let schema = fixture("basic", &llm).to_string();
        let (status, body) = run_node(&stack, json!({"schema": schema, "nodeID": "llm_0",
            "inputs": {"modelName": "status-500", "temperature": 0.5, "prompt": "p"}})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "failed", "{body}");
        assert!(body["error"].as_str().unwrap().contains("500"), "{body}");
        assert!(body.get("outputs").is_none(), "{body}");
        // An input the node declares required and nobody gave: refused before it runs.
        let calls = llm.requests().len();
        let (status, body) = run_node(&stack, json!({"schema": schema, "nodeID": "llm_0",
            "inputs": {"modelName": "m", "temperature": 0.5}})).await;
        assert_eq!(status, 400, "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.starts_with("inputs:") && message.contains("\"prompt\""), "{body}");
        assert_eq!(llm.requests().len(), calls, "a refused node makes no provider call");
    }
}

both_deployments! {
    async fn what_cannot_run_alone_answers_400_naming_the_field(stack: Stack) {
        let llm = MockLlm::start().await;
        let schema = fixture("code", &llm).to_string();
        let cases = [
            (json!({"schema": schema, "nodeID": "nope", "inputs": {}}), "nodeID", "no node with id \"nope\""),
            (json!({"schema": schema, "nodeID": "start_0", "inputs": {}}), "nodeID", "a start node cannot run alone"),
            (json!({"schema": schema, "nodeID": "code_0", "inputs": {"input": 3}}), "inputs", "input"),
            (json!({"schema": schema, "nodeID": "code_0", "inputs": {"zzz": 1}}), "inputs", "no input \"zzz\""),
            (json!({"schema": schema, "nodeID": "code_0", "inputs": []}), "inputs", "inputs must be an object"),
            (json!({"schema": schema, "inputs": {}}), "nodeID", "nodeID is required"),
            (json!({"nodeID": "code_0", "inputs": {}}), "schema", "schema is required"),
            (json!({"schema": "{nope", "nodeID": "code_0"}), "schema", "schema is not valid JSON"),
            (json!({"schema": schema, "nodeID": "code_0", "inputs": {"input": "a"}, "wait": "soon"}), "wait", "wait must be"),
        ];
        for (body, field, message) in cases {
            let (status, answer) = run_node(&stack, body.clone()).await;
            assert_eq!(status, 400, "{body} -> {answer}");
            assert_eq!(answer["code"], "validate_error", "{answer}");
            let text = answer["message"].as_str().unwrap();
            assert!(text.contains(field) && text.contains(message), "{body} -> {text}");
        }
    }
}

/// Swagger documents the route (synchronous answer, 202, the 400s) and the `node_delta` event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_documents_run_node_and_node_delta() {
    let options = crate::helpers::StackOptions::new(crate::helpers::Mode::Embedded);
    let Some(stack) = Stack::start_with(options).await else {
        return;
    };
    let spec: Value = stack.get_json("/api/openapi.json").await;
    let post = &spec["paths"]["/api/task/run-node"]["post"];
    for status in ["200", "202", "400"] {
        assert!(post["responses"][status].is_object(), "{status}: {post}");
    }
    assert!(
        post["description"]
            .as_str()
            .unwrap()
            .contains("synchronously"),
        "{post}"
    );
    let schema = &spec["components"]["schemas"]["RunNodeInput"]["properties"];
    for field in ["schema", "nodeID", "inputs", "wait"] {
        assert!(schema[field].is_object(), "{field}: {schema}");
    }
    let stream = spec["paths"]["/api/task/stream"]["get"].to_string();
    assert!(stream.contains("node_delta"), "{stream}");
}
