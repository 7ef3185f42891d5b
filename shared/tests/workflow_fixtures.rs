//! Every fixture of spec section 5, asserting results, statuses and snapshots the way the
//! reference's own tests do. LLM nodes talk HTTP to a loopback mock; the http node to an echo
//! server.

mod support;

use serde_json::{Value, json};
use shared::workflow::{Engine, WorkflowStatus};
use support::*;

const KEY: &str = "sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

fn engine() -> Engine {
    Engine::new(test_config())
}

// ---------------------------------------------------------------- 5.1 basic

#[tokio::test]
async fn basic_runs_start_llm_end_and_returns_the_end_inputs() {
    let llm = MockLlm::start().await;
    let inputs = json!({
        "model_name": "ai-model",
        "llm_settings": {"temperature": 0.5},
        "work": {"role": "Chat", "task": "Tell me a story about love"}
    });
    let ran = run_with(&engine(), &llm.rewrite(&fixture("basic")), inputs.clone()).await;

    let prompt = "<Role>Chat</Role>\n\n<Task>\nTell me a story about love\n</Task>";
    let answer = mock_sentence("ai-model", "0.5", "You are a helpful AI assistant.", prompt);
    let result = json!({"llm_res": answer, "llm_task": "Tell me a story about love"});
    assert_eq!(ran.outcome.status, WorkflowStatus::Succeeded);
    assert_eq!(Value::Object(ran.outcome.outputs.clone()), result);
    assert_eq!(Value::Object(ran.report.outputs.clone()), result);
    assert_eq!(
        ran.snapshots,
        vec![
            json!({"nodeID": "start_0", "inputs": {}, "outputs": inputs, "data": {}}),
            json!({
                "nodeID": "llm_0",
                "inputs": {
                    "modelName": "ai-model",
                    "apiKey": KEY,
                    "apiHost": llm.api_host(),
                    "temperature": 0.5,
                    "prompt": prompt,
                    "systemPrompt": "You are a helpful AI assistant."
                },
                "outputs": {"result": answer},
                "data": {}
            }),
            json!({"nodeID": "end_0", "inputs": result, "outputs": result, "data": {}}),
        ]
    );
    for node in ["start_0", "llm_0", "end_0"] {
        assert_eq!(ran.status_of(node), Some("succeeded"), "{node}");
    }
    assert_eq!(ran.report.workflow_status.status, WorkflowStatus::Succeeded);
    assert!(ran.report.workflow_status.terminated);
    assert_eq!(
        llm.stats.requests.load(std::sync::atomic::Ordering::SeqCst),
        1
    );
}

#[tokio::test]
async fn a_run_is_processing_while_its_nodes_execute() {
    let llm = MockLlm::start().await;
    let schema = std::sync::Arc::new(
        shared::workflow::parse_schema(&llm.rewrite(&fixture("basic"))).unwrap(),
    );
    let inputs = object(
        json!({"model_name": "slow", "work": {"role": "r", "task": "t"}, "llm_settings": {"temperature": 1}}),
    );
    let handle = shared::workflow::ReportHandle::new("task", inputs.clone());
    let cancel = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn({
        let (engine, handle, cancel) = (engine(), handle.clone(), cancel.clone());
        async move { engine.run(schema, inputs, cancel, handle).await }
    });
    while handle.snapshot().reports.get("llm_0").is_none() {
        handle.changed().await;
    }
    let report = handle.snapshot();
    assert_eq!(report.workflow_status.status, WorkflowStatus::Processing);
    assert!(!report.workflow_status.terminated);
    assert_eq!(
        report.reports["llm_0"].status.status,
        WorkflowStatus::Processing
    );
    cancel.cancel();
    assert_eq!(run.await.unwrap().status, WorkflowStatus::Canceled);
}

// ---------------------------------------------------------------- 5.2 branch

fn branch_conditions() -> Value {
    json!([
        {"value": {"left": {"type": "ref", "content": ["start_0", "model_id"]}, "operator": "eq", "right": {"type": "constant", "content": 1}}, "key": "if_1"},
        {"value": {"left": {"type": "ref", "content": ["start_0", "model_id"]}, "operator": "eq", "right": {"type": "constant", "content": 2}}, "key": "if_2"}
    ])
}

