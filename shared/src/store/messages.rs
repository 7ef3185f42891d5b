//! Conversations and their messages. A message is one question and its answer, written by
//! the API (`pending`) and answered by a worker: `pending` → `streaming` → `normal` | `error`
//! | `stopped`. Deleted messages keep their row (`deleted_at`) and are never read again by
//! listings or prompts. Times are Unix milliseconds.
//!
//! Text a provider produced (answers, summaries, error messages) is stored without NUL
//! characters ([`storable`]): Postgres text cannot hold them, and an answer must never fail
//! to be stored because of what the model wrote. (What callers type is refused with NUL by
//! the API instead.)

use std::borrow::Cow;

use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::{
    Db, SqliteQuery, StoreError,
    interrupt::{Interrupt, interrupt},
};
// The chat types by their own modules: `chat` re-exports its events, which carry `Message`.
use crate::{
    chat::{config::MemoryMode, prompt::Round},
    with_pool, with_read_pool,
};

crate::named_enum! {
    /// A message's status, as stored and as the API shows it.
    pub enum MessageStatus("message status") {
        Pending = "pending",
        Streaming = "streaming",
        Normal = "normal",
        Error = "error",
        Stopped = "stopped",
    }
}

crate::named_enum! {
    /// Which API asked: the owner's debug chat (the draft config) or the service API of a
    /// published app (the published config).
    pub enum MessageSource("message source") {
        Debug = "debug",
        Service = "service",
    }
}

crate::named_enum! {
    /// An end user's rating of an answer.
    pub enum Rating("rating") {
        Like = "like",
        Dislike = "dislike",
    }
}

impl MessageStatus {
    /// Whether no worker will touch the message again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Normal | Self::Error | Self::Stopped)
    }
}

/// `text` without NUL characters, which Postgres text columns cannot hold (borrowed when it
/// has none, which is nearly always).
pub fn storable(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', ""))
    } else {
        Cow::Borrowed(text)
    }
}

/// A conversation row; the debug conversation of an app holds its long-term memory.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct Conversation {
    pub id: Uuid,
    pub app_id: Uuid,
    /// The service API's end user (`""` for the debug conversation).
    pub end_user: String,
    pub name: String,
    pub summary: String,
    pub summary_updated_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A message as stored (and as a chat's final event carries it).
#[derive(Clone, Debug, PartialEq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct Message {
    pub id: Uuid,
    pub app_id: Uuid,
    pub conversation_id: Uuid,
    pub query: String,
    pub answer: String,
    /// The completion's tokens.
    pub answer_tokens: i64,
    /// The prompt's tokens (as the provider counted them, else estimated).
    pub prompt_tokens: i64,
    pub total_tokens: i64,
    /// Milliseconds from the job's start to the last token.
    pub response_latency: f64,
    pub status: MessageStatus,
    /// Why the answer failed; `""` otherwise.
    pub error: String,
    /// The end user's rating, if any.
    pub rating: Option<Rating>,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
}

/// A new message row.
pub struct NewMessage<'a> {
    pub id: Uuid,
    pub app_id: Uuid,
    pub conversation_id: Uuid,
    pub account_id: Uuid,
    pub query: &'a str,
    /// The effective config at question time, which the worker answers with.
    pub model_config: &'a Value,
    pub memory_mode: MemoryMode,
    /// Whether the caller streams (the worker then publishes deltas).
    pub stream_deltas: bool,
    pub source: MessageSource,
    /// The earlier rounds to answer with instead of the conversation's stored ones (the
    /// OpenAI-compatible endpoint, whose request carries its history).
    pub history: Option<&'a [Round]>,
    /// `pending`, or `error` for a question that cannot be answered at all.
    pub status: MessageStatus,
    pub error: &'a str,
    pub at_ms: i64,
}

/// What a worker needs to answer a message it claimed.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct MessageToAnswer {
    pub id: Uuid,
    pub app_id: Uuid,
    pub conversation_id: Uuid,
    pub query: String,
    pub model_config: Json<Value>,
    pub memory_mode: MemoryMode,
    pub stream_deltas: bool,
    pub history: Option<Json<Vec<Round>>>,
    pub stop_requested: bool,
    pub attempt: i32,
    pub created_at: i64,
}

