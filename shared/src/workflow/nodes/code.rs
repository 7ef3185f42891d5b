//! `code`: JavaScript `main({params})`, sync or async, in the QuickJS sandbox (spec 2.4,
//! decision 8). The script runs on a blocking thread; dropping this node's future (cancel, or a
//! failure elsewhere in the run) interrupts it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::workflow::executor::{NodeContext, NodeExecutor, NodeOutput};
use crate::workflow::js;
use crate::workflow::node_error::NodeError;
use crate::workflow::sandbox::{self, ScriptError, ScriptLimits};

pub struct CodeExecutor;

/// Sets the script's interrupt flag when the node's future goes away.
struct InterruptOnDrop(Arc<AtomicBool>);

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[async_trait]
impl NodeExecutor for CodeExecutor {
    async fn execute(&self, ctx: NodeContext<'_>) -> Result<NodeOutput, NodeError> {
        let script = ctx.data().get("script");
        let content = script.and_then(|s| s.get("content"));
        if !js::is_truthy(content) {
            return Err("Code content is required".into());
        }
        let language = script.and_then(|s| s.get("language"));
        if language.and_then(Value::as_str) != Some("javascript") {
            return Err(format!(
                "Unsupported code language \"{}\"",
                js::to_js_string(language)
            )
            .into());
        }
        let content = js::to_js_string(content).into_owned();
        let params = js::json_stringify(Some(&Value::Object(ctx.inputs().clone())));
        let config = ctx.config();
        let limits = ScriptLimits {
            timeout: config.code_timeout,
            memory_bytes: config.code_memory_bytes,
            stack_bytes: config.code_stack_bytes,
            result_bytes: config.max_node_output_bytes,
        };
        let interrupt = Arc::new(AtomicBool::new(false));
        let _guard = InterruptOnDrop(interrupt.clone());
        let result = tokio::task::spawn_blocking(move || {
            sandbox::run_main(&content, &params, limits, interrupt)
        })
        .await
        .map_err(|_| NodeError::new("Code execution failed: the script runner crashed"))?;
        let value = result.map_err(|e| match e {
            // The engine's own message for an output over the cap.
            ScriptError::ResultTooLarge(_) => NodeError::new(e.to_string()),
            e => NodeError::new(format!("Code execution failed: {e}")),
        })?;
        // A plain object becomes the outputs; anything else is wrapped as `{result}`.
        Ok(NodeOutput::new(match value {
            Some(Value::Object(map)) => map,
            Some(other) => {
                let mut map = Map::new();
                map.insert("result".into(), other);
                map
            }
            None => Map::new(),
        }))
    }
}