async fn check_branch(model_id: i64, prompt: &str, chosen: &str, branch: &str, temp: &str) {
    let llm = MockLlm::start().await;
    let inputs = json!({"model_id": model_id, "prompt": prompt});
    let ran = run_with(&engine(), &llm.rewrite(&fixture("branch")), inputs.clone()).await;

    let n = &chosen[4..];
    let answer = mock_sentence(
        &format!("AI_MODEL_{n}"),
        temp,
        &format!("I'm Model {n}."),
        prompt,
    );
    let key = format!("m{n}_res");
    assert_eq!(ran.outcome.status, WorkflowStatus::Succeeded);
    assert_eq!(
        Value::Object(ran.outcome.outputs.clone()),
        json!({key.clone(): answer})
    );
    assert_eq!(ran.snapshots.len(), 4);
    assert_eq!(
        ran.snapshots[0],
        json!({"nodeID": "start_0", "inputs": {}, "outputs": inputs, "data": {}})
    );
    assert_eq!(
        ran.snapshots[1],
        json!({"nodeID": "condition_0", "inputs": {}, "outputs": {}, "data": {"conditions": branch_conditions()}, "branch": branch})
    );
    assert_eq!(ran.snapshots[2]["nodeID"], chosen);
    assert_eq!(ran.snapshots[2]["outputs"], json!({"result": answer}));
    assert_eq!(
        ran.snapshots[2]["inputs"],
        json!({
            "modelName": format!("AI_MODEL_{n}"), "apiKey": KEY, "apiHost": llm.api_host(),
            "temperature": temp.parse::<f64>().unwrap(), "systemPrompt": format!("I'm Model {n}."), "prompt": prompt
        })
    );
    assert_eq!(
        ran.snapshots[3],
        json!({"nodeID": "end_0", "inputs": {key.clone(): answer}, "outputs": {key: answer}, "data": {}})
    );
    for node in ["start_0", "condition_0", chosen, "end_0"] {
        assert_eq!(ran.status_of(node), Some("succeeded"), "{node}");
    }
    for node in ["llm_1", "llm_2", "llm_3"]
        .into_iter()
        .filter(|n| *n != chosen)
    {
        assert!(ran.report.reports.get(node).is_none(), "{node} was skipped");
    }
}

#[tokio::test]
async fn branch_takes_if_1_for_model_1() {
    check_branch(1, "Tell me a joke", "llm_1", "if_1", "0.5").await;
}

#[tokio::test]
async fn branch_takes_if_2_for_model_2() {
    check_branch(2, "Tell me a story", "llm_2", "if_2", "0.6").await;
}

#[tokio::test]
async fn branch_takes_else_when_no_condition_holds() {
    check_branch(3, "Tell me a movie", "llm_3", "else", "0.7").await;
}

