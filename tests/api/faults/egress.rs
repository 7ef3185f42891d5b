//! The llm node's `apiHost` is held to the egress policy like the http node's URL: with
//! `LLMOPS_HTTP_ALLOW_PRIVATE=false`, a node pointing at the mock LLM on loopback (by address
//! or by name) fails with the policy's refusal and the mock receives no request, while debug
//! chats still reach the operator's own provider (`LLMOPS_LLM_BASE_URL`), which is trusted.
//!
//! Only loopback is ever addressed here: a regression must not send anything elsewhere. The
//! refusal of private, link-local and metadata destinations is unit-tested on the check
//! itself (`shared::workflow::egress`), which never connects.

use crate::helpers::both_deployments;
use reqwest::Method;
use serde_json::{Value, json};

use super::bad_values::Caller;
use super::common::{errors, finished};
use crate::helpers::runs::run;

both_deployments! {
    options = |o| o.mock_llm().env("LLMOPS_HTTP_ALLOW_PRIVATE", "false");
    async fn llm_node_to_loopback_is_refused(stack: Stack) {
        let llm = stack.llm();
        let template = include_str!("../../../loadgen/schemas/start-llm-end.json");
        let by_name = llm.base_url.replace("127.0.0.1", "localhost");
        for host in [llm.base_url.as_str(), by_name.as_str()] {
            let schema: Value = serde_json::from_str(&template.replace("{{MOCK_LLM}}", host)).unwrap();
            let id = run(&stack, &schema, json!({"prompt": "hi"})).await;
            let (result, report) = finished(&stack, &id).await;
            assert_eq!(
                report["workflowStatus"]["status"], "failed",
                "{host}: {report}"
            );
            assert_eq!(result, json!({}), "{host}");
            let error = report["reports"]["llm_0"]["snapshots"][0]["error"]
                .as_str()
                .unwrap_or_else(|| panic!("{host}: no llm error: {:?}", errors(&report)))
                .to_owned();
            assert!(
                error.starts_with("LLM apiHost refused by the egress policy")
                    && error.contains("loopback")
                    && error.contains("http_allow_private"),
                "{host}: {error}"
            );
        }
        assert!(
            llm.requests().is_empty(),
            "the mock LLM was called: {:?}",
            llm.requests()
        );

        // The operator's provider, on loopback too, still answers debug chats.
        let caller = Caller::sign_up(&stack).await;
        let app = caller.create_app("trusted provider").await;
        let debug = format!("/api/apps/{app}/debug");
        let (status, body) = caller
            .call(Method::POST, &debug, Some(json!({"query": "hi"})))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(llm.requests().len(), 1);
    }
}
