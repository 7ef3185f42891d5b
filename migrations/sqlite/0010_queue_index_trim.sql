-- The embedded queue's `Jobs` table (apalis-sqlite's) carries indexes for apalis's own
-- dashboards and its unused idempotency keys. Every job is inserted, fetched, acknowledged
-- and vacuumed, and each of these writes updated every index: three of them serve no query
-- this server runs, so they are dropped.
-- Kept: the primary key (acks), `idx_jobs_pending` and `idx_jobs_failed` (fetch),
-- `idx_jobs_job_type_status_run_at` (vacuum and queue depth), `idx_jobs_status_run_at` (the
-- re-queue of a dead worker's jobs: without it that sweep scans the table), `LIdx`.
-- Dropped: `idx_jobs_running` and `idx_jobs_completed_done_at` (apalis's statistics and its
-- `vacuum`, which we do not call: `shared::queue::sqlite::vacuum_batch` deletes by type and
-- status) and `idx_jobs_idempotency_key` (the push sets no key; `shared::queue::sqlite::push_sql`
-- skips duplicates with `ON CONFLICT DO NOTHING`).
DROP INDEX IF EXISTS idx_jobs_running;
DROP INDEX IF EXISTS idx_jobs_completed_done_at;
DROP INDEX IF EXISTS idx_jobs_idempotency_key;