#[tokio::test]
async fn a_branch_without_a_port_fails_the_condition_node() {
    let llm = MockLlm::start().await;
    let schema = llm
        .rewrite(&fixture("branch"))
        .replace(r#""sourcePortID": "else""#, r#""sourcePortID": "other""#);
    let ran = run_with(&engine(), &schema, json!({"model_id": 3, "prompt": "x"})).await;
    assert_eq!(ran.outcome.status, WorkflowStatus::Failed);
    assert_eq!(ran.status_of("condition_0"), Some("failed"));
    assert_eq!(ran.errors(), vec!["Branch \"else\" not found"]);
    assert_eq!(
        ran.report.messages.error[0].node_id.as_deref(),
        Some("condition_0")
    );
    assert!(ran.report.reports.get("end_0").is_none());
}

// ------------------------------------------------------- branch-two-layers

#[tokio::test]
async fn branch_two_layers_chains_two_llms_on_the_chosen_side() {
    let llm = MockLlm::start().await;
    let schema = llm.rewrite(&fixture("branch-two-layers"));
    for (model_id, prompt, first, second, key) in [
        (
            1,
            "Tell me a joke",
            ("AI_MODEL_1", "0.5", "I'm Model 1"),
            ("AI_MODEL_3", "0.5", "I'm Model 3"),
            "m3_res",
        ),
        (
            2,
            "Tell me a story",
            ("AI_MODEL_2", "0.6", "I'm Model 2"),
            ("AI_MODEL_4", "0.5", "I'm Model 4"),
            "m4_res",
        ),
    ] {
        let ran = run_with(
            &engine(),
            &schema,
            json!({"model_id": model_id, "prompt": prompt}),
        )
        .await;
        let inner = mock_sentence(first.0, first.1, first.2, prompt);
        let outer = mock_sentence(second.0, second.1, second.2, &inner);
        assert_eq!(ran.outcome.status, WorkflowStatus::Succeeded);
        assert_eq!(
            Value::Object(ran.outcome.outputs.clone()),
            json!({key: outer})
        );
        let (taken, skipped): (&[&str], &[&str]) = if model_id == 1 {
            (&["llm_1", "llm_3"], &["llm_2", "llm_4"])
        } else {
            (&["llm_2", "llm_4"], &["llm_1", "llm_3"])
        };
        for node in ["start_0", "condition_0", "end_0"].iter().chain(taken) {
            assert_eq!(ran.status_of(node), Some("succeeded"), "{node}");
        }
        for node in skipped {
            assert!(
                ran.report.reports.get(*node).is_none(),
                "{node} was skipped"
            );
        }
    }
}

// ------------------------------------------------------------------ 5.3 loop

fn tasks(letters: &str) -> Vec<String> {
    letters.chars().map(|c| format!("TASK - {c}")).collect()
}

#[tokio::test]
async fn loop_runs_the_body_once_per_item_and_collects_outputs() {
    let llm = MockLlm::start().await;
    let items = tasks("ABCDEFGH");
    let ran = run_with(
        &engine(),
        &llm.rewrite(&fixture("loop")),
        json!({"tasks": items}),
    )
    .await;

    let answers: Vec<String> = items
        .iter()
        .enumerate()
        .map(|(i, t)| {
            mock_sentence(
                "AI_MODEL_1",
                "0.6",
                &format!("You are a helpful assistant No.{i}"),
                t,
            )
        })
        .collect();
    assert_eq!(ran.outcome.status, WorkflowStatus::Succeeded);
    assert_eq!(
        Value::Object(ran.outcome.outputs.clone()),
        json!({"outputs": answers})
    );

    let order: Vec<&str> = ran
        .snapshots
        .iter()
        .map(|s| s["nodeID"].as_str().unwrap())
        .collect();
    let mut expected = vec!["start_0", "loop_0"];
    for _ in 0..8 {
        expected.extend(["block_start_0", "llm_0", "block_end_0"]);
    }
    expected.push("end_0");
    assert_eq!(order, expected);

    let loop_snapshot = ran.snapshots_of("loop_0")[0];
    assert_eq!(loop_snapshot["inputs"], json!({}));
    assert_eq!(
        loop_snapshot["outputs"],
        json!({"results": answers, "items": items, "indexes": [0, 1, 2, 3, 4, 5, 6, 7]})
    );
    assert_eq!(
        loop_snapshot["data"],
        json!({
            "loopFor": {"type": "ref", "content": ["start_0", "tasks"]},
            "loopOutputs": {
                "results": {"type": "ref", "content": ["llm_0", "result"]},
                "items": {"type": "ref", "content": ["loop_0_locals", "item"]},
                "indexes": {"type": "ref", "content": ["loop_0_locals", "index"]}
            }
        })
    );
    for node in ["llm_0", "block_start_0", "block_end_0"] {
        assert_eq!(ran.report.reports[node].snapshots.len(), 8, "{node}");
        assert_eq!(ran.status_of(node), Some("succeeded"));
    }
    assert_eq!(ran.snapshots_of("llm_0")[3]["inputs"]["prompt"], "TASK - D");
}

#[tokio::test]
async fn loop_iterates_object_entries_with_keys() {
    let inputs =
        json!({"taskMap": {"first": "TASK - A", "second": "TASK - B", "third": "TASK - C"}});
    let ran = run_with(&engine(), &fixture("loop-object"), inputs).await;
    assert_eq!(
        ran.outcome.status,
        WorkflowStatus::Succeeded,
        "{:?}",
        ran.errors()
    );
    assert_eq!(
        Value::Object(ran.outcome.outputs),
        json!({
            "items": ["TASK - A", "TASK - B", "TASK - C"],
            "keys": ["first", "second", "third"],
            "indexes": [0, 1, 2]
        })
    );
}

#[tokio::test]
async fn loop_with_an_empty_array_produces_empty_outputs() {
    let llm = MockLlm::start().await;
    let ran = run_with(
        &engine(),
        &llm.rewrite(&fixture("loop")),
        json!({"tasks": []}),
    )
    .await;
    assert_eq!(ran.outcome.status, WorkflowStatus::Succeeded);
    assert_eq!(Value::Object(ran.outcome.outputs), json!({"outputs": []}));
    assert!(ran.report.reports.get("llm_0").is_none());
}

// ---------------------------------------------------- 5.4 loop-break-continue

#[tokio::test]
async fn loop_break_continue_skips_early_items_and_stops_at_the_break() {
    let llm = MockLlm::start().await;
    let items = tasks("ABCDEFGHI");
    let ran = run_with(
        &engine(),
        &llm.rewrite(&fixture("loop-break-continue")),
        json!({"tasks": items}),
    )
    .await;

    let answers: Vec<String> = (3..=6)
        .map(|i| {
            mock_sentence(
                "AI_MODEL_1",
                "0.6",
                &format!("You are a helpful assistant No.{i}"),
                &items[i],
            )
        })
        .collect();
    assert_eq!(
        ran.outcome.status,
        WorkflowStatus::Succeeded,
        "{:?}",
        ran.errors()
    );
    assert_eq!(
        Value::Object(ran.outcome.outputs.clone()),
        json!({"outputs": answers})
    );
    assert_eq!(
        ran.snapshots_of("start_0")[0]["outputs"]["tasks"],
        json!(items)
    );

    let loop_outputs = &ran.snapshots_of("loop_0")[0]["outputs"];
    assert_eq!(loop_outputs["results"], json!(answers));
    assert_eq!(
        loop_outputs["items"],
        json!(["TASK - D", "TASK - E", "TASK - F", "TASK - G"])
    );
    assert_eq!(loop_outputs["indexes"], json!([3, 4, 5, 6]));

    let llm_snapshots = ran.snapshots_of("llm_0");
    assert_eq!(llm_snapshots.len(), 4);
    for (n, snapshot) in llm_snapshots.iter().enumerate() {
        let i = n + 3;
        assert_eq!(
            snapshot["inputs"]["systemPrompt"],
            format!("You are a helpful assistant No.{i}")
        );
        assert_eq!(snapshot["inputs"]["prompt"], items[i]);
    }
    assert_eq!(ran.snapshots_of("continue_0").len(), 3);
    assert_eq!(ran.snapshots_of("break_0").len(), 1);
    for node in [
        "start_0",
        "loop_0",
        "llm_0",
        "end_0",
        "condition_0",
        "continue_0",
        "break_0",
    ] {
        assert_eq!(ran.status_of(node), Some("succeeded"), "{node}");
    }
    assert_eq!(ran.report.reports["llm_0"].snapshots.len(), 4);
    assert_eq!(ran.report.reports["condition_0"].snapshots.len(), 8);
    assert_eq!(ran.report.reports["continue_0"].snapshots.len(), 3);
    assert_eq!(ran.report.reports["break_0"].snapshots.len(), 1);
}

// ------------------------------------ 5.5 end-constant, start-default, global

fn constant_values() -> Value {
    json!({
        "str": "ABC",
        "num": 123.123,
        "int": 123,
        "bool": false,
        "obj": {"key_str": "value", "key_int": 123, "key_bool": true},
        "map": {"key": "value"},
        "arr_str": ["AAA", "BBB", "CCC"],
        "date": "2000-01-01T00:00:00.000Z"
    })
}

fn prefixed(prefix: &str) -> Value {
    let map = object(constant_values())
        .into_iter()
        .map(|(k, v)| (format!("{prefix}{k}"), v))
        .collect();
    Value::Object(map)
}

#[tokio::test]
async fn end_constant_decodes_each_constant_to_its_declared_type() {
    let ran = run_with(&engine(), &fixture("end-constant"), json!({})).await;
    let result = constant_values();
    assert_eq!(ran.outcome.status, WorkflowStatus::Succeeded);
    assert_eq!(Value::Object(ran.outcome.outputs), result);
    assert_eq!(
        ran.snapshots,
        vec![
            json!({"nodeID": "start_0", "inputs": {}, "outputs": {}, "data": {}}),
            json!({"nodeID": "end_0", "inputs": result, "outputs": result, "data": {}}),
        ]
    );
}

#[tokio::test]
async fn start_default_values_resolve_through_refs() {
    let ran = run_with(&engine(), &fixture("start-default"), json!({})).await;
    let result = prefixed("s_");
    assert_eq!(ran.outcome.status, WorkflowStatus::Succeeded);
    assert_eq!(Value::Object(ran.outcome.outputs), result);
    // The snapshot keeps the raw (empty) outputs; refs still see the defaults.
    assert_eq!(
        ran.snapshots,
        vec![
            json!({"nodeID": "start_0", "inputs": {}, "outputs": {}, "data": {}}),
            json!({"nodeID": "end_0", "inputs": result, "outputs": result, "data": {}}),
        ]
    );
}

#[tokio::test]
async fn global_variables_resolve_through_the_global_root() {
    let ran = run_with(&engine(), &fixture("global-variable"), json!({})).await;
    let result = prefixed("g_");
    assert_eq!(ran.outcome.status, WorkflowStatus::Succeeded);
    assert_eq!(Value::Object(ran.outcome.outputs), result);
    assert_eq!(ran.snapshots[1]["inputs"], result);
}

// ------------------------------------------------------------------ 5.6 http

#[tokio::test]
async fn http_posts_the_rendered_request_and_returns_the_body_and_status() {
    let echo = EchoServer::start().await;
    let schema = fixture("http").replace("https://{{start_0.host}}", "http://{{start_0.host}}");
    let ran = run_with(
        &engine(),
        &schema,
        json!({"host": echo.host(), "path": "/post"}),
    )
    .await;

    assert_eq!(
        ran.outcome.status,
        WorkflowStatus::Succeeded,
        "{:?}",
        ran.errors()
    );
    assert_eq!(echo.requests.load(std::sync::atomic::Ordering::SeqCst), 1);
    let inputs = &ran.snapshots_of("http_0")[0]["inputs"];
    assert_eq!(
        inputs,
        &json!({
            "method": "POST",
            "url": format!("http://{}/post", echo.host()),
            "headers": {},
            "params": {},
            "bodyType": "JSON",
            "body": "{}",
            "retryTimes": 1,
            "timeout": 10000
        })
    );
    let res = ran.outcome.outputs["res"].as_str().unwrap();
    let echoed: Value = serde_json::from_str(res).unwrap();
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["path"], "/post");
    assert_eq!(echoed["body"], "{}");
    assert_eq!(echoed["headers"]["content-type"], "application/json");
    assert_eq!(ran.outcome.outputs["code"], 200);
    let outputs = &ran.snapshots_of("http_0")[0]["outputs"];
    assert_eq!(outputs["headers"]["x-echo"], "1");
    assert_eq!(ran.status_of("http_0"), Some("succeeded"));
}

