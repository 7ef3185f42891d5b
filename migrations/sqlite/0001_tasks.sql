-- Workflow tasks: one row per run, holding its schema, inputs, result and report.
-- Times are Unix milliseconds so that one SQL text serves Postgres and SQLite.
CREATE TABLE tasks (
    id               BLOB    PRIMARY KEY NOT NULL,
    owner_id         BLOB,
    status           TEXT    NOT NULL,
    schema_json      TEXT    NOT NULL,
    inputs           TEXT    NOT NULL,
    outputs          TEXT,
    report           TEXT,
    attempt          INTEGER NOT NULL DEFAULT 0,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER
);

-- Retention deletes terminated tasks by age.
CREATE INDEX tasks_finished_at_idx ON tasks (finished_at) WHERE finished_at IS NOT NULL;
