-- The service API of published apps (issue #14): app API keys, end users' conversations,
-- token usage and feedback on every message.

-- An app key is shown once; only its SHA-256 is kept (`key_hash`, hex), with a masked form
-- for listings. Deleting a key deletes the row, so the next request with it is refused.
CREATE TABLE app_api_keys (
    id           BLOB PRIMARY KEY NOT NULL,
    app_id       BLOB   NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    key_hash     TEXT   NOT NULL,
    masked_key   TEXT   NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    CONSTRAINT app_api_keys_hash_key UNIQUE (key_hash)
);
CREATE INDEX app_api_keys_app_idx ON app_api_keys (app_id, created_at);

-- A service conversation belongs to one end user (`end_user`, the caller's `user`) of one
-- app; the debug conversation has `end_user = ''`.
ALTER TABLE conversations ADD COLUMN end_user TEXT NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN name TEXT NOT NULL DEFAULT '';
CREATE INDEX conversations_app_user_idx ON conversations (app_id, end_user, created_at);

-- Token usage of every message (`answer_tokens` is the completion); where it came from
-- (`debug` or `service`); the end user's rating; and, for the OpenAI-compatible endpoint, the
-- history the request carried (JSON rounds), which the worker uses instead of the stored one.
ALTER TABLE messages ADD COLUMN prompt_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN total_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN source TEXT NOT NULL DEFAULT 'debug';
ALTER TABLE messages ADD COLUMN rating TEXT;
ALTER TABLE messages ADD COLUMN history TEXT;
