//! Recently read task reports, serialized, so that many clients polling one report (the
//! FlowGram editor asks every 500 ms while a run is open) cost one store read per
//! [`REFRESH_EVERY`] instead of one per request.
//!
//! A running task's report changes only when its worker writes progress, at most every
//! [`PROGRESS_EVERY`]; an entry younger than that is served as is, so a poller sees a report at
//! most one flush older than the store's. A task's outcome removes its entry (before the
//! outcome is recorded anywhere a client could see it, see `AppState::new`), so the first
//! read after a task ends is the store's final report. A terminal report never changes; it is
//! served for [`KEEP_FINISHED`] after each read, so a task deleted by retention stops being
//! served soon after. Entries carry the owner, checked at every hit.
//!
//! An entry also keeps its gzip form, made by the first request that asks for it: a browser
//! asks for gzip, and compressing the same report for every poller cost more than the rest of
//! the request (`docs/benchmarks.md`, session 8).

use std::{
    io::Write,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use axum::body::Bytes;
use quick_cache::{Weighter, sync::Cache};
use shared::store::tasks::{PROGRESS_EVERY, TaskStatus};
use uuid::Uuid;

/// How long a running task's report is served from memory: one progress write.
pub const REFRESH_EVERY: Duration = PROGRESS_EVERY;
/// How long a finished task's report is served from memory.
pub const KEEP_FINISHED: Duration = Duration::from_secs(60);
/// Weight (about bytes) of the reports kept per process.
const CAPACITY: u64 = 64 << 20;

#[derive(Clone)]
pub struct CachedReport {
    pub owner: Option<Uuid>,
    /// The report, serialized as it is answered.
    pub body: Bytes,
    /// `body` gzip-compressed, once some request asked for it (shared by the entry's copies).
    gzipped: Arc<OnceLock<Bytes>>,
    status: TaskStatus,
    read_at: Instant,
}

impl CachedReport {
    /// The report gzip-compressed, compressed at most once per entry.
    pub fn gzipped(&self) -> Bytes {
        self.gzipped
            .get_or_init(|| {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                // Writing to a Vec cannot fail.
                encoder
                    .write_all(&self.body)
                    .and_then(|()| encoder.finish())
                    .map(Bytes::from)
                    .expect("gzip into memory")
            })
            .clone()
    }

    /// Whether this entry may answer a request now.
    fn fresh(&self) -> bool {
        let keep = if self.status.is_terminal() {
            KEEP_FINISHED
        } else {
            REFRESH_EVERY
        };
        self.read_at.elapsed() < keep
    }
}

#[derive(Clone)]
struct BySize;

impl Weighter<Uuid, CachedReport> for BySize {
    fn weight(&self, _: &Uuid, report: &CachedReport) -> u64 {
        // The gzip form, when made, is a fraction of the body.
        64 + report.body.len() as u64 * 5 / 4
    }
}

pub struct ReportCache {
    reports: Cache<Uuid, CachedReport, BySize>,
}

impl Default for ReportCache {
    fn default() -> Self {
        Self {
            reports: Cache::with_weighter(10_000, CAPACITY, BySize),
        }
    }
}

impl ReportCache {
    /// The task's report, if one fresh enough to answer with is kept.
    pub fn get(&self, id: Uuid) -> Option<CachedReport> {
        self.reports.get(&id).filter(CachedReport::fresh)
    }

    /// Keeps a report just read from the store; returns what to answer.
    pub fn keep(
        &self,
        id: Uuid,
        owner: Option<Uuid>,
        status: TaskStatus,
        body: Bytes,
    ) -> CachedReport {
        let report = CachedReport {
            owner,
            body,
            gzipped: Arc::default(),
            status,
            read_at: Instant::now(),
        };
        self.reports.insert(id, report.clone());
        report
    }

    /// Drops the task's report: it has changed for good (the task ended or was canceled).
    pub fn forget(&self, id: Uuid) {
        self.reports.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_report_is_served_for_one_flush_period_and_a_terminal_one_until_forgotten() {
        let cache = ReportCache::default();
        let (running, done) = (Uuid::new_v4(), Uuid::new_v4());
        cache.keep(
            running,
            None,
            TaskStatus::Processing,
            Bytes::from_static(b"{}"),
        );
        cache.keep(done, None, TaskStatus::Succeeded, Bytes::from_static(b"{}"));
        assert!(cache.get(running).is_some());
        std::thread::sleep(REFRESH_EVERY);
        assert!(cache.get(running).is_none(), "a running report goes stale");
        assert!(cache.get(done).is_some(), "a terminal report does not");
        cache.forget(done);
        assert!(cache.get(done).is_none());
    }

    #[test]
    fn the_gzip_form_is_made_once_and_unpacks_to_the_report() {
        let cache = ReportCache::default();
        let id = Uuid::new_v4();
        let body = Bytes::from(format!(r#"{{"reports":"{}"}}"#, "x".repeat(10_000)));
        cache.keep(id, None, TaskStatus::Processing, body.clone());
        let first = cache.get(id).unwrap().gzipped();
        let second = cache.get(id).unwrap().gzipped();
        assert_eq!(first.as_ptr(), second.as_ptr(), "compressed again");
        assert!(first.len() < body.len() / 10);
        let mut unpacked = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&first[..]), &mut unpacked)
            .unwrap();
        assert_eq!(unpacked, body);
    }
}
