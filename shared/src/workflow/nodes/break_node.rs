//! `break`: ends the enclosing loop after the current iteration (`cache['loop-break']`).

use async_trait::async_trait;

use crate::workflow::executor::{NodeContext, NodeExecutor, NodeOutput};
use crate::workflow::node_error::NodeError;

pub struct BreakExecutor;

#[async_trait]
impl NodeExecutor for BreakExecutor {
    async fn execute(&self, ctx: NodeContext<'_>) -> Result<NodeOutput, NodeError> {
        ctx.scope().request_break();
        Ok(NodeOutput::empty())
    }
}