#[tokio::test]
async fn http_returns_non_2xx_status_codes_without_failing() {
    let echo = EchoServer::start().await;
    let schema = fixture("http").replace("https://{{start_0.host}}", "http://{{start_0.host}}");
    for code in [201, 404, 500] {
        let ran = run_with(
            &engine(),
            &schema,
            json!({"host": echo.host(), "path": format!("/status/{code}")}),
        )
        .await;
        assert_eq!(ran.outcome.status, WorkflowStatus::Succeeded);
        assert_eq!(ran.outcome.outputs["code"], code);
        assert_eq!(ran.outcome.outputs["res"], format!("status {code}"));
        assert_eq!(ran.status_of("http_0"), Some("succeeded"));
    }
}

#[tokio::test]
async fn http_fails_the_workflow_when_the_request_cannot_be_sent() {
    // A port that was just free: nothing listens there.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let schema = fixture("http").replace("https://{{start_0.host}}", "http://{{start_0.host}}");
    let ran = run_with(
        &engine(),
        &schema,
        json!({"host": format!("127.0.0.1:{port}"), "path": "/post"}),
    )
    .await;
    assert_eq!(ran.outcome.status, WorkflowStatus::Failed);
    assert_eq!(ran.report.workflow_status.status, WorkflowStatus::Failed);
    assert_eq!(ran.status_of("http_0"), Some("failed"));
    let error = &ran.errors()[0];
    assert!(error.starts_with("HTTP request failed"), "{error}");
    assert_eq!(ran.raw_snapshots[1].error.as_deref(), Some(error.as_str()));
    assert!(
        Value::Object(ran.outcome.outputs)
            .as_object()
            .unwrap()
            .is_empty()
    );
}

