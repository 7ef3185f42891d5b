-- The re-queue sweep and the stale-run reaper look for unfinished rows every few seconds;
-- these partial indexes hold only those rows, so the look-up stays small however many
-- finished tasks and answered messages the store keeps.
CREATE INDEX tasks_pending_idx ON tasks (created_at, id) WHERE status = 'pending';
CREATE INDEX tasks_processing_idx ON tasks (updated_at) WHERE status = 'processing';
CREATE INDEX messages_pending_idx ON messages (created_at, id) WHERE status = 'pending';