/// How an answer ended.
pub struct AnswerOutcome<'a> {
    /// `normal`, `error` or `stopped`.
    pub status: MessageStatus,
    pub answer: &'a str,
    pub answer_tokens: i64,
    pub prompt_tokens: i64,
    pub response_latency_ms: f64,
    pub error: &'a str,
}

macro_rules! message_columns {
    () => {
        "id, app_id, conversation_id, query, answer, answer_tokens, prompt_tokens, total_tokens, \
         response_latency, status, error, rating, created_at, updated_at, deleted_at"
    };
}

macro_rules! conversation_columns {
    () => {
        "id, app_id, end_user, name, summary, summary_updated_at, created_at, updated_at"
    };
}

/// The app's debug conversation: `current` when set, else a new one recorded on the app
/// (concurrent first calls agree on one). `None` when the app no longer exists.
pub async fn ensure_debug_conversation(
    db: &Db,
    app_id: Uuid,
    account_id: Uuid,
    current: Option<Uuid>,
    at_ms: i64,
) -> Result<Option<Uuid>, StoreError> {
    if let Some(id) = current {
        return Ok(Some(id));
    }
    let id = Uuid::new_v4();
    let claimed = with_pool!(db, pool => async {
        let mut tx = pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO conversations (id, app_id, account_id, is_debug, summary, summary_updated_at, created_at, updated_at)
             VALUES ($1, $2, $3, TRUE, '', $4, $4, $4)")
            .bind(id).bind(app_id).bind(account_id).bind(at_ms)
            .execute(&mut *tx).await;
        match inserted {
            // The app was deleted meanwhile.
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => return Ok(false),
            other => other?,
        };
        let n = sqlx::query(
            "UPDATE apps SET debug_conversation_id = $2 WHERE id = $1 AND debug_conversation_id IS NULL")
            .bind(app_id).bind(id).execute(&mut *tx).await?.rows_affected();
        if n == 1 {
            tx.commit().await?;
        } else {
            // Another request set it first (or the app is gone): drop ours.
            tx.rollback().await?;
        }
        Ok::<_, sqlx::Error>(n == 1)
    }.await)?;
    if claimed {
        return Ok(Some(id));
    }
    let row: Option<(Option<Uuid>,)> = with_pool!(db, pool => sqlx::query_as(
        "SELECT debug_conversation_id FROM apps WHERE id = $1")
        .bind(app_id).fetch_optional(pool).await)?;
    Ok(row.and_then(|(id,)| id))
}

pub async fn get_conversation(db: &Db, id: Uuid) -> Result<Option<Conversation>, StoreError> {
    Ok(
        with_read_pool!(db, pool => sqlx::query_as::<_, Conversation>(
        concat!("SELECT ", conversation_columns!(), " FROM conversations WHERE id = $1"))
        .bind(id).fetch_optional(pool).await)?,
    )
}

/// The conversation's long-term memory summary (`""` when the conversation is unknown).
pub async fn get_summary(db: &Db, conversation_id: Uuid) -> Result<String, StoreError> {
    let row: Option<(String,)> = with_pool!(db, pool => sqlx::query_as(
        "SELECT summary FROM conversations WHERE id = $1")
        .bind(conversation_id).fetch_optional(pool).await)?;
    Ok(row.map(|(s,)| s).unwrap_or_default())
}