// ------------------------------------------------------ 5.7 validate-inputs

fn valid_inputs() -> Vec<Value> {
    let dd: Vec<Value> = (0..100)
        .map(|_| json!({"DA": "repeated", "DB": {"DBA": "many items"}}))
        .collect();
    vec![
        json!({"AA": "hello", "BB": 42, "CC": {"CA": "world", "CB": 100, "CC": 200, "CD": true, "CE": {"CEA": "nested string"}, "CF": ["item1", "item2", "item3"]}, "DD": [{"DA": "optional string", "DB": {"DBA": "deep nested"}}], "EE": {"EA": {"EAA": "required nested"}, "EB": "optional string"}}),
        json!({"AA": "complex example", "BB": -999, "CC": {"CA": "test", "CB": 0, "CC": 999999, "CD": false, "CE": {"CEA": "another nested value"}, "CF": ["a", "b", "c", "d", "e"]}, "DD": [{"DA": "first item", "DB": {"DBA": "first nested"}}, {"DA": "second item"}, {"DB": {"DBA": "third nested"}}], "EE": {"EA": {"EAA": "required value"}}}),
        json!({"AA": "", "BB": 0, "CC": {"CA": "", "CB": 0, "CC": 0, "CD": false, "CE": {"CEA": ""}, "CF": []}, "DD": [], "EE": {"EA": {"EAA": ""}}}),
        json!({"AA": "a", "BB": 9007199254740991i64, "CC": {"CA": "very long string that tests the boundaries of what might be acceptable in real world scenarios", "CB": -9007199254740991i64, "CC": 1, "CD": true, "CE": {"CEA": "boundary test"}, "CF": ["single"]}, "DD": dd, "EE": {"EA": {"EAA": "boundary"}, "EB": ""}}),
    ]
}

