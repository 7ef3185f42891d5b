//! What the routes stand on beyond the store and the queues: the group-committed task
//! submission, the cache of recent task outcomes that answers polls, the cache of reports
//! read by many pollers, the chat submission and relay every chat route shares, and the
//! shared readers of streamed tasks.

pub mod chat;
pub mod recent_tasks;
pub mod report_cache;
pub mod task_feeds;
pub mod task_submission;

pub use recent_tasks::RecentTasks;
pub use report_cache::ReportCache;
pub use task_submission::{TaskSubmitter, submitter};
