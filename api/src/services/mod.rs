//! What the routes stand on beyond the store and the queues: the group-committed task
//! submission, the cache of recent task outcomes that answers long polls, and the chat
//! submission and relay every chat route shares, and the shared readers of streamed tasks.

pub mod chat;
pub mod recent_tasks;
pub mod task_feeds;
pub mod task_submission;

pub use recent_tasks::RecentTasks;
pub use task_submission::{TaskSubmitter, submitter};