#[tokio::test]
async fn validate_inputs_returns_valid_inputs_unchanged() {
    for inputs in valid_inputs() {
        let ran = run_with(&engine(), &fixture("validate-inputs"), inputs.clone()).await;
        assert_eq!(
            ran.outcome.status,
            WorkflowStatus::Succeeded,
            "{:?}",
            ran.errors()
        );
        assert_eq!(Value::Object(ran.outcome.outputs), inputs);
    }
}

#[tokio::test]
async fn validate_inputs_fails_the_task_with_the_reference_messages() {
    let base = valid_inputs()[0].clone();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = base.clone();
        f(&mut v);
        v
    };
    let cases = [
        (
            with(&|v| {
                v.as_object_mut().unwrap().remove("AA");
            }),
            "Missing required property \"AA\" at root",
        ),
        (
            with(&|v| v["AA"] = json!(123)),
            "Expected string at AA, but got: number",
        ),
        (
            with(&|v| v["BB"] = json!("test-string")),
            "Expected integer at BB, but got: \"test-string\"",
        ),
        (
            with(&|v| {
                v["CC"].as_object_mut().unwrap().remove("CA");
            }),
            "Missing required property \"CA\" at CC",
        ),
        (
            with(&|v| v["CC"]["CE"] = json!({})),
            "Missing required property \"CEA\" at CC.CE",
        ),
        (
            with(&|v| v["CC"]["CF"] = json!([1, 2, 3])),
            "Expected string at CC.CF[0], but got: number",
        ),
        (
            with(&|v| v["DD"] = json!("not an array")),
            "Expected array at DD, but got: string",
        ),
        (
            with(&|v| {
                v.as_object_mut().unwrap().remove("EE");
            }),
            "Missing required property \"EE\" at root",
        ),
        (
            with(&|v| v["EE"]["EA"]["EAA"] = json!(true)),
            "Expected string at EE.EA.EAA, but got: boolean",
        ),
    ];
    for (inputs, message) in cases {
        let ran = run_with(&engine(), &fixture("validate-inputs"), inputs).await;
        assert_eq!(ran.outcome.status, WorkflowStatus::Failed);
        let status = &ran.report.workflow_status;
        assert_eq!(status.status, WorkflowStatus::Failed);
        assert_eq!(Some(status.start_time), status.end_time);
        assert!(ran.report.reports.is_empty());
        assert_eq!(
            ran.report.messages.error[0].message,
            format!("JSON Schema validation failed: {message}")
        );
    }
}

