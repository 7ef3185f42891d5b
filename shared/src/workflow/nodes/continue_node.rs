//! `continue`: drops the current iteration's loop outputs (`cache['loop-continue']`).

use async_trait::async_trait;

use crate::workflow::executor::{NodeContext, NodeExecutor, NodeOutput};
use crate::workflow::node_error::NodeError;

pub struct ContinueExecutor;

#[async_trait]
impl NodeExecutor for ContinueExecutor {
    async fn execute(&self, ctx: NodeContext<'_>) -> Result<NodeOutput, NodeError> {
        ctx.scope().request_continue();
        Ok(NodeOutput::empty())
    }
}
