-- Accounts: one row per person, signing in with an email and a password (Argon2id hash).
-- Emails are stored normalised (trimmed, lower-case), so the unique key is case-insensitive.
-- Times are Unix milliseconds.
CREATE TABLE accounts (
    id            UUID PRIMARY KEY,
    email         TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    password_hash TEXT   NOT NULL,
    avatar        TEXT   NOT NULL DEFAULT '',
    last_login_at BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    CONSTRAINT accounts_email_key UNIQUE (email)
);
