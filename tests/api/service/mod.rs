//! The service API of published apps, against both deployments with the mock LLM: app keys
//! (create, list masked, revoke at once), `/v1/chat-messages` blocking and streaming with the
//! published config only, end users' conversations kept apart (50 concurrent users), stop,
//! feedback, paging, the per-key rate limit, Dify's error shape, and the OpenAI-compatible
//! endpoint over HTTP and through the official `openai` Python package.

mod openai_client;

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    apps::{Events, User, chat_requests, roles},
    helpers::{Stack, both_deployments, stack::MOCK_MODEL},
};

/// An end user's client: the app key and the raw answers.
pub(crate) struct Service<'a> {
    pub(crate) stack: &'a Stack,
    pub(crate) key: String,
}

impl<'a> Service<'a> {
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
            .bearer_auth(&self.key);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let body: Value =
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{status}: not JSON: {text}"));
        if status >= 400 {
            assert_dify_error(status, &body);
        }
        (status, body)
    }

    pub(crate) async fn chat(&self, body: Value) -> (u16, Value) {
        self.call(Method::POST, "/v1/chat-messages", Some(body))
            .await
    }

    /// A blocking chat that must succeed.
    pub(crate) async fn ask(&self, user: &str, query: &str, conversation: Option<&str>) -> Value {
        let mut body = json!({"query": query, "user": user, "response_mode": "blocking"});
        if let Some(c) = conversation {
            body["conversation_id"] = json!(c);
        }
        let (status, answer) = self.chat(body).await;
        assert_eq!(status, 200, "{answer}");
        answer
    }
}

