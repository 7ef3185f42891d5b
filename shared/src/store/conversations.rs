//! The service API's conversations: each belongs to one end user (the caller's `user`
//! string) of one app, and is never the app's debug conversation. Listings page by cursor, as
//! Dify's service API does: newest first, continuing before a given id. Times are Unix
//! milliseconds.

use uuid::Uuid;

use super::{
    Db, StoreError,
    messages::{Conversation, Message, Rating},
};
use crate::{with_pool, with_read_pool};

macro_rules! columns {
    () => {
        "id, app_id, end_user, name, summary, summary_updated_at, created_at, updated_at"
    };
}

macro_rules! message_columns {
    () => {
        "id, app_id, conversation_id, query, answer, answer_tokens, prompt_tokens, total_tokens, \
         response_latency, status, error, rating, created_at, updated_at, deleted_at"
    };
}

/// A new conversation of an end user.
pub struct NewConversation<'a> {
    pub id: Uuid,
    pub app_id: Uuid,
    /// The app's owner.
    pub account_id: Uuid,
    pub end_user: &'a str,
    pub name: &'a str,
    pub at_ms: i64,
}

/// Creates the conversation; `false` when the app no longer exists.
pub async fn insert_conversation(db: &Db, new: NewConversation<'_>) -> Result<bool, StoreError> {
    let inserted = with_pool!(db, pool => sqlx::query(
        "INSERT INTO conversations (id, app_id, account_id, is_debug, end_user, name, summary,
                                    summary_updated_at, created_at, updated_at)
         VALUES ($1, $2, $3, FALSE, $4, $5, '', $6, $6, $6)")
        .bind(new.id).bind(new.app_id).bind(new.account_id).bind(new.end_user)
        .bind(super::messages::storable(new.name)).bind(new.at_ms)
        .execute(pool).await.map(|r| r.rows_affected()));
    match inserted {
        Ok(_) => Ok(true),
        Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The end user's conversation of the app (never the debug one).
pub async fn end_user_conversation(
    db: &Db,
    app_id: Uuid,
    end_user: &str,
    id: Uuid,
) -> Result<Option<Conversation>, StoreError> {
    Ok(
        with_read_pool!(db, pool => sqlx::query_as::<_, Conversation>(concat!(
        "SELECT ", columns!(), " FROM conversations
         WHERE id = $1 AND app_id = $2 AND end_user = $3 AND is_debug = FALSE"))
        .bind(id).bind(app_id).bind(end_user).fetch_optional(pool).await)?,
    )
}

/// The end user's newest conversation of the app named `name`, if any.
pub async fn latest_named(
    db: &Db,
    app_id: Uuid,
    end_user: &str,
    name: &str,
) -> Result<Option<Conversation>, StoreError> {
    Ok(
        with_pool!(db, pool => sqlx::query_as::<_, Conversation>(concat!(
        "SELECT ", columns!(), " FROM conversations
         WHERE app_id = $1 AND end_user = $2 AND name = $3 AND is_debug = FALSE
         ORDER BY created_at DESC, id DESC LIMIT 1"))
        .bind(app_id).bind(end_user).bind(name).fetch_optional(pool).await)?,
    )
}

/// Up to `limit` of the end user's conversations, newest first, older than the one with id
/// `last_id` when given (`None` when that one is not the user's).
pub async fn list_conversations(
    db: &Db,
    app_id: Uuid,
    end_user: &str,
    last_id: Option<Uuid>,
    limit: i64,
) -> Result<Option<Vec<Conversation>>, StoreError> {
    let cursor = match last_id {
        None => (i64::MAX, Uuid::max()),
        Some(id) => match end_user_conversation(db, app_id, end_user, id).await? {
            Some(c) => (c.created_at, c.id),
            None => return Ok(None),
        },
    };
    let list = with_read_pool!(db, pool => sqlx::query_as::<_, Conversation>(concat!(
        "SELECT ", columns!(), " FROM conversations
         WHERE app_id = $1 AND end_user = $2 AND is_debug = FALSE
           AND (created_at < $3 OR (created_at = $3 AND id < $4))
         ORDER BY created_at DESC, id DESC LIMIT $5"))
        .bind(app_id).bind(end_user).bind(cursor.0).bind(cursor.1).bind(limit)
        .fetch_all(pool).await)?;
    Ok(Some(list))
}

/// Up to `limit` messages of the conversation that are not deleted, newest first, older than
/// the message `first_id` when given (`None` when that one is not in the conversation).
pub async fn list_messages_before(
    db: &Db,
    conversation_id: Uuid,
    first_id: Option<Uuid>,
    limit: i64,
) -> Result<Option<Vec<Message>>, StoreError> {
    let cursor = match first_id {
        None => (i64::MAX, Uuid::max()),
        Some(id) => match super::messages::get_message(db, id).await? {
            Some(m) if m.conversation_id == conversation_id && m.deleted_at.is_none() => {
                (m.created_at, m.id)
            }
            _ => return Ok(None),
        },
    };
    let list = with_read_pool!(db, pool => sqlx::query_as::<_, Message>(concat!(
        "SELECT ", message_columns!(), " FROM messages
         WHERE conversation_id = $1 AND deleted_at IS NULL
           AND (created_at < $2 OR (created_at = $2 AND id < $3))
         ORDER BY created_at DESC, id DESC LIMIT $4"))
        .bind(conversation_id).bind(cursor.0).bind(cursor.1).bind(limit)
        .fetch_all(pool).await)?;
    Ok(Some(list))
}

/// Deletes the conversation with its messages; returns whether it existed. A message still
/// being answered is dropped with it (its worker's final write then finds nothing).
pub async fn delete_conversation(db: &Db, id: Uuid) -> Result<bool, StoreError> {
    let n = with_pool!(db, pool => async {
        let mut tx = pool.begin().await?;
        sqlx::query("DELETE FROM messages WHERE conversation_id = $1")
            .bind(id).execute(&mut *tx).await?;
        let n = sqlx::query("DELETE FROM conversations WHERE id = $1 AND is_debug = FALSE")
            .bind(id).execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok::<_, sqlx::Error>(n)
    }.await)?;
    Ok(n == 1)
}

/// Sets (or with `None` clears) the rating of a message; returns whether it exists.
pub async fn set_rating(
    db: &Db,
    id: Uuid,
    rating: Option<Rating>,
    at_ms: i64,
) -> Result<bool, StoreError> {
    let n = with_pool!(db, pool => sqlx::query(
        "UPDATE messages SET rating = $2, updated_at = $3 WHERE id = $1 AND deleted_at IS NULL")
        .bind(id).bind(rating).bind(at_ms).execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}
