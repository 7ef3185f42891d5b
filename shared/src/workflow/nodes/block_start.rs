//! `block-start`: the entry of a loop body; does nothing itself.

use async_trait::async_trait;

use crate::workflow::executor::{NodeContext, NodeExecutor, NodeOutput};
use crate::workflow::node_error::NodeError;

pub struct BlockStartExecutor;

#[async_trait]
impl NodeExecutor for BlockStartExecutor {
    async fn execute(&self, _ctx: NodeContext<'_>) -> Result<NodeOutput, NodeError> {
        Ok(NodeOutput::empty())
    }
}