/// Dify's error shape: exactly `{code, message, status}`, the status repeated.
#[track_caller]
pub(crate) fn assert_dify_error(status: u16, body: &Value) {
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap_or_else(|| panic!("{body}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "message", "status"], "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["code"].is_string() && body["message"].is_string(),
        "{body}"
    );
}

/// An owner with a published app (`model_config` as given) and a key for it.
pub(crate) async fn published_app<'a>(
    stack: &'a Stack,
    model_config: Value,
    memory: &str,
) -> (User<'a>, String, Service<'a>) {
    let owner = User::sign_up(stack).await;
    let app = owner.create_app("Service").await;
    owner.configure(&app, model_config, memory).await;
    let (status, body) = owner.post_empty(&format!("/api/apps/{app}/publish")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = owner.post_empty(&format!("/api/apps/{app}/api-keys")).await;
    assert_eq!(status, 200, "{body}");
    let key = body["data"]["key"].as_str().unwrap().to_owned();
    (owner, app, Service { stack, key })
}

both_deployments! {
    options = |o| o.mock_llm();
    /// Keys are shown once, listed masked, owner-only, and a deleted key is refused at once.
    async fn app_keys_are_created_listed_masked_and_revoked_at_once(stack: Stack) {
        let (owner, app, service) = published_app(&stack, json!({}), "none").await;
        assert!(service.key.starts_with("app-") && service.key.len() == 68, "{}", service.key);
        let (status, models) = service.call(Method::GET, "/v1/models", None).await;
        assert_eq!(status, 200, "{models}");
        assert_eq!(models["data"][0]["id"], app.as_str());
        assert_eq!(models["object"], "list");

        let (_, listed) = owner.get(&format!("/api/apps/{app}/api-keys")).await;
        let keys = listed["data"]["list"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        let masked = keys[0]["key"].as_str().unwrap();
        assert!(!masked.contains(&service.key[8..60]), "masked: {masked}");
        assert!(masked.starts_with(&service.key[..8]), "{masked}");
        assert!(keys[0]["created_at"].is_i64());
        // The use above is recorded (in the background).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let (_, listed) = owner.get(&format!("/api/apps/{app}/api-keys")).await;
            if listed["data"]["list"][0]["last_used_at"].is_i64() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "last_used_at never set: {listed}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // Another account may not touch the keys; unknown ids are not found.
        let bob = User::sign_up(&stack).await;
        assert_eq!(bob.get(&format!("/api/apps/{app}/api-keys")).await.0, 403);
        assert_eq!(bob.post_empty(&format!("/api/apps/{app}/api-keys")).await.0, 403);
        let key_id = keys[0]["id"].as_str().unwrap().to_owned();
        assert_eq!(bob.post_empty(&format!("/api/apps/{app}/api-keys/{key_id}/delete")).await.0, 403);
        assert_eq!(owner.post_empty(&format!("/api/apps/{app}/api-keys/nope/delete")).await.0, 404);
        assert_eq!(owner.get(&format!("/api/apps/{}/api-keys", uuid::Uuid::new_v4())).await.0, 404);

        // Missing, malformed and unknown keys are 401 in Dify's shape.
        let anonymous = stack.client.get(stack.url("/v1/models")).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
        let body: Value = anonymous.json().await.unwrap();
        assert_dify_error(401, &body);
        assert_eq!(body["code"], "unauthorized");
        let stranger = Service { stack: &stack, key: "app-0000".into() };
        assert_eq!(stranger.call(Method::GET, "/v1/models", None).await.0, 401);
        // A console access token is no app key.
        let token = Service { stack: &stack, key: owner.token.clone() };
        assert_eq!(token.call(Method::GET, "/v1/models", None).await.0, 401);

        // Revoked: the very next request is refused.
        let (status, _) = owner.post_empty(&format!("/api/apps/{app}/api-keys/{key_id}/delete")).await;
        assert_eq!(status, 200);
        let (status, body) = service.call(Method::GET, "/v1/models", None).await;
        assert_eq!((status, body["code"].as_str().unwrap()), (401, "unauthorized"), "{body}");
        assert_eq!(owner.post_empty(&format!("/api/apps/{app}/api-keys/{key_id}/delete")).await.0, 404);
        assert_eq!(owner.get(&format!("/api/apps/{app}/api-keys")).await.1["data"]["list"], json!([]));
    }
}

both_deployments! {
    options = |o| o.mock_llm();
    /// End users get the published config only: a draft change reaches them once published.
    async fn service_chat_answers_with_the_published_config_only(stack: Stack) {
        let llm = stack.llm();
        let owner = User::sign_up(&stack).await;
        let app = owner.create_app("Unpublished").await;
        let (_, key) = owner.post_empty(&format!("/api/apps/{app}/api-keys")).await;
        let service = Service { stack: &stack, key: key["data"]["key"].as_str().unwrap().to_owned() };
        let (status, body) = service.chat(json!({"query": "hi", "user": "u1"})).await;
        assert_eq!((status, body["code"].as_str().unwrap()), (400, "app_unavailable"), "{body}");

        owner.configure(&app, json!({"preset_prompt": "Published prompt.", "dialog_round": 2}), "none").await;
        owner.post_empty(&format!("/api/apps/{app}/publish")).await;
        owner.configure(&app, json!({"preset_prompt": "Draft prompt."}), "none").await;

        let answer = service.ask("u1", "你好", None).await;
        let request = chat_requests(llm).last().cloned().unwrap();
        assert_eq!(roles(&request), ["system:Published prompt.", "user:你好"]);
        assert_eq!(answer["event"], "message");
        assert_eq!(answer["mode"], "chat");
        assert_eq!(answer["answer"], json!(crate::helpers::mock_llm::mock_sentence(&request)));
        assert_eq!(answer["message_id"], answer["id"]);
        let usage = &answer["metadata"]["usage"];
        assert_eq!(usage["prompt_tokens"], 10, "{answer}");
        assert_eq!(usage["total_tokens"], usage["prompt_tokens"].as_i64().unwrap() + usage["completion_tokens"].as_i64().unwrap());
        assert!(usage["latency"].as_f64().unwrap() > 0.0, "{usage}");
        assert!(answer["created_at"].is_i64());

        // The conversation goes on with its own history (dialog_round 2).
        let conversation = answer["conversation_id"].as_str().unwrap().to_owned();
        let second = service.ask("u1", "again", Some(&conversation)).await;
        assert_eq!(second["conversation_id"], conversation.as_str());
        let request = chat_requests(llm).last().cloned().unwrap();
        assert_eq!(roles(&request)[1], "user:你好");
        assert_eq!(roles(&request).len(), 4, "system, one round, the query");

        // Publishing the draft changes what end users get.
        owner.post_empty(&format!("/api/apps/{app}/publish")).await;
        service.ask("u2", "now?", None).await;
        let request = chat_requests(llm).last().cloned().unwrap();
        assert_eq!(roles(&request)[0], "system:Draft prompt.");

        // Another user cannot continue u1's conversation; bad ids and bodies are named.
        let (status, body) = service.chat(json!({"query": "x", "user": "u2", "conversation_id": conversation})).await;
        assert_eq!((status, body["code"].as_str().unwrap()), (404, "not_found"), "{body}");
        let (status, body) = service.chat(json!({"query": "x", "user": "u1", "conversation_id": "nope"})).await;
        assert_eq!(status, 404, "{body}");
        for (bad, field) in [
            (json!({"user": "u1"}), "query"),
            (json!({"query": "x"}), "user"),
            (json!({"query": "x", "user": "u1", "response_mode": "sometimes"}), "response_mode"),
            (json!({"query": "x".repeat(2001), "user": "u1"}), "query"),
        ] {
            let (status, body) = service.chat(bad.clone()).await;
            assert_eq!((status, body["code"].as_str().unwrap()), (422, "invalid_param"), "{bad}: {body}");
            assert!(body["message"].as_str().unwrap().contains(field), "{bad}: {body}");
        }
        let r = stack.client.post(stack.url("/v1/chat-messages")).bearer_auth(&service.key)
            .header("content-type", "application/json").body("{not json").send().await.unwrap();
        assert_eq!(r.status(), 400);
        let body: Value = r.json().await.unwrap();
        assert_dify_error(400, &body);
        assert_eq!(body["code"], "invalid_param");

        // Withdrawn: unavailable again.
        owner.post_empty(&format!("/api/apps/{app}/cancel-publish")).await;
        let (status, body) = service.chat(json!({"query": "hi", "user": "u1"})).await;
        assert_eq!((status, body["code"].as_str().unwrap()), (400, "app_unavailable"), "{body}");

        // A provider failure is Dify's completion_request_error.
        owner.configure(&app, json!({"model": "status-500"}), "none").await;
        owner.post_empty(&format!("/api/apps/{app}/publish")).await;
        let (status, body) = service.chat(json!({"query": "hi", "user": "u1"})).await;
        assert_eq!((status, body["code"].as_str().unwrap()), (400, "completion_request_error"), "{body}");
    }
}

both_deployments! {
    options = |o| o.mock_llm();
    /// Streaming sends `message` deltas that add up to the answer, then `message_end` with usage.
    async fn streaming_sends_message_deltas_then_message_end_with_usage(stack: Stack) {
        let llm = stack.llm();
        llm.set_chunk_delay(Duration::from_millis(2));
        let (_, _, service) = published_app(&stack, json!({}), "none").await;
        let r = stack.client.post(stack.url("/v1/chat-messages")).bearer_auth(&service.key)
            .json(&json!({"query": "stream me", "user": "s1", "response_mode": "streaming"}))
            .send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        let events = Events::new(r).all().await;
        let (last_name, end) = events.last().unwrap();
        assert_eq!(last_name, "message", "Dify's events are data-only");
        assert_eq!(end["event"], "message_end", "{events:?}");
        let deltas: Vec<&Value> = events[..events.len() - 1].iter().map(|(_, d)| d).collect();
        assert!(!deltas.is_empty());
        let mut answer = String::new();
        for d in &deltas {
            assert_eq!(d["event"], "message", "{d}");
            assert_eq!(d["message_id"], end["message_id"]);
            assert_eq!(d["conversation_id"], end["conversation_id"]);
            answer.push_str(d["answer"].as_str().unwrap());
        }
        let request = chat_requests(llm).last().cloned().unwrap();
        assert_eq!(answer, crate::helpers::mock_llm::mock_sentence(&request));
        assert_eq!(end["metadata"]["usage"]["prompt_tokens"], 10, "{end}");
        assert!(end["metadata"]["usage"]["completion_tokens"].as_i64().unwrap() > 0);

        // The stored message is the streamed one.
        let conversation = end["conversation_id"].as_str().unwrap();
        let (status, page) = service.call(Method::GET, &format!("/v1/messages?conversation_id={conversation}&user=s1"), None).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["data"][0]["answer"], json!(answer));
        assert_eq!(page["data"][0]["status"], "normal");
    }
}

both_deployments! {
    options = |o| o.mock_llm();
    /// Stop keeps the partial answer; feedback is recorded; paging goes back in time; a
    /// deleted conversation is gone for its user and untouchable for others.
    async fn stop_feedback_paging_and_deleting_conversations(stack: Stack) {
        let (owner, app, service) = published_app(&stack, json!({"model": "slow-stream"}), "none").await;
        let r = stack.client.post(stack.url("/v1/chat-messages")).bearer_auth(&service.key)
            .json(&json!({"query": "long", "user": "s1", "response_mode": "streaming"}))
            .send().await.unwrap();
        let mut events = Events::new(r);
        let (_, first) = events.next().await.unwrap();
        assert_eq!(first["event"], "message", "{first}");
        let id = first["message_id"].as_str().unwrap().to_owned();
        let conversation = first["conversation_id"].as_str().unwrap().to_owned();
        // Only the asker may stop it.
        let (status, _) = service.call(Method::POST, &format!("/v1/chat-messages/{id}/stop"), Some(json!({"user": "other"}))).await;
        assert_eq!(status, 404);
        let (status, body) = service.call(Method::POST, &format!("/v1/chat-messages/{id}/stop"), Some(json!({"user": "s1"}))).await;
        assert_eq!((status, &body), (200, &json!({"result": "success"})));
        let mut rest = Vec::new();
        while let Some((_, e)) = events.next().await {
            rest.push(e);
        }
        let end = rest.last().unwrap();
        assert_eq!(end["event"], "message_end", "{end}");
        let (_, page) = service.call(Method::GET, &format!("/v1/messages?conversation_id={conversation}&user=s1"), None).await;
        let stopped = &page["data"][0];
        assert_eq!(stopped["status"], "stopped", "{page}");
        let partial = stopped["answer"].as_str().unwrap();
        assert!(!partial.is_empty() && partial.split_whitespace().count() < 500, "a partial answer: {partial}");
        assert_eq!(service.call(Method::POST, "/v1/chat-messages/nope/stop", Some(json!({"user": "s1"}))).await.0, 404);

        // Feedback: like, listed; null withdraws; bad ratings and other users refused.
        owner.configure(&app, json!({}), "none").await;
        owner.post_empty(&format!("/api/apps/{app}/publish")).await;
        let path = format!("/v1/messages/{id}/feedbacks");
        assert_eq!(service.call(Method::POST, &path, Some(json!({"rating": "like", "user": "s1"}))).await, (200, json!({"result": "success"})));
        let (_, page) = service.call(Method::GET, &format!("/v1/messages?conversation_id={conversation}&user=s1"), None).await;
        assert_eq!(page["data"][0]["feedback"], json!({"rating": "like"}));
        assert_eq!(service.call(Method::POST, &path, Some(json!({"rating": "meh", "user": "s1"}))).await.0, 422);
        assert_eq!(service.call(Method::POST, &path, Some(json!({"rating": "like", "user": "s2"}))).await.0, 404);
        assert_eq!(service.call(Method::POST, &path, Some(json!({"rating": null, "user": "s1"}))).await.0, 200);
        let (_, page) = service.call(Method::GET, &format!("/v1/messages?conversation_id={conversation}&user=s1"), None).await;
        assert_eq!(page["data"][0]["feedback"], Value::Null);

        // Paging: five messages, two at a time, oldest first within a page.
        for i in 1..=4 {
            service.ask("s1", &format!("q{i}"), Some(&conversation)).await;
        }
        let mut seen = Vec::new();
        let mut first_id: Option<String> = None;
        loop {
            let cursor = first_id.as_ref().map(|f| format!("&first_id={f}")).unwrap_or_default();
            let (status, page) = service.call(Method::GET, &format!("/v1/messages?conversation_id={conversation}&user=s1&limit=2{cursor}"), None).await;
            assert_eq!(status, 200, "{page}");
            let data = page["data"].as_array().unwrap();
            let mut queries: Vec<String> = data.iter().map(|m| m["query"].as_str().unwrap().to_owned()).collect();
            queries.extend(seen);
            seen = queries;
            first_id = data.first().map(|m| m["id"].as_str().unwrap().to_owned());
            if !page["has_more"].as_bool().unwrap() {
                break;
            }
        }
        assert_eq!(seen, ["long", "q1", "q2", "q3", "q4"]);
        assert_eq!(service.call(Method::GET, &format!("/v1/messages?conversation_id={conversation}&user=s1&limit=0"), None).await.0, 422);
        assert_eq!(service.call(Method::GET, &format!("/v1/messages?conversation_id={conversation}&user=s2"), None).await.0, 404);
        assert_eq!(service.call(Method::GET, "/v1/messages?user=s1", None).await.0, 422);

        // Conversations: listed per user, paged by last_id; delete is the owner-user's only.
        service.ask("s1", "another", None).await;
        let (_, list) = service.call(Method::GET, "/v1/conversations?user=s1&limit=1", None).await;
        assert_eq!(list["data"].as_array().unwrap().len(), 1);
        assert_eq!(list["has_more"], true);
        assert_eq!(list["data"][0]["name"], "another");
        let last = list["data"][0]["id"].as_str().unwrap();
        let (_, list) = service.call(Method::GET, &format!("/v1/conversations?user=s1&last_id={last}"), None).await;
        assert_eq!(list["data"][0]["id"], conversation.as_str());
        assert_eq!(list["has_more"], false);
        assert_eq!(service.call(Method::GET, "/v1/conversations?user=nobody", None).await.1["data"], json!([]));
        assert_eq!(service.call(Method::GET, "/v1/conversations", None).await.0, 422);
        let delete = format!("/v1/conversations/{conversation}");
        assert_eq!(service.call(Method::DELETE, &delete, Some(json!({"user": "s2"}))).await.0, 404);
        assert_eq!(service.call(Method::DELETE, &delete, Some(json!({"user": "s1"}))).await, (200, json!({"result": "success"})));
        assert_eq!(service.call(Method::DELETE, &delete, Some(json!({"user": "s1"}))).await.0, 404);
        assert_eq!(service.call(Method::GET, &format!("/v1/messages?conversation_id={conversation}&user=s1"), None).await.0, 404);
        let (status, _) = service.chat(json!({"query": "x", "user": "s1", "conversation_id": conversation})).await;
        assert_eq!(status, 404);
    }
}

both_deployments! {
    options = |o| o.mock_llm().workers(2);
    /// Fifty end users at once: each gets its own conversation, and each second question
    /// carries that user's first round and nobody else's.
    async fn fifty_concurrent_end_users_keep_their_conversations_apart(stack: Stack) {
        let llm = stack.llm();
        llm.set_latency(Duration::from_millis(20));
        let (_, _, service) = published_app(&stack, json!({"dialog_round": 5}), "none").await;
        let key = service.key.clone();
        let runs = (0..50).map(|i| {
            let (client, url, key) = (stack.client.clone(), stack.url("/v1/chat-messages"), key.clone());
            tokio::spawn(async move {
                let user = format!("user-{i}");
                let post = |body: Value| client.post(url.clone()).bearer_auth(key.clone()).json(&body).send();
                let first: Value = post(json!({"query": format!("I am {user}"), "user": user})).await.unwrap().json().await.unwrap();
                let conversation = first["conversation_id"].as_str().unwrap_or_else(|| panic!("{first}")).to_owned();
                let second: Value = post(json!({"query": format!("who am I, {user}?"), "user": user, "conversation_id": conversation})).await.unwrap().json().await.unwrap();
                assert_eq!(second["conversation_id"], conversation.as_str(), "{second}");
                (user, conversation)
            })
        });
        let results: Vec<(String, String)> = futures::future::join_all(runs).await.into_iter().map(Result::unwrap).collect();
        let conversations: std::collections::BTreeSet<&str> = results.iter().map(|(_, c)| c.as_str()).collect();
        assert_eq!(conversations.len(), 50, "one conversation per user");
        let requests = chat_requests(llm);
        assert_eq!(requests.len(), 100);
        for (user, conversation) in &results {
            let second = requests.iter().find(|r| roles(r).last().unwrap() == &format!("user:who am I, {user}?")).unwrap();
            let sent = roles(second);
            assert_eq!(sent.len(), 3, "{sent:?}");
            assert_eq!(sent[0], format!("user:I am {user}"), "only this user's round");
            assert!(sent[1].starts_with("assistant:"), "{sent:?}");
            let (_, list) = service.call(Method::GET, &format!("/v1/conversations?user={user}"), None).await;
            assert_eq!(list["data"].as_array().unwrap().len(), 1);
            assert_eq!(list["data"][0]["id"], conversation.as_str());
            let (_, page) = service.call(Method::GET, &format!("/v1/messages?conversation_id={conversation}&user={user}"), None).await;
            assert_eq!(page["data"].as_array().unwrap().len(), 2);
        }
    }
}

both_deployments! {
    options = |o| o.mock_llm().env("LLMOPS_SERVICE_RATE_LIMIT", "3");
    /// A key over its per-minute limit is answered 429 with Retry-After; other keys are not.
    async fn a_key_over_its_rate_limit_is_answered_429(stack: Stack) {
        let (owner, app, service) = published_app(&stack, json!({}), "none").await;
        for _ in 0..3 {
            assert_eq!(service.call(Method::GET, "/v1/models", None).await.0, 200);
        }
        let r = stack.client.get(stack.url("/v1/models")).bearer_auth(&service.key).send().await.unwrap();
        assert_eq!(r.status(), 429);
        let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        let body: Value = r.json().await.unwrap();
        assert_dify_error(429, &body);
        assert_eq!(body["code"], "too_many_requests");
        let (_, other) = owner.post_empty(&format!("/api/apps/{app}/api-keys")).await;
        let other = Service { stack: &stack, key: other["data"]["key"].as_str().unwrap().to_owned() };
        assert_eq!(other.call(Method::GET, "/v1/models", None).await.0, 200);
    }
}

/// The `data:` payloads of an event stream, in order.
pub(crate) fn data_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.trim().to_owned())
        .collect()
}

