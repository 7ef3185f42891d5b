//! The FlowGram workflow engine (`shared/spec/flowgram-runtime.md`): schema parsing and
//! validation, values and types, execution, and the node executors.
//!
//! It takes a schema, inputs, a cancellation token and a report sink, and knows nothing of HTTP
//! servers, queues or databases.
//!
//! ```no_run
//! # async fn demo(schema_json: &str) -> Result<(), Vec<String>> {
//! use std::sync::Arc;
//! use shared::workflow::{Engine, EngineConfig, ReportHandle, parse_schema, validate_inputs};
//!
//! let schema = Arc::new(parse_schema(schema_json)?);
//! let inputs = serde_json::Map::new();
//! validate_inputs(&schema, &inputs)?;
//! let report = ReportHandle::new("task-id", inputs.clone());
//! let engine = Engine::new(EngineConfig::default());
//! let outcome = engine
//!     .run(schema, inputs, tokio_util::sync::CancellationToken::new(), report.clone())
//!     .await;
//! println!("{:?} {:?}", outcome.status, report.snapshot().outputs);
//! # Ok(())
//! # }
//! ```

pub mod egress;
mod engine;
mod engine_config;
pub mod events;
mod executor;
mod input_validation;
pub mod js;
mod limits;
pub mod live;
mod node_error;
pub mod nodes;
mod registry;
mod report;
mod sandbox;
mod schema;
mod schema_cache;
mod scope;
pub mod single_node;
pub mod types;
mod validation;
pub mod value;

pub use engine::{Engine, RunOutcome, validate_inputs};
pub use engine_config::EngineConfig;
pub use executor::{BlockFailed, NodeContext, NodeExecutor, NodeHandle, NodeOutput, TokenStream};
pub use node_error::NodeError;
pub use registry::NodeRegistry;
pub use report::{
    EventRef, Message, MessageType, Messages, NodeReport, Report, ReportHandle, Snapshot,
    StatusData, WorkflowStatus, now_ms,
};
pub use schema::{WorkflowSchema, parse_schema};
pub use schema_cache::parse_schema_cached;
pub use scope::{Scope, Variable};
pub use types::VarType;
pub use value::{FlowValue, Resolved, Template};

/// Render a template string against `variables` (`nodeID -> {key: value}`), outside a run.
///
/// For tests and fuzzing of the template grammar; runs render through [`Scope`].
pub fn render_template(
    template: &str,
    variables: &serde_json::Map<String, serde_json::Value>,
) -> String {
    let scope = Scope::root(0);
    for (node_id, keys) in variables {
        for (key, value) in keys.as_object().into_iter().flatten() {
            scope.set_variable(
                node_id,
                key,
                Variable {
                    value: Some(value.clone()),
                    ty: Some(VarType::infer(Some(value))),
                    items_ty: None,
                },
            );
        }
    }
    scope.render_template(&Template::parse(template))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn render_template_resolves_refs_and_paths_against_the_given_variables() {
        let variables = json!({"start_0": {"work": {"role": "Chat", "n": [1.5, 2]}, "flag": true}});
        let out = super::render_template(
            "<{{start_0.work.role}}> {{start_0.work.n}} {{start_0.work.n.0}} {{start_0.flag}} [{{missing.x}}]",
            variables.as_object().unwrap(),
        );
        assert_eq!(out, "<Chat> 1.5,2 1.5 true []");
    }
}
