//! `end`: its parsed inputs are both its outputs and the workflow result (spec 2).

use async_trait::async_trait;

use crate::workflow::executor::{NodeContext, NodeExecutor, NodeOutput};
use crate::workflow::node_error::NodeError;

pub struct EndExecutor;

#[async_trait]
impl NodeExecutor for EndExecutor {
    async fn execute(&self, ctx: NodeContext<'_>) -> Result<NodeOutput, NodeError> {
        let outputs = ctx.inputs().clone();
        ctx.set_workflow_outputs(outputs.clone());
        Ok(NodeOutput::new(outputs))
    }
}