both_deployments! {
    options = |o| o.mock_llm();
    /// `/v1/chat/completions`: the published config answers, the request's messages give the
    /// query and the history, usage is filled; streaming is OpenAI's chunks ending in [DONE].
    async fn the_openai_compatible_endpoint_answers_with_the_published_config(stack: Stack) {
        let llm = stack.llm();
        let (_, _, service) = published_app(&stack, json!({"preset_prompt": "App prompt.", "dialog_round": 1, "temperature": 0.2}), "none").await;
        let body = json!({
            "model": "whatever",
            "temperature": 1.5,
            "messages": [
                {"role": "system", "content": "client prompt"},
                {"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
                {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"},
                {"role": "user", "content": "q3"},
            ],
        });
        let (status, completion) = service.call(Method::POST, "/v1/chat/completions", Some(body.clone())).await;
        assert_eq!(status, 200, "{completion}");
        let request = chat_requests(llm).last().cloned().unwrap();
        assert_eq!(roles(&request), ["system:App prompt.", "user:q2", "assistant:a2", "user:q3"], "dialog_round 1");
        assert_eq!(request["model"], MOCK_MODEL);
        assert_eq!(request["temperature"], 0.2);
        assert_eq!(completion["object"], "chat.completion");
        assert_eq!(completion["model"], MOCK_MODEL);
        assert!(completion["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_eq!(completion["choices"][0]["message"]["role"], "assistant");
        assert_eq!(completion["choices"][0]["message"]["content"], json!(crate::helpers::mock_llm::mock_sentence(&request)));
        assert_eq!(completion["choices"][0]["finish_reason"], "stop");
        assert_eq!(completion["usage"]["prompt_tokens"], 10);
        assert!(completion["usage"]["total_tokens"].as_i64().unwrap() > 10);

        let mut streamed = body.clone();
        streamed["stream"] = json!(true);
        let r = stack.client.post(stack.url("/v1/chat/completions")).bearer_auth(&service.key).json(&streamed).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let lines = data_lines(&r.text().await.unwrap());
        assert_eq!(lines.last().unwrap(), "[DONE]");
        let chunks: Vec<Value> = lines[..lines.len() - 1].iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, crate::helpers::mock_llm::mock_sentence(&chat_requests(llm).last().cloned().unwrap()));
        let last = chunks.last().unwrap();
        assert_eq!(last["object"], "chat.completion.chunk");
        assert_eq!(last["choices"][0]["finish_reason"], "stop");
        assert_eq!(last["usage"]["prompt_tokens"], 10, "{last}");

        for bad in [json!({"messages": []}), json!({}), json!({"messages": [{"role": "assistant", "content": "x"}]})] {
            let (status, body) = service.call(Method::POST, "/v1/chat/completions", Some(bad.clone())).await;
            assert_eq!((status, body["code"].as_str().unwrap()), (422, "invalid_param"), "{bad}: {body}");
            assert!(body["message"].as_str().unwrap().contains("messages"), "{body}");
        }
    }
}

both_deployments! {
    options = |o| o.mock_llm();
    /// Long-term memory is kept per conversation: the summary of one end user's conversation
    /// reaches its next round, and no other conversation (of another user, or a new one).
    async fn long_term_memory_is_kept_per_conversation(stack: Stack) {
        let llm = stack.llm();
        let (_, _, service) = published_app(&stack, json!({"preset_prompt": "P."}), "long_term_memory").await;
        let first = service.ask("u1", "I am Ada", None).await;
        let requests = llm.requests();
        assert_eq!(requests.len(), 2, "the chat, then the summarising call");
        let summary = crate::helpers::mock_llm::mock_sentence(&requests[1]);
        let conversation = first["conversation_id"].as_str().unwrap();

        service.ask("u1", "who am I?", Some(conversation)).await;
        let system = roles(chat_requests(llm).last().unwrap())[0].clone();
        assert!(system.starts_with("system:P.") && system.contains(&summary), "{system}");

        for (user, query) in [("u2", "hello"), ("u1", "a new conversation")] {
            service.ask(user, query, None).await;
            let sent = roles(chat_requests(llm).last().unwrap());
            assert_eq!(sent, ["system:P.".to_owned(), format!("user:{query}")], "no one else's memory");
        }
    }
}

both_deployments! {
    /// With no provider configured, a service chat answers `provider_not_initialize` naming
    /// the setting, and the question is kept in the user's conversation.
    async fn an_unconfigured_provider_is_provider_not_initialize(stack: Stack) {
        let (_, _, service) = published_app(&stack, json!({}), "none").await;
        let (status, body) = service.chat(json!({"query": "anyone?", "user": "u1"})).await;
        assert_eq!((status, body["code"].as_str().unwrap()), (400, "provider_not_initialize"), "{body}");
        assert!(body["message"].as_str().unwrap().contains("LLMOPS_LLM_BASE_URL"), "{body}");
        let (_, list) = service.call(Method::GET, "/v1/conversations?user=u1", None).await;
        let conversation = list["data"][0]["id"].as_str().unwrap();
        let (_, page) = service.call(Method::GET, &format!("/v1/messages?conversation_id={conversation}&user=u1"), None).await;
        assert_eq!(page["data"][0]["status"], "error", "{page}");
        assert_eq!(page["data"][0]["query"], "anyone?");
    }
}

both_deployments! {
    /// Swagger documents every service route and the key routes under the `service` tag.
    async fn every_service_route_is_in_swagger_under_its_tag(stack: Stack) {
        let spec: Value = stack.get_json("/api/openapi.json").await;
        for (path, method) in [
            ("/v1/chat-messages", "post"),
            ("/v1/chat-messages/{message_id}/stop", "post"),
            ("/v1/conversations", "get"),
            ("/v1/conversations/{conversation_id}", "delete"),
            ("/v1/messages", "get"),
            ("/v1/messages/{message_id}/feedbacks", "post"),
            ("/v1/chat/completions", "post"),
            ("/v1/models", "get"),
            ("/api/apps/{app_id}/api-keys", "post"),
            ("/api/apps/{app_id}/api-keys", "get"),
            ("/api/apps/{app_id}/api-keys/{key_id}/delete", "post"),
        ] {
            let operation = &spec["paths"][path][method];
            assert_eq!(operation["tags"], json!(["service"]), "{method} {path}: {operation}");
        }
        assert!(spec["components"]["securitySchemes"]["app_key"].is_object());
        assert!(spec["tags"].as_array().unwrap().iter().any(|t| t["name"] == "service"));
    }
}
