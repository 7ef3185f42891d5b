//! The official `openai` Python package (installed by `.ci/run`) as a real client of
//! `/v1/chat/completions`, blocking and streaming. Without the package the test skips loudly,
//! or fails with `LLMOPS_REQUIRE_SERVICES=1`.

use serde_json::{Value, json};

use super::published_app;
use crate::{
    apps::chat_requests,
    helpers::{both_deployments, mock_llm::mock_sentence, skip},
};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/api/service/openai_client.py");

/// The Python to run: `LLMOPS_PYTHON`, else `python3`.
fn python() -> String {
    std::env::var("LLMOPS_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn has_openai() -> bool {
    std::process::Command::new(python())
        .args(["-c", "import openai"])
        .output()
        .is_ok_and(|o| o.status.success())
}

both_deployments! {
    options = |o| o.mock_llm();
    /// The `openai` package gets the published app's answer, blocking and streamed, with usage;
    /// it lists the app as a model and raises AuthenticationError for a wrong key.
    async fn the_openai_python_package_talks_to_the_app(stack: Stack) {
        if !has_openai() {
            skip("the `openai` Python package is not installed (python3 -m pip install openai)");
            return;
        }
        let (_, app, service) = published_app(&stack, json!({}), "none").await;
        let output = tokio::process::Command::new(python())
            .arg(SCRIPT)
            .env("LLMOPS_BASE_URL", stack.url("/v1"))
            .env("LLMOPS_APP_KEY", &service.key)
            .env("OPENAI_MAX_RETRIES", "0")
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        let seen: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| panic!("{stdout}"));
        let requests = chat_requests(stack.llm());
        assert_eq!(requests.len(), 2, "the wrong key never reached the provider");
        let expected = mock_sentence(&requests[0]);
        assert_eq!(seen["content"], json!(expected), "{seen}");
        assert_eq!(seen["streamed"], json!(mock_sentence(&requests[1])), "{seen}");
        assert_eq!(seen["usage_prompt"], 10, "{seen}");
        assert!(seen["usage_total"].as_i64().unwrap() > 10, "{seen}");
        assert_eq!(seen["stream_finish"], "stop", "{seen}");
        assert_eq!(seen["stream_usage_total"], seen["usage_total"], "{seen}");
        assert_eq!(seen["models"], json!([app]), "{seen}");
        assert_eq!(seen["wrong_key_status"], 401, "{seen}");
    }
}