/// Replaces the summary; returns whether the conversation exists.
pub async fn set_summary(
    db: &Db,
    conversation_id: Uuid,
    summary: &str,
    at_ms: i64,
) -> Result<bool, StoreError> {
    let n = with_pool!(db, pool => sqlx::query(
        "UPDATE conversations SET summary = $2, summary_updated_at = $3, updated_at = $3 WHERE id = $1")
        .bind(conversation_id).bind(storable(summary)).bind(at_ms)
        .execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

const INSERT_MESSAGE: &str = "INSERT INTO messages (id, app_id, conversation_id, account_id, query,
    status, error, model_config, memory_mode, stream_deltas, source, history, created_at, updated_at)";

/// The insert of a new message with its values bound (a macro: it is typed for whichever
/// backend executes it).
macro_rules! new_message_query {
    ($sql:expr, $new:expr) => {{
        let new = $new;
        sqlx::query(sqlx::AssertSqlSafe($sql))
            .bind(new.id)
            .bind(new.app_id)
            .bind(new.conversation_id)
            .bind(new.account_id)
            .bind(new.query)
            .bind(new.status)
            .bind(new.error)
            .bind(Json(new.model_config))
            .bind(new.memory_mode)
            .bind(new.stream_deltas)
            .bind(new.source)
            .bind(new.history.map(Json))
            .bind(new.at_ms)
            .bind(new.at_ms)
    }};
}

/// Stores a new message.
pub async fn insert_message(db: &Db, new: NewMessage<'_>) -> Result<(), StoreError> {
    with_pool!(db, pool => new_message_query!(
        format!("{INSERT_MESSAGE} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"),
        &new)
        .execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(())
}

/// The insert of [`insert_message`] for the embedded store, between `before` and `after` in
/// one command (see `submission::store_and_queue_message`).
pub fn insert_message_sqlite_within<'q>(
    new: &NewMessage<'q>,
    before: &str,
    after: &str,
) -> SqliteQuery<'q> {
    let values = vec!["?"; 14].join(", ");
    new_message_query!(
        format!("{before}\n{INSERT_MESSAGE} VALUES ({values});\n{after}"),
        new
    )
}

/// The message, deleted or not.
pub async fn get_message(db: &Db, id: Uuid) -> Result<Option<Message>, StoreError> {
    Ok(with_read_pool!(db, pool => sqlx::query_as::<_, Message>(
        concat!("SELECT ", message_columns!(), " FROM messages WHERE id = $1"))
        .bind(id).fetch_optional(pool).await)?)
}

