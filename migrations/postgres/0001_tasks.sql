-- Workflow tasks: one row per run, holding its schema, inputs, result and report.
-- Times are Unix milliseconds so that one SQL text serves Postgres and SQLite.
CREATE TABLE tasks (
    id               UUID PRIMARY KEY,
    owner_id         UUID,
    status           TEXT    NOT NULL,
    schema_json      TEXT    NOT NULL,
    inputs           JSONB   NOT NULL,
    outputs          JSONB,
    report           JSONB,
    attempt          INTEGER NOT NULL DEFAULT 0,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    finished_at      BIGINT
);

-- Retention deletes terminated tasks by age.
CREATE INDEX tasks_finished_at_idx ON tasks (finished_at) WHERE finished_at IS NOT NULL;