// ------------------------------------------------------------------ 5.7 code

fn code_result(input: &str) -> Value {
    json!({
        "input": input,
        "output_key0": format!("{input}{input}"),
        "output_key1": ["hello", "world"],
        "output_key2": {"key21": "hi"}
    })
}

#[tokio::test]
async fn code_runs_an_async_main_and_maps_its_object_to_outputs() {
    let ran = run_with(&engine(), &fixture("code"), json!({"input": "hello~"})).await;
    assert_eq!(
        ran.outcome.status,
        WorkflowStatus::Succeeded,
        "{:?}",
        ran.errors()
    );
    assert_eq!(
        Value::Object(ran.outcome.outputs.clone()),
        code_result("hello~")
    );
    let script =
        serde_json::from_str::<Value>(&fixture("code")).unwrap()["nodes"][2]["data"]["script"]
            .clone();
    assert_eq!(
        ran.snapshots,
        vec![
            json!({"nodeID": "start_0", "inputs": {}, "outputs": {"input": "hello~"}, "data": {}}),
            json!({
                "nodeID": "code_0",
                "inputs": {"input": "hello~"},
                "outputs": {"key0": "hello~hello~", "key1": ["hello", "world"], "key2": {"key21": "hi"}},
                "data": {"script": script}
            }),
            json!({"nodeID": "end_0", "inputs": code_result("hello~"), "outputs": code_result("hello~"), "data": {}}),
        ]
    );
}

#[tokio::test]
async fn code_handles_other_and_empty_inputs() {
    for input in ["test123", ""] {
        let ran = run_with(&engine(), &fixture("code"), json!({"input": input})).await;
        assert_eq!(ran.outcome.status, WorkflowStatus::Succeeded);
        assert_eq!(Value::Object(ran.outcome.outputs), code_result(input));
    }
}

#[tokio::test]
async fn code_accepts_a_synchronous_main() {
    let schema = fixture("code").replace("async function main", "function main");
    let ran = run_with(&engine(), &schema, json!({"input": "hello~"})).await;
    assert_eq!(ran.outcome.status, WorkflowStatus::Succeeded);
    assert_eq!(Value::Object(ran.outcome.outputs), code_result("hello~"));
}

#[tokio::test]
async fn code_wraps_results_that_are_not_plain_objects() {
    let cases = [
        ("params.input", json!({"result": "hello"})),
        ("42", json!({"result": 42})),
        ("false", json!({"result": false})),
        ("null", json!({"result": null})),
        ("undefined", json!({})),
        ("[params.input, 42]", json!({"result": ["hello", 42]})),
        ("{ value: params.input }", json!({"value": "hello"})),
    ];
    for (expression, outputs) in cases {
        let mut schema: Value = serde_json::from_str(&fixture("code")).unwrap();
        schema["nodes"][2]["data"]["script"]["content"] = json!(format!(
            "function main({{ params }}) {{ return {expression}; }}"
        ));
        let ran = run_with(&engine(), &schema.to_string(), json!({"input": "hello"})).await;
        assert_eq!(
            ran.outcome.status,
            WorkflowStatus::Succeeded,
            "{expression}"
        );
        assert_eq!(
            ran.snapshots_of("code_0")[0]["outputs"],
            outputs,
            "{expression}"
        );
    }
}

