//! `block-end`: the exit of a loop body; a terminating node that does nothing itself.

use async_trait::async_trait;

use crate::workflow::executor::{NodeContext, NodeExecutor, NodeOutput};
use crate::workflow::node_error::NodeError;

pub struct BlockEndExecutor;

#[async_trait]
impl NodeExecutor for BlockEndExecutor {
    async fn execute(&self, _ctx: NodeContext<'_>) -> Result<NodeOutput, NodeError> {
        Ok(NodeOutput::empty())
    }
}
