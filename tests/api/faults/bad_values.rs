//! Bad values, on both deployments: a value the store refuses fails only its own run (never
//! the others of its group commit); strings with NUL round-trip in task inputs, outputs and
//! reports; the app API refuses NUL in plain text with `validate_error` naming the field,
//! never a 5xx; search words are escaped and length-limited; provider text with NUL is stored.

use std::time::{Duration, Instant};

use crate::helpers::{Mode, Stack, both_deployments};
use reqwest::Method;
use serde_json::{Value, json};

use super::common::{code_schema, finished};
use crate::helpers::runs::run;

/// Outputs `params.input`, except that an input starting `bad` comes out with a NUL in it.
const NUL_FOR_BAD: &str = "function main({params}) {\n  const i = params.input;\n  return {answer: i.startsWith('bad') ? i.replace('-', String.fromCharCode(0)) : i};\n}";

/// The case that failed: one run's output held a NUL, Postgres refused the group-committed
/// final write holding it, and 10–14 of 40 unrelated runs failed with it. Now no innocent run
/// fails, and the NUL itself is stored and read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_value_fails_no_innocent_run() {
    let Some(stack) = Stack::start(Mode::Distributed { workers: 2 }).await else {
        return;
    };
    let schema = code_schema(NUL_FOR_BAD);
    let bad = |i: usize| i % 10 == 3;
    let inputs: Vec<String> = (0..40)
        .map(|i| {
            if bad(i) {
                format!("bad-{i}")
            } else {
                format!("ok {i}")
            }
        })
        .collect();
    let ids = futures::future::join_all(
        inputs
            .iter()
            .map(|input| run(&stack, &schema, json!({"input": input}))),
    )
    .await;
    let ends = futures::future::join_all(ids.iter().map(|id| finished(&stack, id))).await;
    let mut innocent_succeeded = 0;
    for (i, (result, report)) in ends.iter().enumerate() {
        let status = &report["workflowStatus"]["status"];
        let expected = if bad(i) {
            format!("bad\u{0}{i}")
        } else {
            inputs[i].clone()
        };
        assert_eq!(status, "succeeded", "run {i}: {report}");
        assert_eq!(result, &json!({"answer": expected}), "run {i}");
        assert_eq!(report["outputs"], json!({"answer": expected}), "run {i}");
        if !bad(i) {
            innocent_succeeded += 1;
        }
    }
    assert_eq!(innocent_succeeded, 36);
    eprintln!("40 concurrent runs, 4 with NUL in their output: 40 succeeded");
}

both_deployments! {
    /// Strings with NUL round-trip through a run on either store: inputs, outputs, report.
    async fn nul_round_trips_in_task_inputs_outputs_and_reports(stack: Stack) {
        let schema = code_schema("function main({params}) { return {answer: params.input + String.fromCharCode(0)}; }");
        let inputs = json!({"input": "a\u{0}b", "extra\u{0}key": ["\u{0}"]});
        let id = run(&stack, &schema, inputs.clone()).await;
        let (result, report) = finished(&stack, &id).await;
        assert_eq!(report["workflowStatus"]["status"], "succeeded", "{report}");
        assert_eq!(result, json!({"answer": "a\u{0}b\u{0}"}));
        assert_eq!(report["inputs"], inputs);
        assert_eq!(report["outputs"], json!({"answer": "a\u{0}b\u{0}"}));
        let code = &report["reports"]["code_0"]["snapshots"][0];
        assert_eq!(code["inputs"], json!({"input": "a\u{0}b"}));
        assert_eq!(code["outputs"], json!({"answer": "a\u{0}b\u{0}"}));
    }
}

/// A signed-in caller of the app API.
pub(crate) struct Caller<'a> {
    stack: &'a Stack,
    token: String,
}

impl<'a> Caller<'a> {
    pub(crate) async fn sign_up(stack: &'a Stack) -> Self {
        let email = format!("nul-{}@example.com", uuid::Uuid::new_v4().simple());
        let token = stack.sign_up(&email, "correct-horse-7").await;
        Self { stack, token }
    }

    /// Calls a route; bad input must never get a 5xx.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .stack
            .client
            .request(method, self.stack.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let r = request.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        assert!(status < 500, "{path}: {status} {text}");
        let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: {text}"));
        (status, body)
    }

    pub(crate) async fn create_app(&self, name: &str) -> String {
        let body = json!({"name": name, "icon": "https://a.com/1.png"});
        let (status, body) = self.call(Method::POST, "/api/apps", Some(body)).await;
        assert_eq!(status, 200, "{body}");
        body["data"]["id"].as_str().unwrap().to_owned()
    }