/// One page of the conversation's messages that are not deleted, newest first, and how many
/// there are in all.
pub async fn list_messages(
    db: &Db,
    conversation_id: Uuid,
    limit: i64,
    offset: i64,
) -> Result<(Vec<Message>, u64), StoreError> {
    let (total,): (i64,) = with_read_pool!(db, pool => sqlx::query_as(
        "SELECT COUNT(*) FROM messages WHERE conversation_id = $1 AND deleted_at IS NULL")
        .bind(conversation_id).fetch_one(pool).await)?;
    if total == 0 {
        return Ok((Vec::new(), 0));
    }
    let list = with_read_pool!(db, pool => sqlx::query_as::<_, Message>(concat!(
        "SELECT ", message_columns!(), " FROM messages
         WHERE conversation_id = $1 AND deleted_at IS NULL
         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"))
        .bind(conversation_id).bind(limit).bind(offset).fetch_all(pool).await)?;
    Ok((list, total as u64))
}

/// Claims the message for a new attempt: `pending`/`streaming` → `streaming`, attempt + 1.
/// `None` when it is gone or already final (stopped while queued, answered by an earlier
/// delivery of the job).
pub async fn start_answer(
    db: &Db,
    id: Uuid,
    at_ms: i64,
) -> Result<Option<MessageToAnswer>, StoreError> {
    Ok(with_pool!(db, pool => sqlx::query_as::<_, MessageToAnswer>(
        "UPDATE messages SET status = 'streaming', attempt = attempt + 1, updated_at = $2
         WHERE id = $1 AND status IN ('pending', 'streaming')
         RETURNING id, app_id, conversation_id, query, model_config, memory_mode, stream_deltas,
                   history, stop_requested, attempt, created_at")
        .bind(id).bind(at_ms).fetch_optional(pool).await)?)
}

/// The last `limit` answered rounds of the conversation before `before_ms`, not deleted and
/// other than `exclude`, oldest first.
pub async fn recent_rounds(
    db: &Db,
    conversation_id: Uuid,
    exclude: Uuid,
    before_ms: i64,
    limit: i64,
) -> Result<Vec<Round>, StoreError> {
    if limit <= 0 {
        return Ok(Vec::new());
    }
    let mut rows: Vec<(String, String)> = with_pool!(db, pool => sqlx::query_as(
        "SELECT query, answer FROM messages
         WHERE conversation_id = $1 AND status = 'normal' AND deleted_at IS NULL
           AND id <> $2 AND created_at <= $3
         ORDER BY created_at DESC, id DESC LIMIT $4")
        .bind(conversation_id).bind(exclude).bind(before_ms).bind(limit)
        .fetch_all(pool).await)?;
    rows.reverse();
    Ok(rows
        .into_iter()
        .map(|(query, answer)| Round { query, answer })
        .collect())
}

/// The final write of an answer. Returns whether this attempt still held the message.
pub async fn finish_answer(
    db: &Db,
    id: Uuid,
    attempt: i32,
    outcome: AnswerOutcome<'_>,
    at_ms: i64,
) -> Result<bool, StoreError> {
    let n = with_pool!(db, pool => sqlx::query(
        "UPDATE messages SET status = $3, answer = $4, answer_tokens = $5, response_latency = $6,
                error = $7, updated_at = $8, prompt_tokens = $9, total_tokens = $5 + $9
         WHERE id = $1 AND attempt = $2 AND status = 'streaming'")
        .bind(id).bind(attempt).bind(outcome.status).bind(storable(outcome.answer))
        .bind(outcome.answer_tokens).bind(outcome.response_latency_ms).bind(storable(outcome.error))
        .bind(at_ms).bind(outcome.prompt_tokens)
        .execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Fails a message no worker has taken (its job could not be queued, or it cannot be
/// answered at all). Returns whether it was still pending.
pub async fn fail_pending(db: &Db, id: Uuid, error: &str, at_ms: i64) -> Result<bool, StoreError> {
    let n = with_pool!(db, pool => sqlx::query(
        "UPDATE messages SET status = 'error', error = $2, updated_at = $3
         WHERE id = $1 AND status = 'pending'")
        .bind(id).bind(storable(error)).bind(at_ms)
        .execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Fails answers whose attempt has not written since `older_than_ms`: their worker died and
/// the queue has given up on the job (or lost it), so no one will ever finish them. Returns
/// how many; without this they would stay `streaming` forever.
pub async fn fail_stale_answers(
    db: &Db,
    older_than_ms: i64,
    error: &str,
    at_ms: i64,
) -> Result<u64, StoreError> {
    Ok(with_pool!(db, pool => sqlx::query(
        "UPDATE messages SET status = 'error', error = $2, updated_at = $3
         WHERE status = 'streaming' AND updated_at < $1")
        .bind(older_than_ms).bind(storable(error)).bind(at_ms)
        .execute(pool).await.map(|r| r.rows_affected()))?)
}

/// Stops a queued message at once, or flags one being answered for its worker (see
/// [`super::interrupt`]).
pub async fn request_stop(db: &Db, id: Uuid, at_ms: i64) -> Result<Interrupt, StoreError> {
    interrupt(
        async {
            let ended = with_pool!(db, pool => sqlx::query(
                "UPDATE messages SET status = 'stopped', stop_requested = TRUE, updated_at = $2
                 WHERE id = $1 AND status = 'pending'")
                .bind(id).bind(at_ms).execute(pool).await.map(|r| r.rows_affected()))?;
            Ok(ended == 1)
        },
        async {
            let flagged: Option<(Uuid,)> = with_pool!(db, pool => sqlx::query_as(
                "UPDATE messages SET stop_requested = TRUE WHERE id = $1 AND status = 'streaming' RETURNING id")
                .bind(id).fetch_optional(pool).await)?;
            Ok(flagged.is_some())
        },
        async {
            let found: Option<(Uuid,)> = with_pool!(db, pool => sqlx::query_as(
                "SELECT id FROM messages WHERE id = $1").bind(id).fetch_optional(pool).await)?;
            Ok(found.is_some())
        },
    )
    .await
}

/// Whether stop was requested (read by a worker right after subscribing to the stop signal,
/// closing the race with a request that came before).
pub async fn stop_requested(db: &Db, id: Uuid) -> Result<bool, StoreError> {
    let row: Option<(bool,)> = with_pool!(db, pool => sqlx::query_as(
        "SELECT stop_requested FROM messages WHERE id = $1").bind(id).fetch_optional(pool).await)?;
    Ok(row.is_some_and(|(s,)| s))
}

/// Soft-deletes the message when it belongs to `conversation_id` and is not deleted yet;
/// returns whether it did.
pub async fn soft_delete_message(
    db: &Db,
    conversation_id: Uuid,
    id: Uuid,
    at_ms: i64,
) -> Result<bool, StoreError> {
    let n = with_pool!(db, pool => sqlx::query(
        "UPDATE messages SET deleted_at = $3, updated_at = $3
         WHERE id = $1 AND conversation_id = $2 AND deleted_at IS NULL")
        .bind(id).bind(conversation_id).bind(at_ms)
        .execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}
