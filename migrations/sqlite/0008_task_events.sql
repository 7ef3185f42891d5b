-- A run's event log (node starts and ends, in order) for the task stream, written with the
-- report by the same statements; see shared/src/workflow/events.rs.
ALTER TABLE tasks ADD COLUMN events TEXT;
