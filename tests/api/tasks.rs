//! The task API over HTTP, against the embedded and the distributed stack: the seed's curl
//! example, every fixture of the spec's §5, cancel of a running LLM call, crash recovery and
//! bad requests.

use std::time::{Duration, Instant};

use crate::helpers::{
    JobsRefused, MockLlm, Mode, Stack, StackOptions, both_deployments,
    echo::Echo,
    mock_llm::mock_sentence,
    runs::{
        fixture, post_run, provider_holds_a_call, report, result, result_within, run, run_to_end,
    },
};
use serde_json::{Value, json};

const PASSWORD: &str = "passw0rd-long";

/// A run of the `basic` fixture whose llm call the provider holds for `latency`: returns the
/// provider and the task id once the provider has the call.
async fn basic_run_held_for(stack: &Stack, latency: Duration) -> (MockLlm, String) {
    let llm = MockLlm::start().await;
    llm.set_latency(latency);
    let inputs = json!({"model_name": "m", "llm_settings": {"temperature": 0.5}, "work": {"role": "r", "task": "t"}});
    let id = run(stack, &fixture("basic", &llm), inputs).await;
    provider_holds_a_call(&llm).await;
    (llm, id)
}

fn sentence(model: &str, temperature: &str, system: &str, prompt: &str) -> String {
    mock_sentence(&json!({
        "model": model,
        "temperature": temperature.parse::<f64>().unwrap(),
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": prompt}],
    }))
}

fn node_status(report: &Value, node: &str) -> Value {
    report["reports"][node]["status"].clone()
}

fn snapshot_count(report: &Value, node: &str) -> usize {
    report["reports"][node]["snapshots"]
        .as_array()
        .map_or(0, Vec::len)
}