#[tokio::test]
async fn code_reports_a_rejected_async_main_with_its_message() {
    let mut schema: Value = serde_json::from_str(&fixture("code")).unwrap();
    schema["nodes"][2]["data"]["script"]["content"] =
        json!("async function main() { throw new Error(\"async failure\"); }");
    let ran = run_with(&engine(), &schema.to_string(), json!({"input": "x"})).await;
    assert_eq!(ran.outcome.status, WorkflowStatus::Failed);
    assert_eq!(ran.status_of("code_0"), Some("failed"));
    assert_eq!(ran.errors(), vec!["Code execution failed: async failure"]);
}

// --------------------------------------------------- condition-string (newer)

/// Run the branch fixture with `global.text` (default `value`, or none) and these conditions.
async fn run_string_condition(value: Option<Value>, conditions: Value) -> (String, Value) {
    let llm = MockLlm::start().await;
    let mut schema: Value = serde_json::from_str(&llm.rewrite(&fixture("branch"))).unwrap();
    let mut text = json!({"type": "string"});
    if let Some(value) = value {
        text["default"] = value;
    }
    schema["globalVariable"] = json!({"type": "object", "properties": {"text": text}});
    schema["nodes"][2]["data"]["conditions"] = conditions;
    let ran = run_with(
        &engine(),
        &schema.to_string(),
        json!({"model_id": 1, "prompt": "hello"}),
    )
    .await;
    assert_eq!(
        ran.outcome.status,
        WorkflowStatus::Succeeded,
        "{:?}",
        ran.errors()
    );
    let branch = ran.snapshots_of("condition_0")[0]["branch"]
        .as_str()
        .unwrap()
        .to_owned();
    (branch, Value::Object(ran.outcome.outputs))
}

fn string_condition(operator: &str, key: &str, right: Option<Value>) -> Value {
    let mut value =
        json!({"left": {"type": "ref", "content": ["global", "text"]}, "operator": operator});
    if let Some(right) = right {
        value["right"] = right;
    }
    json!({"key": key, "value": value})
}

fn expected_branch_outputs(branch: &str) -> Value {
    let (model, temperature) = if branch == "if_1" {
        (1, "0.5")
    } else {
        (3, "0.7")
    };
    json!({
        format!("m{model}_res"): mock_sentence(&format!("AI_MODEL_{model}"), temperature, &format!("I'm Model {model}."), "hello")
    })
}

#[tokio::test]
async fn string_unary_conditions_treat_only_nil_as_empty() {
    for (value, empty) in [
        (Some(json!("hello")), false),
        (Some(json!("")), false),
        (Some(json!(" ")), false),
        (Some(Value::Null), true),
        (None, true),
    ] {
        for operator in ["is_empty", "is_not_empty"] {
            let holds = if operator == "is_empty" {
                empty
            } else {
                !empty
            };
            let expected = if holds { "if_1" } else { "else" };
            let (branch, outputs) = run_string_condition(
                value.clone(),
                json!([string_condition(operator, "if_1", None)]),
            )
            .await;
            assert_eq!(branch, expected, "{operator} on {value:?}");
            assert_eq!(outputs, expected_branch_outputs(expected));
        }
    }
}

#[tokio::test]
async fn string_eq_and_neq_compare_with_the_right_operand() {
    for (operator, expected) in [("eq", "if_1"), ("neq", "else")] {
        let item = string_condition(
            operator,
            "if_1",
            Some(json!({"type": "constant", "content": "hello"})),
        );
        let (branch, outputs) = run_string_condition(Some(json!("hello")), json!([item])).await;
        assert_eq!(branch, expected);
        assert_eq!(outputs, expected_branch_outputs(expected));
    }
}

#[tokio::test]
async fn the_first_matching_condition_wins() {
    let (branch, _) = run_string_condition(
        Some(json!("hello")),
        json!([
            string_condition("is_not_empty", "if_1", None),
            string_condition("is_not_empty", "if_2", None)
        ]),
    )
    .await;
    assert_eq!(branch, "if_1");
}
