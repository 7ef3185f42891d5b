//! `start`: outputs the raw task inputs, undeclared keys included (spec 2).

use async_trait::async_trait;

use crate::workflow::executor::{NodeContext, NodeExecutor, NodeOutput};
use crate::workflow::node_error::NodeError;

pub struct StartExecutor;

#[async_trait]
impl NodeExecutor for StartExecutor {
    async fn execute(&self, ctx: NodeContext<'_>) -> Result<NodeOutput, NodeError> {
        Ok(NodeOutput::new(ctx.task_inputs().clone()))
    }
}
