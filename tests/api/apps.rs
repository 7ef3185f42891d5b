//! LLM apps over HTTP, against the embedded and the distributed stack (real binaries, an
//! OpenAI-compatible mock LLM on loopback that records every request): app CRUD and listing,
//! draft/published configs and their validation, long-term memory, debug chat through the
//! queue (blocking and streamed), stop, messages, provider failures, ownership, and 50
//! concurrent chats.

use std::time::{Duration, Instant};

use crate::helpers::{
    JobsRefused, MockLlm, Mode, Stack, StackOptions, assert_envelope, both_deployments,
    mock_llm::mock_sentence, stack::MOCK_MODEL,
};
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "correct-horse-7";
const ICON: &str = "https://a.com/111.png";
const MODEL: &str = MOCK_MODEL;

/// A signed-in caller.
pub(crate) struct User<'a> {
    pub(crate) stack: &'a Stack,
    pub(crate) token: String,
}

impl<'a> User<'a> {
    pub(crate) async fn sign_up(stack: &'a Stack) -> Self {
        let email = format!("u-{}@example.com", uuid::Uuid::new_v4().simple());
        Self {
            stack,
            token: stack.sign_up(&email, PASSWORD).await,
        }
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .stack
            .client
            .request(method, self.stack.url(path))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        let body: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text}"));
        assert_envelope(status, &body);
        (status.as_u16(), body)
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        self.call(Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    /// A debug chat with `query`, whatever it answers.
    pub(crate) async fn debug(&self, app: &str, query: &str) -> (u16, Value) {
        self.post(&format!("/api/apps/{app}/debug"), json!({"query": query}))
            .await
    }

    pub(crate) async fn post_empty(&self, path: &str) -> (u16, Value) {
        self.call(Method::POST, path, None).await
    }

    pub(crate) async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub(crate) async fn create_app(&self, name: &str) -> String {
        let (status, body) = self
            .post(
                "/api/apps",
                json!({"name": name, "icon": ICON, "description": "d"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["data"]["id"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn app(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/api/apps/{id}")).await;
        assert_eq!(status, 200, "{body}");
        body["data"].clone()
    }

    pub(crate) async fn configure(&self, id: &str, model_config: Value, memory_mode: &str) {
        let (status, body) = self
            .put(
                &format!("/api/apps/{id}/config"),
                json!({"model_config": model_config, "memory_mode": memory_mode}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["message"], "更新AI应用配置成功");
    }

    /// A blocking debug call that must succeed; returns the message.
    pub(crate) async fn ask(&self, id: &str, query: &str) -> Value {
        let (status, body) = self.debug(id, query).await;
        assert_eq!(status, 200, "{body}");
        body["data"].clone()
    }

    pub(crate) async fn messages(&self, id: &str, query: &str) -> Value {
        let (status, body) = self.get(&format!("/api/apps/{id}/messages{query}")).await;
        assert_eq!(status, 200, "{body}");
        body["data"].clone()
    }

    /// A streamed debug call: the response, to read events from.
    pub(crate) async fn ask_streaming(&self, id: &str, query: &str) -> reqwest::Response {
        let r = self
            .stack
            .client
            .post(self.stack.url(&format!("/api/apps/{id}/debug")))
            .bearer_auth(&self.token)
            .header("accept", "text/event-stream")
            .json(&json!({"query": query}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        r
    }
}

/// Reads Server-Sent Events from a response as `(event, data)` pairs.
pub(crate) struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    pub(crate) fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), or `None` at the end of the stream.
    pub(crate) async fn next(&mut self) -> Option<(String, Value)> {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !data.is_empty() {
                    return Some((
                        name,
                        serde_json::from_str(&data)
                            .unwrap_or_else(|_| panic!("data is not JSON: {data}")),
                    ));
                }
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.response.chunk())
                .await
                .expect("no event within 20 s")
                .unwrap()?;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    pub(crate) async fn all(mut self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        while let Some(event) = self.next().await {
            out.push(event);
        }
        out
    }
}

/// `role:content` of each message of a recorded chat request.
pub(crate) fn roles(request: &Value) -> Vec<String> {
    request["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            format!(
                "{}:{}",
                m["role"].as_str().unwrap(),
                m["content"].as_str().unwrap()
            )
        })
        .collect()
}

/// The streamed chat requests the mock received (leaving out memory summarising calls).
pub(crate) fn chat_requests(llm: &MockLlm) -> Vec<Value> {
    llm.requests()
        .into_iter()
        .filter(|r| r["stream"] == json!(true))
        .collect()
}

#[track_caller]
fn assert_keys(value: &Value, expected: &[&str]) {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap_or_else(|| panic!("{value}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut expected = expected.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected, "{value}");
}

const MESSAGE_KEYS: [&str; 12] = [
    "id",
    "conversation_id",
    "query",
    "answer",
    "answer_tokens",
    "prompt_tokens",
    "total_tokens",
    "response_latency",
    "status",
    "error",
    "created_at",
    "updated_at",
];

both_deployments! {
    options = |o| o.mock_llm().workers(2);
    async fn apps_are_created_listed_read_updated_and_deleted(stack: Stack) {
        let ada = User::sign_up(&stack).await;

        // Validation: every rule, and nothing is written.
        let cases = [
            (json!({"icon": ICON}), "name", "name is required"),
            (json!({"name": "   ", "icon": ICON}), "name", "name is required"),
            (json!({"name": "n".repeat(41), "icon": ICON}), "name", "name must be at most 40 characters"),
            (json!({"name": "a"}), "icon", "icon is required"),
            (json!({"name": "a", "icon": "not a url"}), "icon", "icon must be an http or https URL"),
            (json!({"name": "a", "icon": "ftp://a.com/x.png"}), "icon", "icon must be an http or https URL"),
            (json!({"name": "a", "icon": ICON, "description": "d".repeat(801)}), "description", "description must be at most 800 characters"),
            (json!({"name": "a", "icon": ICON, "color": "red"}), "color", "color is not an accepted field"),
            (json!({"name": 5, "icon": ICON}), "name", "name must be a string (got integer `5`)"),
        ];
        for (body, field, message) in cases {
            let (status, answer) = ada.post("/api/apps", body.clone()).await;
            assert_eq!(status, 422, "{body}: {answer}");
            assert_eq!(answer["code"], "validate_error");
            assert_eq!(answer["message"], message, "{body}");
            assert_eq!(answer["data"][field][0], message, "{body}: {answer}");
        }
        let r = stack.client.post(stack.url("/api/apps")).bearer_auth(&ada.token)
            .header("content-type", "application/json").body("{not json").send().await.unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(ada.get("/api/apps").await.1["data"]["paginator"]["total_record"], 0, "nothing was stored");

        // Create: the draft config comes with the app (seed 1.1 shape, exactly).
        let (status, created) = ada.post("/api/apps", json!({"name": " LLMOps助手 ", "icon": ICON, "description": "回答问题"})).await;
        assert_eq!(status, 200, "{created}");
        assert_keys(&created["data"], &["id"]);
        let id = created["data"]["id"].as_str().unwrap().to_owned();
        let app = ada.app(&id).await;
        assert_keys(&app, &["id", "name", "icon", "description", "published_app_config_id", "drafted_app_config_id",
            "debug_conversation_id", "published_app_config", "drafted_app_config", "updated_at", "created_at"]);
        assert_eq!((app["id"].as_str().unwrap(), &app["name"], &app["icon"], &app["description"]), (id.as_str(), &json!("LLMOps助手"), &json!(ICON), &json!("回答问题")));
        assert_eq!(app["published_app_config_id"], Value::Null);
        assert_eq!(app["published_app_config"], Value::Null);
        assert_eq!(app["debug_conversation_id"], Value::Null);
        let draft = &app["drafted_app_config"];
        assert_keys(draft, &["id", "model_config", "memory_mode", "status", "created_at", "updated_at"]);
        assert_eq!(draft["id"], app["drafted_app_config_id"]);
        assert_eq!(draft["status"], "drafted");
        assert_eq!(draft["memory_mode"], "none");
        assert_eq!(draft["model_config"], json!({"dialog_round": 3, "model": MODEL, "temperature": 1.0, "max_tokens": null, "preset_prompt": ""}));
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        assert!((now - app["created_at"].as_i64().unwrap()).abs() < 60, "times are Unix seconds: {app}");
        assert!((now - draft["updated_at"].as_i64().unwrap()).abs() < 60, "{draft}");

        // Listing: newest first, paginated, filtered by name, without the embedded configs.
        for name in ["Beta", "alpha two", "Gamma"] {
            // Creation times are milliseconds: keep them apart so the order is defined.
            tokio::time::sleep(Duration::from_millis(3)).await;
            ada.create_app(name).await;
        }
        let (_, page) = ada.get("/api/apps?current_page=1&page_size=3").await;
        let list = page["data"]["list"].as_array().unwrap();
        let names: Vec<&str> = list.iter().map(|a| a["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["Gamma", "alpha two", "Beta"]);
        assert_eq!(page["data"]["paginator"], json!({"current_page": 1, "page_size": 3, "total_page": 2, "total_record": 4}));
        assert_keys(&list[0], &["id", "name", "icon", "description", "published_app_config_id", "drafted_app_config_id",
            "debug_conversation_id", "updated_at", "created_at"]);
        assert!(list[0]["drafted_app_config_id"].is_string());
        let (_, page) = ada.get("/api/apps?page_size=3&current_page=2").await;
        assert_eq!(page["data"]["list"][0]["id"], json!(id));
        let (_, page) = ada.get("/api/apps?search_word=ALPHA").await;
        assert_eq!(page["data"]["paginator"]["total_record"], 1);
        assert_eq!(page["data"]["list"][0]["name"], "alpha two");
        let (_, page) = ada.get("/api/apps?search_word=%E5%8A%A9%E6%89%8B").await;
        assert_eq!(page["data"]["list"][0]["id"], json!(id), "search by a Chinese word");
        let (status, page) = ada.get("/api/apps?page_size=51").await;
        assert_eq!(status, 422, "{page}");
        assert_eq!(page["data"]["page_size"][0], "page_size must be an integer from 1 to 50");
        let (status, _) = ada.get("/api/apps?current_page=0").await;
        assert_eq!(status, 422);

        // Update: given fields only; a bad one changes nothing.
        let (status, body) = ada.post(&format!("/api/apps/{id}"), json!({"name": "x".repeat(41), "description": "new"})).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(ada.app(&id).await["description"], "回答问题");
        let (status, body) = ada.post(&format!("/api/apps/{id}"), json!({"description": "new"})).await;
        assert_eq!((status, &body["data"]), (200, &json!({})), "{body}");
        let app = ada.app(&id).await;
        assert_eq!((&app["name"], &app["description"]), (&json!("LLMOps助手"), &json!("new")));
        let (status, _) = ada.post(&format!("/api/apps/{id}"), json!({"name": "Renamed", "icon": "http://b.org/i.svg"})).await;
        assert_eq!(status, 200);
        let app = ada.app(&id).await;
        assert_eq!((&app["name"], &app["icon"]), (&json!("Renamed"), &json!("http://b.org/i.svg")));

        // Delete: the app and everything under it.
        ada.ask(&id, "hello").await;
        let (status, body) = ada.post_empty(&format!("/api/apps/{id}/delete")).await;
        assert_eq!((status, &body["data"]), (200, &json!({})), "{body}");
        for path in [format!("/api/apps/{id}"), format!("/api/apps/{id}/messages")] {
            let (status, body) = ada.get(&path).await;
            assert_eq!((status, body["code"].as_str().unwrap()), (404, "not_found"), "{path}");
        }
        let (status, _) = ada.post_empty(&format!("/api/apps/{id}/delete")).await;
        assert_eq!(status, 404);
        assert_eq!(ada.get("/api/apps").await.1["data"]["paginator"]["total_record"], 3);
    }
}

both_deployments! {
    options = |o| o.mock_llm().workers(2);
    async fn configs_are_drafted_published_and_withdrawn(stack: Stack) {
        let ada = User::sign_up(&stack).await;
        let id = ada.create_app("Bot").await;
        let path = format!("/api/apps/{id}/config");

        // Every validation rule names its field, and a refused update changes nothing.
        let base = json!({"dialog_round": 3});
        let cases = [
            (json!({"model_config": {"dialog_round": 101}, "memory_mode": "none"}), "model_config.dialog_round"),
            (json!({"model_config": {"dialog_round": -1}, "memory_mode": "none"}), "model_config.dialog_round"),
            (json!({"model_config": {"dialog_round": "3"}, "memory_mode": "none"}), "model_config.dialog_round"),
            (json!({"model_config": {"temperature": 2.5}, "memory_mode": "none"}), "model_config.temperature"),
            (json!({"model_config": {"temperature": -1}, "memory_mode": "none"}), "model_config.temperature"),
            (json!({"model_config": {"max_tokens": 0}, "memory_mode": "none"}), "model_config.max_tokens"),
            (json!({"model_config": {"model": ""}, "memory_mode": "none"}), "model_config.model"),
            (json!({"model_config": {"preset_prompt": "p".repeat(2001)}, "memory_mode": "none"}), "model_config.preset_prompt"),
            (json!({"model_config": {"top_p": 1}, "memory_mode": "none"}), "model_config.top_p"),
            (json!({"model_config": [1], "memory_mode": "none"}), "model_config"),
            (json!({"memory_mode": "none"}), "model_config"),
            (json!({"model_config": base, "memory_mode": "short_term"}), "memory_mode"),
            (json!({"model_config": base}), "memory_mode"),
            (json!({"model_config": base, "memory_mode": "none", "extra": 1}), "extra"),
        ];
        let before = ada.app(&id).await["drafted_app_config"].clone();
        for (body, field) in cases {
            let (status, answer) = ada.put(&path, body.clone()).await;
            assert_eq!(status, 422, "{body}: {answer}");
            assert!(answer["data"][field][0].is_string(), "{body}: {answer}");
            assert!(answer["message"].as_str().unwrap().starts_with(field), "{answer}");
        }
        let (status, answer) = ada.put(&path, json!({"model_config": {"dialog_round": 200, "temperature": 9}, "memory_mode": "x"})).await;
        assert_eq!(status, 422);
        assert_eq!(answer["data"].as_object().unwrap().len(), 3, "all problems at once: {answer}");
        assert_eq!(ada.app(&id).await["drafted_app_config"], before, "nothing was written");

        // The seed's request replaces the draft's model_config: a field left out takes its
        // default, so a draft that named another model returns to the server's.
        ada.configure(&id, json!({"dialog_round": 7, "model": "another-model", "max_tokens": 9}), "none").await;
        assert_eq!(ada.app(&id).await["drafted_app_config"]["model_config"]["model"], "another-model");
        ada.configure(&id, json!({"temperature": 0.25}), "none").await;
        assert_eq!(
            ada.app(&id).await["drafted_app_config"]["model_config"],
            json!({"dialog_round": 3, "model": MODEL, "temperature": 0.25, "max_tokens": null, "preset_prompt": ""}),
            "omitted fields take their defaults"
        );
        ada.configure(&id, json!({"dialog_round": 5, "preset_prompt": "你是助手", "max_tokens": 256, "temperature": 0.5}), "long_term_memory").await;
        let app = ada.app(&id).await;
        let draft = &app["drafted_app_config"];
        assert_eq!(draft["id"], before["id"], "the draft is updated in place");
        assert_eq!(draft["model_config"], json!({"dialog_round": 5, "model": MODEL, "temperature": 0.5, "max_tokens": 256, "preset_prompt": "你是助手"}));
        assert_eq!(draft["memory_mode"], "long_term_memory");

        // Publish copies the draft; the draft stays.
        let (status, body) = ada.post_empty(&format!("/api/apps/{id}/publish")).await;
        assert_eq!((status, &body["data"]), (200, &json!({})), "{body}");
        let app = ada.app(&id).await;
        let published = &app["published_app_config"];
        assert_eq!(app["published_app_config_id"], published["id"]);
        assert_ne!(published["id"], app["drafted_app_config"]["id"]);
        assert_eq!(published["status"], "published");
        assert_eq!(published["model_config"], app["drafted_app_config"]["model_config"]);
        assert_eq!(published["memory_mode"], "long_term_memory");
        assert_eq!(app["drafted_app_config"]["status"], "drafted");

        // A later draft change leaves the published copy alone until published again.
        ada.configure(&id, json!({"dialog_round": 1}), "none").await;
        let app = ada.app(&id).await;
        assert_eq!(app["published_app_config"]["model_config"]["dialog_round"], 5);
        assert_eq!(app["drafted_app_config"]["model_config"]["dialog_round"], 1);
        let (_, page) = ada.get("/api/apps").await;
        assert_eq!(page["data"]["list"][0]["published_app_config_id"], app["published_app_config_id"]);

        // Cancel publish; a second cancel is refused.
        let (status, _) = ada.post_empty(&format!("/api/apps/{id}/cancel-publish")).await;
        assert_eq!(status, 200);
        let app = ada.app(&id).await;
        assert_eq!((&app["published_app_config"], &app["published_app_config_id"]), (&Value::Null, &Value::Null));
        assert!(app["drafted_app_config"].is_object());
        let (status, body) = ada.post_empty(&format!("/api/apps/{id}/cancel-publish")).await;
        assert_eq!((status, body["code"].as_str().unwrap()), (400, "fail"), "{body}");
        assert_eq!(body["message"], "the app is not published");
    }
}

both_deployments! {
    options = |o| o.mock_llm().workers(2);
    async fn other_accounts_are_forbidden_and_unknown_ids_not_found(stack: Stack) {
        let ada = User::sign_up(&stack).await;
        let bob = User::sign_up(&stack).await;
        let id = ada.create_app("Ada's").await;
        ada.configure(&id, json!({}), "long_term_memory").await;
        let message = ada.ask(&id, "hi").await["id"].as_str().unwrap().to_owned();

        let calls = |app: &str, message: &str| {
            vec![
                (Method::GET, format!("/api/apps/{app}"), None),
                (Method::POST, format!("/api/apps/{app}"), Some(json!({"name": "mine"}))),
                (Method::POST, format!("/api/apps/{app}/delete"), None),
                (Method::PUT, format!("/api/apps/{app}/config"), Some(json!({"model_config": {}, "memory_mode": "none"}))),
                (Method::POST, format!("/api/apps/{app}/publish"), None),
                (Method::POST, format!("/api/apps/{app}/cancel-publish"), None),
                (Method::GET, format!("/api/apps/{app}/long-term-memory"), None),
                (Method::POST, format!("/api/apps/{app}/long-term-memory"), Some(json!({"summary": "x"}))),
                (Method::POST, format!("/api/apps/{app}/debug"), Some(json!({"query": "hi"}))),
                (Method::GET, format!("/api/apps/{app}/messages"), None),
                (Method::POST, format!("/api/apps/{app}/messages/{message}/delete"), None),
                (Method::POST, format!("/api/apps/{app}/messages/{message}/stop"), None),
            ]
        };
        for (method, path, body) in calls(&id, &message) {
            let (status, answer) = bob.call(method.clone(), &path, body.clone()).await;
            assert_eq!((status, answer["code"].as_str().unwrap()), (403, "forbidden"), "{method} {path}: {answer}");
        }
        let unknown = uuid::Uuid::new_v4().to_string();
        for app in [unknown.as_str(), "not-a-uuid", "123"] {
            for (method, path, body) in calls(app, &message) {
                let (status, answer) = ada.call(method.clone(), &path, body.clone()).await;
                assert_eq!((status, answer["code"].as_str().unwrap()), (404, "not_found"), "{method} {path}: {answer}");
            }
        }
        // A message id that is malformed, unknown, or of another app is not found here.
        let other = ada.create_app("other").await;
        let other_message = ada.ask(&other, "x").await["id"].as_str().unwrap().to_owned();
        for m in ["nope", unknown.as_str(), other_message.as_str()] {
            for action in ["delete", "stop"] {
                let (status, answer) = ada.post_empty(&format!("/api/apps/{id}/messages/{m}/{action}")).await;
                assert_eq!((status, answer["code"].as_str().unwrap()), (404, "not_found"), "{m} {action}: {answer}");
            }
        }
        // Nothing of Ada's changed.
        let app = ada.app(&id).await;
        assert_eq!(app["name"], "Ada's");
        assert_eq!(ada.messages(&id, "").await["paginator"]["total_record"], 1);
        assert_eq!(bob.get("/api/apps").await.1["data"]["paginator"]["total_record"], 0);

        // Without a token: unauthorized.
        for path in ["/api/apps".to_owned(), format!("/api/apps/{id}"), format!("/api/apps/{id}/messages")] {
            let r = stack.client.get(stack.url(&path)).send().await.unwrap();
            assert_eq!(r.status(), 401, "{path}");
            assert_eq!(r.json::<Value>().await.unwrap()["code"], "unauthorized");
        }
        let r = stack.client.post(stack.url(&format!("/api/apps/{id}/debug"))).bearer_auth("forged").json(&json!({"query": "x"})).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
}

both_deployments! {
    options = |o| o.mock_llm().workers(2);
    async fn long_term_memory_is_refused_when_off_and_kept_when_on(stack: Stack) {
        let ada = User::sign_up(&stack).await;
        let id = ada.create_app("Bot").await;
        let path = format!("/api/apps/{id}/long-term-memory");

        for (status, body) in [ada.get(&path).await, ada.post(&path, json!({"summary": "x"})).await] {
            assert_eq!((status, body["code"].as_str().unwrap()), (400, "fail"), "{body}");
            assert!(body["message"].as_str().unwrap().contains("memory_mode is none"), "{body}");
        }

        ada.configure(&id, json!({}), "long_term_memory").await;
        let (status, body) = ada.get(&path).await;
        assert_eq!(status, 200, "{body}");
        assert_keys(&body["data"], &["summary", "conversation_id", "updated_at"]);
        assert_eq!(body["data"]["summary"], "");
        let conversation = body["data"]["conversation_id"].clone();
        assert_eq!(ada.app(&id).await["debug_conversation_id"], conversation, "the debug conversation");

        let (status, body) = ada.post(&path, json!({"summary": "这是一个长记忆的总结信息"})).await;
        assert_eq!((status, &body["data"]), (200, &json!({})), "{body}");
        assert_eq!(body["message"], "更新AI应用长记忆成功");
        let (_, body) = ada.get(&path).await;
        assert_eq!(body["data"]["summary"], "这是一个长记忆的总结信息");
        assert_eq!(body["data"]["conversation_id"], conversation);

        for bad in [json!({}), json!({"summary": 3}), json!({"summary": "x".repeat(10_001)}), json!({"summary": "x", "more": 1})] {
            let (status, answer) = ada.post(&path, bad.clone()).await;
            assert_eq!(status, 422, "{bad}: {answer}");
        }
        assert_eq!(ada.get(&path).await.1["data"]["summary"], "这是一个长记忆的总结信息", "unchanged");

        // The published config counts only when there is no draft; with a draft of `none`
        // the memory is off again.
        ada.post_empty(&format!("/api/apps/{id}/publish")).await;
        ada.configure(&id, json!({}), "none").await;
        assert_eq!(ada.get(&path).await.0, 400);
    }
}

both_deployments! {
    options = |o| o.mock_llm().workers(2);
    async fn debug_chat_answers_through_the_queue_and_stores_the_message(stack: Stack) {
        let llm = stack.llm();
        let ada = User::sign_up(&stack).await;
        let id = ada.create_app("Bot").await;
        ada.configure(&id, json!({"preset_prompt": "You are terse.", "temperature": 0.3, "max_tokens": 100}), "none").await;

        // Validation: nothing is stored, the LLM is not called.
        for (body, status) in [(json!({}), 422), (json!({"query": ""}), 422), (json!({"query": "  "}), 422),
                               (json!({"query": "字".repeat(2001)}), 422), (json!({"query": 1}), 422),
                               (json!({"query": "x", "stream": true}), 422)] {
            let (s, answer) = ada.post(&format!("/api/apps/{id}/debug"), body.clone()).await;
            assert_eq!(s, status, "{body}: {answer}");
            assert_eq!(answer["code"], "validate_error");
        }
        assert!(llm.requests().is_empty());
        assert_eq!(ada.app(&id).await["debug_conversation_id"], Value::Null);

        let started = Instant::now();
        let message = ada.ask(&id, "你好").await;
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_keys(&message, &MESSAGE_KEYS);
        let request = &llm.requests()[0];
        assert_eq!(request["model"], MODEL);
        assert_eq!(request["temperature"], 0.3);
        assert_eq!(request["max_tokens"], 100);
        assert_eq!(request["stream"], true);
        assert_eq!(roles(request), ["system:You are terse.", "user:你好"]);
        let answer = mock_sentence(request);
        assert_eq!(message["answer"], json!(answer));
        assert_eq!(message["answer_tokens"], json!(answer.split_whitespace().count()), "usage.completion_tokens");
        assert_eq!(message["prompt_tokens"], 10, "usage.prompt_tokens, stored with the debug message");
        assert_eq!(message["total_tokens"], json!(10 + answer.split_whitespace().count()));
        assert_eq!(message["query"], "你好");
        assert_eq!((&message["status"], &message["error"]), (&json!("normal"), &json!("")));
        let latency = message["response_latency"].as_f64().unwrap();
        assert!(latency > 0.0 && latency < 10_000.0, "milliseconds: {latency}");
        assert_eq!(llm.requests().len(), 1, "no summary call without long-term memory");

        let app = ada.app(&id).await;
        assert_eq!(app["debug_conversation_id"], message["conversation_id"]);
        let page = ada.messages(&id, "").await;
        assert_eq!(page["paginator"], json!({"current_page": 1, "page_size": 20, "total_page": 1, "total_record": 1}));
        assert_eq!(page["list"][0], message, "the listed message is the answered one");

        // The draft is what a debug chat uses; without one... it always has one. With a
        // published config and a changed draft, the draft wins.
        ada.post_empty(&format!("/api/apps/{id}/publish")).await;
        ada.configure(&id, json!({"preset_prompt": "Draft prompt."}), "none").await;
        ada.ask(&id, "which?").await;
        let last = llm.requests().last().cloned().unwrap();
        assert_eq!(roles(&last)[0], "system:Draft prompt.");
    }
}

both_deployments! {
    options = |o| o.mock_llm().workers(2);
    async fn the_prompt_carries_the_last_dialog_round_rounds_and_no_deleted_ones(stack: Stack) {
        let llm = stack.llm();
        let ada = User::sign_up(&stack).await;
        let id = ada.create_app("Bot").await;
        ada.configure(&id, json!({"dialog_round": 2, "preset_prompt": "Be brief."}), "none").await;
        let mut ids = Vec::new();
        let mut answers = Vec::new();
        for i in 1..=4 {
            let m = ada.ask(&id, &format!("q{i}")).await;
            ids.push(m["id"].as_str().unwrap().to_owned());
            answers.push(m["answer"].as_str().unwrap().to_owned());
        }
        ada.ask(&id, "q5").await;
        let requests = chat_requests(llm);
        assert_eq!(requests.len(), 5);
        assert_eq!(roles(&requests[4]), [
            "system:Be brief.".to_owned(),
            "user:q3".into(), format!("assistant:{}", answers[2]),
            "user:q4".into(), format!("assistant:{}", answers[3]),
            "user:q5".into(),
        ], "dialog_round = 2 after four rounds sends exactly two rounds");
        assert_eq!(roles(&requests[1]).len(), 4, "the second question carries the first round");

        // Soft delete (seed 1.7): gone from the list and from the prompt.
        let (status, body) = ada.post_empty(&format!("/api/apps/{id}/messages/{}/delete", ids[3])).await;
        assert_eq!((status, &body["data"]), (200, &json!({})), "{body}");
        assert_eq!(body["message"], "删除AI应用调试消息成功");
        let (status, _) = ada.post_empty(&format!("/api/apps/{id}/messages/{}/delete", ids[3])).await;
        assert_eq!(status, 404, "already deleted");
        // The seed's example sends the ids in a body too; that is accepted.
        let (status, _) = ada.post(&format!("/api/apps/{id}/messages/{}/delete", ids[0]), json!({"app_id": id, "message_id": ids[0]})).await;
        assert_eq!(status, 200);
        let (status, _) = ada.post_empty(&format!("/api/apps/{id}/messages/{}/stop", ids[0])).await;
        assert_eq!(status, 404, "a deleted message cannot be stopped");

        let page = ada.messages(&id, "").await;
        assert_eq!(page["paginator"]["total_record"], 3);
        let queries: Vec<&str> = page["list"].as_array().unwrap().iter().map(|m| m["query"].as_str().unwrap()).collect();
        assert_eq!(queries, ["q5", "q3", "q2"], "newest first, deleted ones left out");

        ada.ask(&id, "q6").await;
        let last = chat_requests(llm).pop().unwrap();
        let roles = roles(&last);
        assert_eq!(roles.len(), 6, "{roles:?}");
        assert_eq!((roles[1].as_str(), roles[3].as_str(), roles[5].as_str()), ("user:q3", "user:q5", "user:q6"),
            "the deleted round 4 is skipped: {roles:?}");

        // dialog_round = 0 sends the query alone.
        ada.configure(&id, json!({"dialog_round": 0, "preset_prompt": "Be brief."}), "none").await;
        ada.ask(&id, "q7").await;
        assert_eq!(super::roles(&chat_requests(llm).pop().unwrap()), ["system:Be brief.", "user:q7"]);

        // Paging through the messages: 20 at most.
        let (status, body) = ada.get(&format!("/api/apps/{id}/messages?page_size=21")).await;
        assert_eq!(status, 422, "{body}");
        let page = ada.messages(&id, "?page_size=2&current_page=2").await;
        assert_eq!(page["paginator"], json!({"current_page": 2, "page_size": 2, "total_page": 3, "total_record": 5}));
        assert_eq!(page["list"][0]["query"], "q5");
    }
}

both_deployments! {
    options = |o| o.mock_llm().workers(2);
    async fn long_term_memory_is_sent_in_the_system_message_and_updated_after_a_round(stack: Stack) {
        let llm = stack.llm();
        let ada = User::sign_up(&stack).await;
        let id = ada.create_app("Bot").await;
        ada.configure(&id, json!({"preset_prompt": "You are kind."}), "long_term_memory").await;
        let path = format!("/api/apps/{id}/long-term-memory");
        ada.post(&path, json!({"summary": "The user likes green tea."})).await;
        let before = ada.get(&path).await.1["data"].clone();

        let message = ada.ask(&id, "What do I like?").await;
        assert_eq!(message["status"], "normal");
        let requests = llm.requests();
        assert_eq!(requests.len(), 2, "the chat, then the summarising call: {requests:?}");
        let system = roles(&requests[0])[0].clone();
        assert!(system.starts_with("system:You are kind.") && system.contains("The user likes green tea."), "{system}");
        let summarise = &requests[1];
        assert_ne!(summarise["stream"], json!(true), "the summary call is not streamed");
        let prompt = roles(summarise)[1].clone();
        assert!(prompt.contains("The user likes green tea.") && prompt.contains("What do I like?")
            && prompt.contains(message["answer"].as_str().unwrap()), "{prompt}");

        // Read right after the answer: the summary has already changed.
        let after = ada.get(&path).await.1["data"].clone();
        assert_ne!(after["summary"], before["summary"]);
        assert_eq!(after["summary"], json!(mock_sentence(summarise)));
        assert!(after["updated_at"].as_i64() >= before["updated_at"].as_i64());

        // The next round carries the new summary.
        ada.ask(&id, "And now?").await;
        let system = roles(&chat_requests(llm)[1])[0].clone();
        assert!(system.contains(after["summary"].as_str().unwrap()), "{system}");

        // The mock echoes its prompt, so each summary holds the one before it twice over; the
        // stored summary stays within the 10,000-character limit all the same.
        for i in 0..4 {
            let message = ada.ask(&id, &format!("round {i}")).await;
            assert_eq!(message["status"], "normal", "{message}");
        }
        let summary = ada.get(&path).await.1["data"]["summary"].as_str().unwrap().to_owned();
        assert_eq!(summary.chars().count(), 10_000, "the summary is cut at the limit");

        // Memory off: no summary in the prompt, no summarising call.
        ada.configure(&id, json!({"preset_prompt": "You are kind."}), "none").await;
        let count = llm.requests().len();
        ada.ask(&id, "plain").await;
        let requests = llm.requests();
        assert_eq!(requests.len(), count + 1);
        assert_eq!(roles(requests.last().unwrap())[0], "system:You are kind.");
    }
}

both_deployments! {
    options = |o| o.mock_llm().workers(2);
    async fn streaming_relays_the_events_in_order(stack: Stack) {
        let llm = stack.llm();
        let ada = User::sign_up(&stack).await;
        let id = ada.create_app("Bot").await;
        llm.set_chunk_delay(Duration::from_millis(5));
        let response = ada.ask_streaming(&id, "stream please").await;
        let events = Events::new(response).all().await;
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.first(), Some(&"message_created"), "{names:?}");
        assert_eq!(names.last(), Some(&"message_end"), "{names:?}");
        assert!(names[1..names.len() - 1].iter().all(|n| *n == "answer_delta"), "{names:?}");
        assert!(names.len() > 3, "several deltas: {names:?}");

        let created = &events[0].1;
        assert_keys(created, &["id", "conversation_id"]);
        let message_id = created["id"].clone();
        let mut text = String::new();
        for (_, delta) in &events[1..events.len() - 1] {
            assert_eq!(delta["id"], message_id);
            text.push_str(delta["delta"].as_str().unwrap());
        }
        let end = &events.last().unwrap().1;
        assert_keys(end, &["message"]);
        let message = &end["message"];
        assert_keys(message, &MESSAGE_KEYS);
        assert_eq!((&message["id"], &message["conversation_id"]), (&message_id, &created["conversation_id"]));
        assert_eq!(message["answer"], json!(text), "the deltas make up the answer");
        assert_eq!(message["answer"], json!(mock_sentence(&llm.requests()[0])));
        assert_eq!(ada.messages(&id, "").await["list"][0], *message);

        // A provider failure ends the stream with an `error` event.
        llm.set_failure(Some(400));
        let events = Events::new(ada.ask_streaming(&id, "fail please").await).all().await;
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["message_created", "error"]);
        assert_eq!(events[1].1["id"], events[0].1["id"]);
        assert!(events[1].1["message"].as_str().unwrap().contains("mock failure"), "{:?}", events[1]);
    }
}

both_deployments! {
    options = |o| o.mock_llm().workers(2);
    async fn stop_keeps_the_partial_answer_and_closes_the_provider_request(stack: Stack) {
        let llm = stack.llm();
        let ada = User::sign_up(&stack).await;
        let id = ada.create_app("Bot").await;
        let reply: Vec<String> = (1..=40).map(|i| format!("word{i}")).collect();
        llm.set_reply(Some(&reply.join(" ")));
        llm.set_chunk_delay(Duration::from_millis(100));

        let mut events = Events::new(ada.ask_streaming(&id, "long answer").await);
        let (name, created) = events.next().await.unwrap();
        assert_eq!(name, "message_created");
        let message_id = created["id"].as_str().unwrap().to_owned();
        let mut streamed = String::new();
        while streamed.split_whitespace().count() < 3 {
            let (name, delta) = events.next().await.unwrap();
            assert_eq!(name, "answer_delta");
            streamed.push_str(delta["delta"].as_str().unwrap());
        }
        let asked = Instant::now();
        let (status, body) = ada.post_empty(&format!("/api/apps/{id}/messages/{message_id}/stop")).await;
        assert_eq!((status, &body["data"]), (200, &json!({})), "{body}");
        let stopped = loop {
            let (name, data) = events.next().await.expect("the stream ends with `stopped`");
            match name.as_str() {
                "answer_delta" => streamed.push_str(data["delta"].as_str().unwrap()),
                "stopped" => break data,
                other => panic!("unexpected {other}: {data}"),
            }
        };
        assert!(asked.elapsed() < Duration::from_secs(2), "stopped within {:?}", asked.elapsed());
        assert!(events.next().await.is_none(), "the stream ends after `stopped`");
        assert_eq!(stopped["id"], json!(message_id));
        let partial = stopped["message"]["answer"].as_str().unwrap().to_owned();
        assert_eq!(stopped["message"]["status"], "stopped");
        assert!(partial.starts_with("word1 word2 word3"), "{partial}");
        assert!(partial.split_whitespace().count() < 40, "partial: {partial}");
        assert_eq!(partial, streamed, "the partial answer is what was streamed");

        let deadline = Instant::now() + Duration::from_secs(3);
        while llm.dropped() == 0 {
            assert!(Instant::now() < deadline, "the provider connection was not closed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(llm.completed(), 0, "the provider never finished the answer");
        let listed = &ada.messages(&id, "").await["list"][0];
        assert_eq!((&listed["status"], &listed["answer"]), (&json!("stopped"), &json!(partial)));

        // A blocking call stopped from another connection answers the partial message.
        let blocking = {
            let stack_client = stack.client.clone();
            let url = stack.url(&format!("/api/apps/{id}/debug"));
            let token = ada.token.clone();
            tokio::spawn(async move {
                let r = stack_client.post(url).bearer_auth(token).json(&json!({"query": "again"})).send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            })
        };
        let pending_id = loop {
            let page = ada.messages(&id, "").await;
            let first = &page["list"][0];
            if first["query"] == "again" && first["status"] == "streaming" && llm.requests().len() == 2 {
                break first["id"].as_str().unwrap().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (status, _) = ada.post_empty(&format!("/api/apps/{id}/messages/{pending_id}/stop")).await;
        assert_eq!(status, 200);
        let (status, body) = blocking.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["status"], "stopped");
        assert_eq!(body["data"]["id"], json!(pending_id));

        // Stopping a finished message changes nothing.
        llm.set_chunk_delay(Duration::ZERO);
        let done = ada.ask(&id, "quick").await;
        let (status, _) = ada.post_empty(&format!("/api/apps/{id}/messages/{}/stop", done["id"].as_str().unwrap())).await;
        assert_eq!(status, 200);
        assert_eq!(ada.messages(&id, "").await["list"][0], done);
    }
}

both_deployments! {
    options = |o| o.mock_llm().workers(2);
    async fn fifty_concurrent_debug_chats_on_one_app_complete_and_are_listed(stack: Stack) {
        let llm = stack.llm();
        let ada = User::sign_up(&stack).await;
        let id = ada.create_app("Busy").await;
        llm.set_latency(Duration::from_millis(50));
        let calls = (0..50).map(|i| {
            let (client, url, token) = (stack.client.clone(), stack.url(&format!("/api/apps/{id}/debug")), ada.token.clone());
            tokio::spawn(async move {
                let r = client.post(url).bearer_auth(token).json(&json!({"query": format!("question {i}")})).send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            })
        });
        let answers = futures::future::join_all(calls).await;
        let mut ids = std::collections::BTreeSet::new();
        let mut conversations = std::collections::BTreeSet::new();
        for answer in answers {
            let (status, body) = answer.unwrap();
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["data"]["status"], "normal", "{body}");
            ids.insert(body["data"]["id"].as_str().unwrap().to_owned());
            conversations.insert(body["data"]["conversation_id"].as_str().unwrap().to_owned());
        }
        assert_eq!(ids.len(), 50);
        assert_eq!(conversations.len(), 1, "concurrent first calls share one debug conversation");
        assert_eq!(chat_requests(llm).len(), 50);

        let mut listed = std::collections::BTreeSet::new();
        for page in 1..=3 {
            let data = ada.messages(&id, &format!("?current_page={page}")).await;
            assert_eq!(data["paginator"]["total_record"], 50);
            assert_eq!(data["paginator"]["total_page"], 3);
            for m in data["list"].as_array().unwrap() {
                assert_eq!(m["status"], "normal");
                listed.insert(m["id"].as_str().unwrap().to_owned());
            }
        }
        assert_eq!(listed, ids, "all fifty are listed");
    }
}

both_deployments! {
    options = |o| o.mock_llm().workers(2);
    async fn deleting_an_app_mid_chat_releases_the_waiting_call(stack: Stack) {
        let llm = stack.llm();
        let ada = User::sign_up(&stack).await;
        let id = ada.create_app("Doomed").await;
        llm.set_latency(Duration::from_millis(800));
        let call = {
            let (client, url, token) = (stack.client.clone(), stack.url(&format!("/api/apps/{id}/debug")), ada.token.clone());
            tokio::spawn(async move {
                let r = client.post(url).bearer_auth(token).json(&json!({"query": "hello?"})).send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            })
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while llm.requests().is_empty() {
            assert!(Instant::now() < deadline, "the LLM call never started");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (status, _) = ada.post_empty(&format!("/api/apps/{id}/delete")).await;
        assert_eq!(status, 200);
        let (status, body) = tokio::time::timeout(Duration::from_secs(5), call).await.expect("the call was released").unwrap();
        assert_eq!((status, body["code"].as_str().unwrap()), (404, "not_found"), "{body}");
    }
}

both_deployments! {
    options = |o| o.mock_llm().env("LLMOPS_LLM_TIMEOUT_SECS", "1");
    /// Failures and timeouts of the provider are stored and answered `fail`; the question is
    /// kept. A short LLM timeout keeps the test quick.
    async fn provider_failures_are_stored_and_answered_fail(stack: Stack) {
        let llm = stack.llm();
        let ada = User::sign_up(&stack).await;
        let id = ada.create_app("Bot").await;

        llm.set_failure(Some(500));
        let (_, body) = assert_debug_fails(ada.debug(&id, "will fail").await, "HTTP 500");
        let failed = &ada.messages(&id, "").await["list"][0];
        assert_eq!((&failed["query"], &failed["status"]), (&json!("will fail"), &json!("error")));
        assert_eq!(failed["error"], body["message"]);

        llm.set_failure(None);
        llm.set_latency(Duration::from_secs(3));
        let started = Instant::now();
        let (status, body) = ada.debug(&id, "too slow").await;
        assert_eq!(status, 400, "{body}");
        assert!(body["message"].as_str().unwrap().contains("timed out"), "{body}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        let page = ada.messages(&id, "").await;
        assert_eq!(page["list"][0]["status"], "error");
        assert_eq!(page["list"][0]["query"], "too slow");

        // The provider is back: the failed rounds are not sent as history.
        llm.set_latency(Duration::ZERO);
        let message = ada.ask(&id, "works").await;
        assert_eq!(message["status"], "normal");
        assert_eq!(roles(&chat_requests(llm).pop().unwrap()), ["user:works"]);
        assert_eq!(ada.messages(&id, "").await["paginator"]["total_record"], 3);
    }
}

both_deployments! {
    /// With no provider configured, a debug chat answers `fail` naming the setting, and the
    /// question is stored.
    async fn an_unconfigured_provider_fails_naming_the_setting(stack: Stack) {
        let ada = User::sign_up(&stack).await;
        let id = ada.create_app("Bot").await;
        assert_debug_fails(ada.debug(&id, "anyone?").await, "LLMOPS_LLM_BASE_URL");
        let page = ada.messages(&id, "").await;
        assert_eq!(page["paginator"]["total_record"], 1);
        let stored = &page["list"][0];
        assert_eq!((&stored["query"], &stored["status"]), (&json!("anyone?"), &json!("error")));
        assert!(stored["error"].as_str().unwrap().contains("LLMOPS_LLM_BASE_URL"));
    }
}

/// On the embedded store a question and its queue job commit together: when the queue refuses
/// the job, the chat answers 503 and no message is left behind, pending with no job to answer it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_chat_the_queue_refuses_leaves_nothing_behind() {
    let Some(stack) = Stack::start_with(StackOptions::new(Mode::Embedded).mock_llm()).await else {
        return;
    };
    let ada = User::sign_up(&stack).await;
    let id = ada.create_app("Bot").await;
    let refused = JobsRefused::on(&stack).await;
    let (status, body) = ada.debug(&id, "anyone?").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("fail")),
        "{body}"
    );
    assert_eq!(
        refused.count("messages").await,
        0,
        "no question without its job"
    );

    refused.accept().await;
    let message = ada.ask(&id, "anyone?").await;
    assert_eq!(message["status"], "normal", "{message}");
}

/// Asserts a debug call answered 400 `fail` with a message containing `needle`; passes the
/// answer on.
#[track_caller]
fn assert_debug_fails((status, body): (u16, Value), needle: &str) -> (u16, Value) {
    assert_eq!(
        (status, body["code"].as_str().unwrap()),
        (400, "fail"),
        "{body}"
    );
    assert!(body["message"].as_str().unwrap().contains(needle), "{body}");
    (status, body)
}
