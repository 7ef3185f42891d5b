-- LLM apps: an app per account, its draft and published configs, conversations (the debug
-- conversation for now) and their messages. Times are Unix milliseconds. Deleting an app
-- removes everything under it (the store deletes explicitly too; the cascades are a backstop).
CREATE TABLE apps (
    id                    BLOB PRIMARY KEY NOT NULL,
    account_id            BLOB   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name                  TEXT   NOT NULL,
    icon                  TEXT   NOT NULL,
    description           TEXT   NOT NULL DEFAULT '',
    -- Set once, on first use of the debug chat or its memory.
    debug_conversation_id BLOB,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL
);
CREATE INDEX apps_account_created_idx ON apps (account_id, created_at);

-- At most one config per status: the draft (`drafted`) and the published copy (`published`).
CREATE TABLE app_configs (
    id           BLOB PRIMARY KEY NOT NULL,
    app_id       BLOB   NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    status       TEXT   NOT NULL,
    model_config TEXT   NOT NULL,
    memory_mode  TEXT   NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    CONSTRAINT app_configs_app_status_key UNIQUE (app_id, status)
);

CREATE TABLE conversations (
    id                 BLOB PRIMARY KEY NOT NULL,
    app_id             BLOB   NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    account_id         BLOB   NOT NULL,
    is_debug           BOOLEAN NOT NULL DEFAULT FALSE,
    -- Long-term memory: a running summary of the conversation.
    summary            TEXT   NOT NULL DEFAULT '',
    summary_updated_at INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);
CREATE INDEX conversations_app_idx ON conversations (app_id);

-- One question and its answer. `status`: pending → streaming → normal | error | stopped.
-- The effective config at question time is kept with the message, so the worker answers with
-- the config the caller saw.
CREATE TABLE messages (
    id               BLOB PRIMARY KEY NOT NULL,
    app_id           BLOB    NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    conversation_id  BLOB    NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    account_id       BLOB    NOT NULL,
    query            TEXT    NOT NULL,
    answer           TEXT    NOT NULL DEFAULT '',
    answer_tokens    INTEGER  NOT NULL DEFAULT 0,
    response_latency REAL NOT NULL DEFAULT 0,
    status           TEXT    NOT NULL,
    error            TEXT    NOT NULL DEFAULT '',
    model_config     TEXT    NOT NULL,
    memory_mode      TEXT    NOT NULL,
    -- The caller streams: the worker publishes deltas only then.
    stream_deltas    BOOLEAN NOT NULL DEFAULT FALSE,
    stop_requested   BOOLEAN NOT NULL DEFAULT FALSE,
    attempt          INTEGER NOT NULL DEFAULT 0,
    -- Soft delete: set when the message is deleted; such messages are never read again.
    deleted_at       INTEGER,
    created_at       INTEGER  NOT NULL,
    updated_at       INTEGER  NOT NULL
);
CREATE INDEX messages_conversation_created_idx ON messages (conversation_id, created_at);
CREATE INDEX messages_app_idx ON messages (app_id);