both_deployments! {
    async fn the_seed_curl_example_runs_reports_and_cancels(stack: Stack) {
        let llm = MockLlm::start().await;
        // The seed's request, verbatim except `api_host`, which points at the mock provider.
        let body = include_str!("../seed_run_request.json").replace("https://ark.cn-beijing.volces.com/api/v3", &llm.base_url);
        let r = stack.client.post(stack.url("/api/task/run")).header("content-type", "application/json").body(body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let id = r.json::<Value>().await.unwrap()["taskID"].as_str().unwrap().to_owned();

        let out = result(&stack, &id).await;
        let expected = sentence("ep-20250206192339-nnr9m", "0", "You are a helpful AI assistant.",
            "Just give me the answer of '1+1=?', just one number, no other words");
        assert_eq!(out, json!({"answer": expected}));

        let rep = report(&stack, &id).await;
        assert_eq!(rep["workflowStatus"]["status"], "succeeded");
        for node in ["start_0", "llm_0", "end_0"] {
            assert_eq!(node_status(&rep, node), "succeeded", "{node}");
        }
        assert_eq!(llm.requests()[0]["model"], "ep-20250206192339-nnr9m");

        let r = stack.client.put(stack.url("/api/task/cancel")).json(&json!({"taskID": id})).send().await.unwrap();
        assert_eq!(r.json::<Value>().await.unwrap(), json!({"success": true}));
        assert_eq!(report(&stack, &id).await["workflowStatus"]["status"], "succeeded", "cancel of a finished task changes nothing");
    }
}

both_deployments! {
    async fn every_spec_fixture_runs_through_the_http_api(stack: Stack) {
        let llm = MockLlm::start().await;

        // basic
        let inputs = json!({"model_name": "ai-model", "llm_settings": {"temperature": 0.5}, "work": {"role": "Chat", "task": "Tell me a story about love"}});
        let (out, rep) = run_to_end(&stack, &fixture("basic", &llm), inputs).await;
        assert_eq!(out, json!({
            "llm_res": sentence("ai-model", "0.5", "You are a helpful AI assistant.", "<Role>Chat</Role>\n\n<Task>\nTell me a story about love\n</Task>"),
            "llm_task": "Tell me a story about love"}));
        assert_eq!(rep["workflowStatus"]["status"], "succeeded");
        for node in ["start_0", "llm_0", "end_0"] {
            assert_eq!(node_status(&rep, node), "succeeded");
            assert_eq!(snapshot_count(&rep, node), 1);
        }

        // branch: each condition picks one LLM; refs to skipped ones are dropped.
        for (model_id, prompt, key, model, temp, system, branch) in [
            (1, "Tell me a joke", "m1_res", "AI_MODEL_1", "0.5", "I'm Model 1.", "if_1"),
            (2, "Tell me a story", "m2_res", "AI_MODEL_2", "0.6", "I'm Model 2.", "if_2"),
            (3, "Tell me a movie", "m3_res", "AI_MODEL_3", "0.7", "I'm Model 3.", "else"),
        ] {
            let (out, rep) = run_to_end(&stack, &fixture("branch", &llm), json!({"model_id": model_id, "prompt": prompt})).await;
            assert_eq!(out, json!({key: sentence(model, temp, system, prompt)}));
            assert_eq!(rep["reports"]["condition_0"]["snapshots"][0]["branch"], branch);
            assert_eq!(rep["reports"].as_object().unwrap().len(), 4, "skipped LLMs have no report");
        }

        // branch-two-layers: llm_1 feeds llm_3.
        let (out, _) = run_to_end(&stack, &fixture("branch-two-layers", &llm), json!({"model_id": 1, "prompt": "Tell me a joke"})).await;
        let inner = sentence("AI_MODEL_1", "0.5", "I'm Model 1", "Tell me a joke");
        assert_eq!(out, json!({"m3_res": sentence("AI_MODEL_3", "0.5", "I'm Model 3", &inner)}));

        // loop: one LLM call per item, outputs collected in order.
        let tasks: Vec<String> = "ABCDEFGH".chars().map(|c| format!("TASK - {c}")).collect();
        let (out, rep) = run_to_end(&stack, &fixture("loop", &llm), json!({"tasks": tasks})).await;
        let expected: Vec<String> = tasks.iter().enumerate()
            .map(|(i, t)| sentence("AI_MODEL_1", "0.6", &format!("You are a helpful assistant No.{i}"), t)).collect();
        assert_eq!(out, json!({"outputs": expected}));
        for node in ["llm_0", "block_start_0", "block_end_0"] {
            assert_eq!(snapshot_count(&rep, node), 8, "{node}");
        }

        // loop-break-continue: indexes 0–2 continue, 7 breaks.
        let tasks: Vec<String> = "ABCDEFGHI".chars().map(|c| format!("TASK - {c}")).collect();
        let (out, rep) = run_to_end(&stack, &fixture("loop-break-continue", &llm), json!({"tasks": tasks})).await;
        let expected: Vec<String> = (3..=6).map(|i| sentence("AI_MODEL_1", "0.6", &format!("You are a helpful assistant No.{i}"), &tasks[i])).collect();
        assert_eq!(out, json!({"outputs": expected}));
        assert_eq!((snapshot_count(&rep, "llm_0"), snapshot_count(&rep, "condition_0"), snapshot_count(&rep, "continue_0"), snapshot_count(&rep, "break_0")), (4, 8, 3, 1));

        // end-constant, start-default, global-variable: the same eight typed values.
        let values = json!({"str": "ABC", "num": 123.123, "int": 123, "bool": false,
            "obj": {"key_str": "value", "key_int": 123, "key_bool": true}, "map": {"key": "value"},
            "arr_str": ["AAA", "BBB", "CCC"], "date": "2000-01-01T00:00:00.000Z"});
        let prefixed = |p: &str| Value::Object(values.as_object().unwrap().iter().map(|(k, v)| (format!("{p}{k}"), v.clone())).collect());
        assert_eq!(run_to_end(&stack, &fixture("end-constant", &llm), json!({})).await.0, values);
        assert_eq!(run_to_end(&stack, &fixture("start-default", &llm), json!({})).await.0, prefixed("s_"));
        assert_eq!(run_to_end(&stack, &fixture("global-variable", &llm), json!({})).await.0, prefixed("g_"));

        // http: to a loopback echo server (the stack allows private egress).
        let echo = Echo::start().await;
        let schema: Value = serde_json::from_str(&fixture("http", &llm).to_string().replace("https://{{start_0.host}}", "http://{{start_0.host}}")).unwrap();
        let (out, rep) = run_to_end(&stack, &schema, json!({"host": echo.host(), "path": "/post"})).await;
        assert_eq!(out["code"], 200);
        let echoed: Value = serde_json::from_str(out["res"].as_str().unwrap()).unwrap();
        assert_eq!((echoed["method"].as_str(), echoed["path"].as_str(), echoed["body"].as_str()), (Some("POST"), Some("/post"), Some("{}")));
        assert_eq!(node_status(&rep, "http_0"), "succeeded");

        // code
        let (out, _) = run_to_end(&stack, &fixture("code", &llm), json!({"input": "hello~"})).await;
        assert_eq!(out, json!({"input": "hello~", "output_key0": "hello~hello~", "output_key1": ["hello", "world"], "output_key2": {"key21": "hi"}}));

        // validate-inputs: a valid set comes back unchanged; an invalid one is stored failed.
        let valid = json!({"AA": "aa", "BB": 1, "CC": {"CA": "a", "CB": 1, "CC": 1.5, "CD": true, "CE": {"CEA": "x"}, "CF": ["s"]},
            "DD": [{"DA": "a", "DB": {"DBA": "b"}}], "EE": {"EA": {"EAA": "e"}, "EB": "b"}});
        assert_eq!(run_to_end(&stack, &fixture("validate-inputs", &llm), valid.clone()).await.0, valid);
        let mut invalid = valid.clone();
        invalid["AA"] = json!(123);
        let id = run(&stack, &fixture("validate-inputs", &llm), invalid).await;
        let rep = report(&stack, &id).await;
        assert_eq!(rep["workflowStatus"]["status"], "failed");
        assert_eq!(rep["messages"]["error"][0]["message"], "JSON Schema validation failed: Expected string at AA, but got: number");
        assert!(rep["workflowStatus"]["startTime"].is_number(), "startTime is always present");
        assert_eq!(result(&stack, &id).await, json!({}));
    }
}

both_deployments! {
    async fn cancel_stops_a_running_llm_call_within_a_second(stack: Stack) {
        let (llm, id) = basic_run_held_for(&stack, Duration::from_secs(5)).await;
        let asked = Instant::now();
        let r = stack.client.put(stack.url("/api/task/cancel")).json(&json!({"taskID": id})).send().await.unwrap();
        assert_eq!(r.json::<Value>().await.unwrap(), json!({"success": true}));
        let rep = loop {
            let rep = report(&stack, &id).await;
            if rep["workflowStatus"]["status"] == "canceled" {
                break rep;
            }
            assert!(asked.elapsed() < Duration::from_secs(1), "not canceled within 1 s: {rep}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(node_status(&rep, "llm_0"), "canceled");
        assert_eq!(result(&stack, &id).await, json!({}));
        let deadline = Instant::now() + Duration::from_secs(2);
        while llm.dropped() == 0 {
            assert!(Instant::now() < deadline, "the provider connection was not closed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(llm.completed(), 0);
    }
}

both_deployments! {
    async fn a_polling_client_sees_the_end_of_a_run_in_its_result_and_report_at_once(stack: Stack) {
        // Result polls are answered from memory and reports from a short-lived cache while the
        // run lasts; neither may hide its end once it is visible.
        let (_provider, id) = basic_run_held_for(&stack, Duration::from_millis(400)).await;
        assert_eq!(result_within(&stack, &id, 0).await, Value::Null, "not finished yet");
        // The worker writes progress every 100 ms: the report shows the llm node running soon.
        let deadline = Instant::now() + Duration::from_secs(2);
        while node_status(&report(&stack, &id).await, "llm_0") != "processing" {
            assert!(Instant::now() < deadline, "the report never showed the llm node running");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(report(&stack, &id).await["workflowStatus"]["status"], "processing");
        let deadline = Instant::now() + Duration::from_secs(5);
        let outputs = loop {
            let out = result_within(&stack, &id, 0).await;
            if !out.is_null() {
                break out;
            }
            assert!(Instant::now() < deadline, "the run never finished");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert!(outputs.as_object().is_some_and(|o| !o.is_empty()), "{outputs}");
        // The very next report read is the final one, not the cached running one.
        let rep = report(&stack, &id).await;
        assert_eq!(rep["workflowStatus"]["status"], "succeeded", "{rep}");
        assert_eq!(node_status(&rep, "llm_0"), "succeeded");
        assert_eq!(report(&stack, &id).await, rep, "a finished report is served unchanged");
        assert_eq!(result_within(&stack, &id, 0).await, outputs);
    }
}

/// `GET /api/task/report` as a browser asks for it (`Accept-Encoding: gzip`): the document,
/// unpacked when it came compressed, which it must from 1 KiB on (and not below).
async fn report_as_a_browser(stack: &Stack, id: &str) -> Value {
    let r = stack
        .client
        .get(stack.url(&format!("/api/task/report?taskID={id}")))
        .header("accept-encoding", "gzip, deflate, br")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let vary = r
        .headers()
        .get_all("vary")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert!(
        vary.iter().any(|v| v.contains("accept-encoding")),
        "{vary:?}"
    );
    let gzipped = r
        .headers()
        .get("content-encoding")
        .is_some_and(|v| v == "gzip");
    let body = r.bytes().await.unwrap();
    let document = if gzipped {
        let mut unpacked = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut unpacked)
            .unwrap();
        unpacked
    } else {
        body.to_vec()
    };
    assert_eq!(
        gzipped,
        document.len() >= 1024,
        "compressed from 1 KiB: {} bytes",
        document.len()
    );
    serde_json::from_slice(&document).unwrap()
}

both_deployments! {
    async fn a_browser_gets_the_report_gzipped_running_and_finished(stack: Stack) {
        // Reports are kept compressed for pollers that ask for gzip; the document is the same.
        let (_provider, id) = basic_run_held_for(&stack, Duration::from_millis(400)).await;
        let running = report_as_a_browser(&stack, &id).await;
        assert_eq!(running["id"], id.as_str(), "{running}");
        // The first progress write may not have landed yet: pending or processing, not ended.
        assert_eq!(running["workflowStatus"]["terminated"], false, "{running}");
        result(&stack, &id).await;
        let finished = report_as_a_browser(&stack, &id).await;
        assert_eq!(finished["workflowStatus"]["status"], "succeeded", "{finished}");
        assert!(serde_json::to_vec(&finished).unwrap().len() >= 1024, "a finished report is gzipped");
        assert_eq!(report(&stack, &id).await, finished, "plain and gzipped are one document");
        assert_eq!(report_as_a_browser(&stack, &id).await, finished, "served again from the cache");
        let plain = stack.client.get(stack.url(&format!("/api/task/report?taskID={id}"))).send().await.unwrap();
        assert!(plain.headers().get("content-encoding").is_none(), "not asked, not compressed");
    }
}

both_deployments! {
    async fn cancel_of_a_queued_task_means_it_never_runs(stack: Stack) {
        // Queue a task in a stack whose worker is busy, then cancel before it starts: the
        // workers are saturated with a slow run so the second task is still queued.
        let llm = MockLlm::start().await;
        llm.set_latency(Duration::from_millis(1500));
        let schema = fixture("basic", &llm);
        let inputs = json!({"model_name": "m", "llm_settings": {"temperature": 0.5}, "work": {"role": "r", "task": "t"}});
        // A schema whose start node is fine but that nobody picks up before the cancel:
        // cancel immediately after run.
        let id = run(&stack, &schema, inputs).await;
        let r = stack.client.put(stack.url("/api/task/cancel")).json(&json!({"taskID": id})).send().await.unwrap();
        assert_eq!(r.json::<Value>().await.unwrap(), json!({"success": true}));
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let rep = report(&stack, &id).await;
        assert_eq!(rep["workflowStatus"]["status"], "canceled");
        // Either it was still queued (then the provider never saw it) or it had just
        // started (then the call was dropped): it never completed.
        assert_eq!(llm.completed(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_survives_the_kill_of_the_worker_holding_it() {
    let options = StackOptions::new(Mode::Distributed { workers: 2 });
    let Some((stack, llm, id)) = run_then_kill_its_worker(options).await else {
        return;
    };
    let out = result_within(&stack, &id, 30_000).await;
    assert!(
        out["llm_res"]
            .as_str()
            .is_some_and(|s| s.starts_with("Hi, I am an AI model")),
        "{out}\n{}",
        stack.logs()
    );
    let rep = report(&stack, &id).await;
    assert_eq!(rep["workflowStatus"]["status"], "succeeded");
    assert_eq!(
        snapshot_count(&rep, "llm_0"),
        1,
        "the retried attempt replaced the partial report"
    );
    assert!(llm.requests().len() >= 2, "the run was attempted again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_attempts_are_used_up_fails_saying_so() {
    let options =
        StackOptions::new(Mode::Distributed { workers: 2 }).env("LLMOPS_TASK_MAX_ATTEMPTS", "1");
    let Some((stack, _llm, id)) = run_then_kill_its_worker(options).await else {
        return;
    };
    assert_eq!(result_within(&stack, &id, 30_000).await, json!({}));
    let rep = report(&stack, &id).await;
    assert_eq!(rep["workflowStatus"]["status"], "failed", "{rep}");
    let message = rep["messages"]["error"][0]["message"].as_str().unwrap();
    assert!(message.contains("after 1 attempts"), "{message}");
}

both_deployments! {
    async fn bad_requests_get_clear_4xx_and_store_nothing(stack: Stack) {
        let post = |body: Vec<u8>| stack.client.post(stack.url("/api/task/run")).header("content-type", "application/json").body(body).send();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"".to_vec(), "required"),
            (b"{not json".to_vec(), "not valid JSON"),
            (br#"{"inputs":{}}"#.to_vec(), "schema is required"),
            (br#"{"schema":42,"inputs":{}}"#.to_vec(), "schema must be a string"),
            (br#"{"schema":"{oops","inputs":{}}"#.to_vec(), "schema is not valid JSON"),
            (br#"{"schema":"[1,2]","inputs":{}}"#.to_vec(), "schema must be a JSON object"),
            (br#"{"schema":"{}","inputs":"x"}"#.to_vec(), "inputs must be an object"),
            (br#"{"schema":"{}"}"#.to_vec(), "inputs is required"),
        ];
        for (body, message) in cases {
            let r = post(body.clone()).await.unwrap();
            assert_eq!(r.status(), 400, "{}", String::from_utf8_lossy(&body));
            let err: Value = r.json().await.unwrap();
            assert_eq!(err["code"], "validate_error");
            assert!(err["message"].as_str().unwrap().contains(message), "{err} should mention {message}");
        }
        // 20 MB body: refused from its Content-Length, before it is read. (A raw client, as
        // curl does, reads the early answer instead of failing to write the rest.)
        let (status, body) = oversize_post(&stack, "/api/task/run", 20 << 20).await;
        assert_eq!(status, 413);
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["code"], "validate_error");

        // Unknown or malformed ids.
        let unknown = uuid::Uuid::new_v4();
        for path in [format!("/api/task/result?taskID={unknown}"), format!("/api/task/report?taskID={unknown}"), "/api/task/report?taskID=nope".into()] {
            let r = stack.client.get(stack.url(&path)).send().await.unwrap();
            assert_eq!(r.status(), 404, "{path}");
            assert_eq!(r.json::<Value>().await.unwrap()["code"], "not_found");
        }
        let r = stack.client.get(stack.url("/api/task/result")).send().await.unwrap();
        assert_eq!(r.status(), 400);
        let r = stack.client.put(stack.url("/api/task/cancel")).json(&json!({"taskID": unknown.to_string()})).send().await.unwrap();
        assert_eq!((r.status().as_u16(), r.json::<Value>().await.unwrap()), (200, json!({"success": false})));
        let r = stack.client.put(stack.url("/api/task/cancel")).json(&json!({})).send().await.unwrap();
        assert_eq!(r.status(), 400);

        // A schema that fails the workflow validators still gets a taskID, stored failed.
        let r = stack.client.post(stack.url("/api/task/run")).json(&json!({"schema": r#"{"nodes":[],"edges":[]}"#, "inputs": {}})).send().await.unwrap();
        let id = r.json::<Value>().await.unwrap()["taskID"].as_str().unwrap().to_owned();
        let rep = report(&stack, &id).await;
        assert_eq!(rep["workflowStatus"]["status"], "failed");
        assert_eq!(rep["messages"]["error"][0]["message"], "Workflow schema must have a start node and an end node");

        // Validate answers without running.
        let r = stack.client.post(stack.url("/api/task/validate")).json(&json!({"schema": r#"{"nodes":[],"edges":[]}"#, "inputs": {}})).send().await.unwrap();
        assert_eq!(r.json::<Value>().await.unwrap(), json!({"valid": false, "errors": ["Workflow schema must have a start node and an end node"]}));
    }
}

both_deployments! {
    async fn server_info_answers_on_both_paths(stack: Stack) {
        for path in ["/api/info", "/info"] {
            let info: Value = stack.get_json(path).await;
            assert_eq!(info["runtime"], "rust");
            assert!(info["time"].as_str().unwrap().ends_with('Z'));
        }
    }
}

/// Sends the headers of a `len`-byte POST plus its first kilobytes, then reads the answer.
async fn oversize_post(stack: &Stack, path: &str, len: usize) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = stack.base.trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let _ = conn.write_all(&vec![b'a'; 64 << 10]).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

both_deployments! {
    async fn a_run_made_with_a_token_belongs_to_that_account(stack: Stack) {
        let llm = MockLlm::start().await;
        let alice = stack.sign_up("alice@example.com", PASSWORD).await;
        let bob = stack.sign_up("bob@example.com", PASSWORD).await;
        let body = json!({"schema": fixture("end-constant", &llm).to_string(), "inputs": {}});
        let r = stack.client.post(stack.url("/api/task/run")).bearer_auth(&alice).json(&body).send().await.unwrap();
        let id = r.json::<Value>().await.unwrap()["taskID"].as_str().unwrap().to_owned();

        let r = stack.client.get(stack.url(&format!("/api/task/result?taskID={id}&wait=10000"))).bearer_auth(&alice).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()["str"], "ABC");
        for (who, token) in [("bob", Some(&bob)), ("anonymous", None)] {
            // With `wait`, the API that queued the run answers from what it remembers of it.
            let paths = [
                format!("/api/task/result?taskID={id}"),
                format!("/api/task/result?taskID={id}&wait=2000"),
                format!("/api/task/report?taskID={id}"),
            ];
            for path in paths {
                let mut req = stack.client.get(stack.url(&path));
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                let r = req.send().await.unwrap();
                assert_eq!(r.status(), 404, "{who} must not see alice's task");
                assert_eq!(r.json::<Value>().await.unwrap()["code"], "not_found");
            }
            let mut req = stack.client.put(stack.url("/api/task/cancel")).json(&json!({"taskID": id}));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            assert_eq!(req.send().await.unwrap().json::<Value>().await.unwrap(), json!({"success": false}));
        }
        // A bad token is refused, not treated as anonymous.
        let r = stack.client.post(stack.url("/api/task/run")).bearer_auth("not-a-token").json(&body).send().await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(r.json::<Value>().await.unwrap()["code"], "unauthorized");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_task_auth_refuses_calls_without_a_token() {
    let options = StackOptions::new(Mode::Embedded).env("LLMOPS_TASK_AUTH", "required");
    let Some(stack) = Stack::start_with(options).await else {
        return;
    };
    let llm = MockLlm::start().await;
    let body = json!({"schema": fixture("end-constant", &llm).to_string(), "inputs": {}});
    let r = stack
        .client
        .post(stack.url("/api/task/run"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "unauthorized");
    let token = stack.sign_up("carol@example.com", PASSWORD).await;
    let r = stack
        .client
        .post(stack.url("/api/task/run"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_worker_finish_its_run_before_it_exits() {
    let Some(mut stack) = Stack::start(Mode::Distributed { workers: 1 }).await else {
        return;
    };
    let (llm, id) = basic_run_held_for(&stack, Duration::from_millis(1500)).await;
    let status = stack.workers[0]
        .terminate(Duration::from_secs(25))
        .expect("worker did not stop");
    assert!(status.success(), "worker exit status {status}");
    // The run finished on the stopping worker; no other worker exists to retry it.
    let rep = report(&stack, &id).await;
    assert_eq!(
        rep["workflowStatus"]["status"],
        "succeeded",
        "{rep}\n{}",
        stack.logs()
    );
    assert_eq!(llm.completed(), 1);
}

/// The index of the worker that started attempt 1 of the task (from its log).
async fn worker_holding(stack: &Stack, id: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    let started = format!("task {id} attempt 1 started");
    loop {
        if let Some(i) = stack
            .workers
            .iter()
            .position(|w| w.log_text().contains(&started))
        {
            return i;
        }
        assert!(
            Instant::now() < deadline,
            "no worker took the task:\n{}",
            stack.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts the stack, runs the basic flow with a 3 s LLM call, and SIGKILLs the worker holding it.
async fn run_then_kill_its_worker(options: StackOptions) -> Option<(Stack, MockLlm, String)> {
    let mut stack = Stack::start_with(options).await?;
    let llm = MockLlm::start().await;
    llm.set_latency(Duration::from_secs(3));
    let inputs = json!({"model_name": "m", "llm_settings": {"temperature": 0.5}, "work": {"role": "r", "task": "t"}});
    let id = run(&stack, &fixture("basic", &llm), inputs).await;
    let holder = worker_holding(&stack, &id).await;
    // Killed mid-call: the attempt has started and the provider holds its request.
    provider_holds_a_call(&llm).await;
    stack.workers[holder].kill9();
    Some((stack, llm, id))
}

/// On the embedded store a task and its queue job commit together: when the queue refuses the
/// job, the run answers 503 and no task is left behind, pending with no job to run it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_run_the_queue_refuses_leaves_nothing_behind() {
    let Some(stack) = Stack::start(Mode::Embedded).await else {
        return;
    };
    let llm = MockLlm::start().await;
    let schema = fixture("basic", &llm);
    let inputs = json!({"model_name": "m", "llm_settings": {"temperature": 0.5}, "work": {"role": "r", "task": "t"}});
    let refused = JobsRefused::on(&stack).await;
    let r = post_run(&stack, &schema, &inputs).await;
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "fail", "{body}");
    assert_eq!(refused.count("tasks").await, 0, "no task without its job");

    refused.accept().await;
    let (out, _) = run_to_end(&stack, &schema, inputs).await;
    assert_eq!(out["llm_task"], "t", "{out}");
}

/// The embedded server killed with SIGKILL in the middle of a run: once it is started again on
/// the same data, the run is delivered again (its worker missed its heartbeats) and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_run_survives_a_crash_of_the_server() {
    let options = StackOptions::new(Mode::Embedded).processes();
    let Some(mut stack) = Stack::start_with(options).await else {
        return;
    };
    let (llm, id) = basic_run_held_for(&stack, Duration::from_secs(2)).await;
    stack.crash_and_restart_api().await;
    let out = result_within(&stack, &id, 30_000).await;
    assert_eq!(out["llm_task"], "t", "{out}\n{}", stack.logs());
    let rep = report(&stack, &id).await;
    assert_eq!(rep["workflowStatus"]["status"], "succeeded");
    assert!(llm.requests().len() >= 2, "the run was attempted again");
}