    async fn app_names(&self, search: &str) -> Vec<String> {
        let path = format!("/api/apps?page_size=50&search_word={search}");
        let (status, body) = self.call(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{body}");
        body["data"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|app| app["name"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// A `validate_error` naming `field`.
#[track_caller]
fn assert_refused(what: &str, (status, body): (u16, Value), field: &str) {
    assert_eq!(status, 422, "{what}: {body}");
    assert_eq!(body["code"], "validate_error", "{what}: {body}");
    let messages = body["data"][field]
        .as_array()
        .unwrap_or_else(|| panic!("{what}: no error on {field}: {body}"));
    assert!(
        messages[0].as_str().unwrap().contains("NUL"),
        "{what}: {body}"
    );
}

both_deployments! {
    /// Where the app API takes plain text, NUL is refused naming the field, on either store.
    async fn nul_in_app_and_account_text_is_a_validate_error(stack: Stack) {
        let caller = Caller::sign_up(&stack).await;
        let icon = "https://a.com/1.png";
        let create = |body: Value| caller.call(Method::POST, "/api/apps", Some(body));
        assert_refused("app name", create(json!({"name": "a\u{0}b", "icon": icon})).await, "name");
        assert_refused("description", create(json!({"name": "a", "icon": icon, "description": "\u{0}"})).await, "description");
        assert_refused("icon", create(json!({"name": "a", "icon": "https://a.com/\u{0}.png"})).await, "icon");

        let app = caller.create_app("plain").await;
        let path = format!("/api/apps/{app}");
        assert_refused("new name", caller.call(Method::POST, &path, Some(json!({"name": "x\u{0}"}))).await, "name");
        let config = format!("/api/apps/{app}/config");
        for (field, value) in [("preset_prompt", json!("be \u{0} nice")), ("model", json!("gpt\u{0}"))] {
            let body = json!({"model_config": {field: value}, "memory_mode": "long_term_memory"});
            assert_refused(field, caller.call(Method::PUT, &config, Some(body)).await, &format!("model_config.{field}"));
        }
        let body = json!({"model_config": {}, "memory_mode": "none\u{0}"});
        assert_refused("memory_mode", caller.call(Method::PUT, &config, Some(body)).await, "memory_mode");
        let memory = format!("/api/apps/{app}/long-term-memory");
        assert_refused("summary", caller.call(Method::POST, &memory, Some(json!({"summary": "s\u{0}"}))).await, "summary");
        let debug = format!("/api/apps/{app}/debug");
        assert_refused("query", caller.call(Method::POST, &debug, Some(json!({"query": "hi\u{0}"}))).await, "query");
        assert_refused("search_word", caller.call(Method::GET, "/api/apps?search_word=a%00b", None).await, "search_word");

        let register = |body: Value| stack.client.post(stack.url("/api/auth/register")).json(&body).send();
        for (field, body) in [
            ("email", json!({"email": "n\u{0}@example.com", "password": "correct-horse-7"})),
            ("name", json!({"email": "nul-name@example.com", "password": "correct-horse-7", "name": "\u{0}"})),
            ("password", json!({"email": "nul-pw@example.com", "password": "correct-horse-7\u{0}"})),
        ] {
            let r = register(body).await.unwrap();
            let status = r.status().as_u16();
            assert_refused(field, (status, r.json().await.unwrap()), field);
        }
        let r = stack.client.post(stack.url("/api/auth/password-login"))
            .json(&json!({"email": "n\u{0}@example.com", "password": "correct-horse-7"})).send().await.unwrap();
        let status = r.status().as_u16();
        assert_refused("login email", (status, r.json().await.unwrap()), "email");

        // Nothing was stored, and the app is as it was.
        let (status, body) = caller.call(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["name"], "plain");
        assert_eq!(caller.app_names("").await, ["plain"]);
    }
}

both_deployments! {
    /// `search_word` is at most 100 characters (a 50,000-character one made SQLite answer 500),
    /// and its wildcards match only themselves, on either store.
    async fn search_words_are_length_limited_and_escaped(stack: Stack) {
        let caller = Caller::sign_up(&stack).await;
        for name in ["50% off", "500 off", "a_b", "axb"] {
            caller.create_app(name).await;
        }
        let (status, body) = caller.call(Method::GET, &format!("/api/apps?search_word={}", "x".repeat(50_000)), None).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["code"], "validate_error");
        assert_eq!(body["data"], json!({"search_word": ["search_word must be at most 100 characters"]}));
        let (status, _) = caller.call(Method::GET, &format!("/api/apps?search_word={}", "字".repeat(101)), None).await;
        assert_eq!(status, 422);
        assert!(caller.app_names(&"字".repeat(100)).await.is_empty());
        assert_eq!(caller.app_names("%25").await, ["50% off"]);
        assert_eq!(caller.app_names("_").await, ["a_b"]);
        let mut off = caller.app_names("%20OFF%20").await;
        off.sort();
        assert_eq!(off, ["50% off", "500 off"]);
    }
}

both_deployments! {
    options = |o| o.mock_llm();
    /// A chat whose provider answers (and summarises) with a NUL: the answer and the long-term
    /// memory are stored without it, on either store.
    async fn provider_text_with_nul_is_stored(stack: Stack) {
        stack.llm().set_reply(Some("a\u{0}b"));
        let caller = Caller::sign_up(&stack).await;
        let app = caller.create_app("nul answers").await;
        let body = json!({"model_config": {}, "memory_mode": "long_term_memory"});
        let (status, body) = caller
            .call(Method::PUT, &format!("/api/apps/{app}/config"), Some(body))
            .await;
        assert_eq!(status, 200, "{body}");
        let debug = format!("/api/apps/{app}/debug");
        let (status, body) = caller
            .call(Method::POST, &debug, Some(json!({"query": "hi"})))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["answer"], "ab", "{body}");
        let (status, body) = caller
            .call(Method::GET, &format!("/api/apps/{app}/messages"), None)
            .await;
        assert_eq!(status, 200, "{body}");
        let message = &body["data"]["list"][0];
        assert_eq!(
            (&message["answer"], &message["status"]),
            (&json!("ab"), &json!("normal")),
            "{body}"
        );
        // The summary is written after the answer: wait for it.
        let memory = format!("/api/apps/{app}/long-term-memory");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, body) = caller.call(Method::GET, &memory, None).await;
            assert_eq!(status, 200, "{body}");
            if body["data"]["summary"] == "ab" {
                break;
            }
            assert!(Instant::now() < deadline, "summary never stored: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
