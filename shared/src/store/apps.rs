//! LLM apps and their configs. An app has at most one draft config (`drafted`, created with
//! the app) and one published copy of it (`published`); the unique key `(app_id, status)`
//! keeps it so. Times are Unix milliseconds.

use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

use super::{Db, StoreError};
use crate::{chat::config::MemoryMode, with_pool, with_read_pool};

crate::named_enum! {
    /// Which of an app's two configs a row is.
    pub enum ConfigStatus("config status") {
        Drafted = "drafted",
        Published = "published",
    }
}

/// An app row.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct App {
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: String,
    pub icon: String,
    pub description: String,
    pub debug_conversation_id: Option<Uuid>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A config row.
#[derive(Clone, Debug, PartialEq, sqlx::FromRow)]
pub struct AppConfig {
    pub id: Uuid,
    pub status: ConfigStatus,
    pub model_config: Json<Value>,
    pub memory_mode: MemoryMode,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An app with its configs.
#[derive(Clone, Debug)]
pub struct AppDetail {
    pub app: App,
    pub drafted: Option<AppConfig>,
    pub published: Option<AppConfig>,
}

impl AppDetail {
    /// The config a debug chat uses: the draft if there is one, else the published one.
    pub fn effective_config(&self) -> Option<&AppConfig> {
        self.drafted.as_ref().or(self.published.as_ref())
    }
}

/// An app of a listing: the row plus the ids of its configs.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct AppListItem {
    #[sqlx(flatten)]
    pub app: App,
    pub drafted_app_config_id: Option<Uuid>,
    pub published_app_config_id: Option<Uuid>,
}

/// A new app with its draft config.
pub struct NewApp<'a> {
    pub id: Uuid,
    pub account_id: Uuid,
    pub name: &'a str,
    pub icon: &'a str,
    pub description: &'a str,
    pub draft_id: Uuid,
    pub model_config: &'a Value,
    pub memory_mode: MemoryMode,
    pub at_ms: i64,
}

/// Changes to an app's own fields; `None` keeps a field.
#[derive(Default)]
pub struct AppChanges<'a> {
    pub name: Option<&'a str>,
    pub icon: Option<&'a str>,
    pub description: Option<&'a str>,
}

macro_rules! app_columns {
    ($p:literal) => {
        concat!(
            $p,
            "id, ",
            $p,
            "account_id, ",
            $p,
            "name, ",
            $p,
            "icon, ",
            $p,
            "description, ",
            $p,
            "debug_conversation_id, ",
            $p,
            "created_at, ",
            $p,
            "updated_at"
        )
    };
}

/// Inserts the app and its draft config in one transaction.
pub async fn insert_app(db: &Db, new: NewApp<'_>) -> Result<(), StoreError> {
    with_pool!(db, pool => async {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO apps (id, account_id, name, icon, description, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $6)")
            .bind(new.id).bind(new.account_id).bind(new.name).bind(new.icon)
            .bind(new.description).bind(new.at_ms)
            .execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO app_configs (id, app_id, status, model_config, memory_mode, created_at, updated_at)
             VALUES ($1, $2, 'drafted', $3, $4, $5, $5)")
            .bind(new.draft_id).bind(new.id).bind(Json(new.model_config))
            .bind(new.memory_mode).bind(new.at_ms)
            .execute(&mut *tx).await?;
        tx.commit().await
    }.await)?;
    Ok(())
}

/// The row behind [`AppDetail`]: the app joined with both configs.
#[derive(sqlx::FromRow)]
struct AppDetailRow {
    #[sqlx(flatten)]
    app: App,
    d_id: Option<Uuid>,
    d_model_config: Option<Json<Value>>,
    d_memory_mode: Option<MemoryMode>,
    d_created_at: Option<i64>,
    d_updated_at: Option<i64>,
    p_id: Option<Uuid>,
    p_model_config: Option<Json<Value>>,
    p_memory_mode: Option<MemoryMode>,
    p_created_at: Option<i64>,
    p_updated_at: Option<i64>,
}

fn joined_config(
    status: ConfigStatus,
    id: Option<Uuid>,
    model_config: Option<Json<Value>>,
    memory_mode: Option<MemoryMode>,
    created_at: Option<i64>,
    updated_at: Option<i64>,
) -> Option<AppConfig> {
    Some(AppConfig {
        id: id?,
        status,
        model_config: model_config?,
        memory_mode: memory_mode?,
        created_at: created_at?,
        updated_at: updated_at?,
    })
}

/// The app with its draft and published configs, in one query.
pub async fn get_app(db: &Db, id: Uuid) -> Result<Option<AppDetail>, StoreError> {
    let row = with_read_pool!(db, pool => sqlx::query_as::<_, AppDetailRow>(concat!(
        "SELECT ", app_columns!("a."), ",
                d.id AS d_id, d.model_config AS d_model_config, d.memory_mode AS d_memory_mode,
                d.created_at AS d_created_at, d.updated_at AS d_updated_at,
                p.id AS p_id, p.model_config AS p_model_config, p.memory_mode AS p_memory_mode,
                p.created_at AS p_created_at, p.updated_at AS p_updated_at
         FROM apps a
         LEFT JOIN app_configs d ON d.app_id = a.id AND d.status = 'drafted'
         LEFT JOIN app_configs p ON p.app_id = a.id AND p.status = 'published'
         WHERE a.id = $1"))
        .bind(id).fetch_optional(pool).await)?;
    Ok(row.map(|r| AppDetail {
        app: r.app,
        drafted: joined_config(
            ConfigStatus::Drafted,
            r.d_id,
            r.d_model_config,
            r.d_memory_mode,
            r.d_created_at,
            r.d_updated_at,
        ),
        published: joined_config(
            ConfigStatus::Published,
            r.p_id,
            r.p_model_config,
            r.p_memory_mode,
            r.p_created_at,
            r.p_updated_at,
        ),
    }))
}

/// `%word%` for `LIKE ... ESCAPE '\'`, with the word's own wildcards escaped.
fn contains_pattern(word: &str) -> String {
    let mut pattern = String::with_capacity(word.len() + 2);
    pattern.push('%');
    for c in word.chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// One page of the account's apps, newest first, whose name contains `search_word`
/// (case-insensitively), and how many match in all.
pub async fn list_apps(
    db: &Db,
    account_id: Uuid,
    search_word: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(Vec<AppListItem>, u64), StoreError> {
    let pattern = contains_pattern(search_word.unwrap_or_default());
    let (total,): (i64,) = with_read_pool!(db, pool => sqlx::query_as(
        "SELECT COUNT(*) FROM apps WHERE account_id = $1 AND LOWER(name) LIKE LOWER($2) ESCAPE '\\'")
        .bind(account_id).bind(&pattern).fetch_one(pool).await)?;
    if total == 0 {
        return Ok((Vec::new(), 0));
    }
    let items = with_read_pool!(db, pool => sqlx::query_as::<_, AppListItem>(concat!(
        "SELECT ", app_columns!("a."), ",
                (SELECT c.id FROM app_configs c WHERE c.app_id = a.id AND c.status = 'drafted') AS drafted_app_config_id,
                (SELECT c.id FROM app_configs c WHERE c.app_id = a.id AND c.status = 'published') AS published_app_config_id
         FROM apps a
         WHERE a.account_id = $1 AND LOWER(a.name) LIKE LOWER($2) ESCAPE '\\'
         ORDER BY a.created_at DESC, a.id DESC
         LIMIT $3 OFFSET $4"))
        .bind(account_id).bind(&pattern).bind(limit).bind(offset)
        .fetch_all(pool).await)?;
    Ok((items, total as u64))
}

/// Changes the given fields; returns whether the app exists.
pub async fn update_app(
    db: &Db,
    id: Uuid,
    changes: AppChanges<'_>,
    at_ms: i64,
) -> Result<bool, StoreError> {
    let n = with_pool!(db, pool => sqlx::query(
        "UPDATE apps SET name = COALESCE($2, name), icon = COALESCE($3, icon),
                description = COALESCE($4, description), updated_at = $5
         WHERE id = $1")
        .bind(id).bind(changes.name).bind(changes.icon).bind(changes.description).bind(at_ms)
        .execute(pool).await.map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Deletes the app and everything under it (configs, conversations, messages) in one
/// transaction; returns whether it existed.
pub async fn delete_app(db: &Db, id: Uuid) -> Result<bool, StoreError> {
    let n = with_pool!(db, pool => async {
        let mut tx = pool.begin().await?;
        for statement in [
            "DELETE FROM app_api_keys WHERE app_id = $1",
            "DELETE FROM messages WHERE app_id = $1",
            "DELETE FROM conversations WHERE app_id = $1",
            "DELETE FROM app_configs WHERE app_id = $1",
        ] {
            sqlx::query(statement).bind(id).execute(&mut *tx).await?;
        }
        let n = sqlx::query("DELETE FROM apps WHERE id = $1").bind(id)
            .execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok::<_, sqlx::Error>(n)
    }.await)?;
    Ok(n == 1)
}

/// Writes the draft config, creating it (with `new_id`) when the app has none, and marks the
/// app updated.
pub async fn save_draft_config(
    db: &Db,
    app_id: Uuid,
    new_id: Uuid,
    model_config: &Value,
    memory_mode: &str,
    at_ms: i64,
) -> Result<(), StoreError> {
    with_pool!(db, pool => async {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO app_configs (id, app_id, status, model_config, memory_mode, created_at, updated_at)
             VALUES ($1, $2, 'drafted', $3, $4, $5, $5)
             ON CONFLICT (app_id, status) DO UPDATE SET model_config = excluded.model_config,
                 memory_mode = excluded.memory_mode, updated_at = excluded.updated_at")
            .bind(new_id).bind(app_id).bind(Json(model_config)).bind(memory_mode).bind(at_ms)
            .execute(&mut *tx).await?;
        sqlx::query("UPDATE apps SET updated_at = $2 WHERE id = $1")
            .bind(app_id).bind(at_ms).execute(&mut *tx).await?;
        tx.commit().await
    }.await)?;
    Ok(())
}

/// Copies the draft into the published config (created with `new_id` when there is none).
/// Returns `false` when the app has no draft.
pub async fn publish_draft(
    db: &Db,
    app_id: Uuid,
    new_id: Uuid,
    at_ms: i64,
) -> Result<bool, StoreError> {
    let n = with_pool!(db, pool => async {
        let mut tx = pool.begin().await?;
        // The WHERE clause also keeps SQLite from reading ON CONFLICT as a join constraint.
        let n = sqlx::query(
            "INSERT INTO app_configs (id, app_id, status, model_config, memory_mode, created_at, updated_at)
             SELECT $2, app_id, 'published', model_config, memory_mode, $3, $3
             FROM app_configs WHERE app_id = $1 AND status = 'drafted'
             ON CONFLICT (app_id, status) DO UPDATE SET model_config = excluded.model_config,
                 memory_mode = excluded.memory_mode, updated_at = excluded.updated_at")
            .bind(app_id).bind(new_id).bind(at_ms)
            .execute(&mut *tx).await?.rows_affected();
        if n > 0 {
            sqlx::query("UPDATE apps SET updated_at = $2 WHERE id = $1")
                .bind(app_id).bind(at_ms).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(n)
    }.await)?;
    Ok(n > 0)
}

/// Removes the published config; returns `false` when nothing was published.
pub async fn cancel_publish(db: &Db, app_id: Uuid, at_ms: i64) -> Result<bool, StoreError> {
    let n = with_pool!(db, pool => async {
        let mut tx = pool.begin().await?;
        let n = sqlx::query("DELETE FROM app_configs WHERE app_id = $1 AND status = 'published'")
            .bind(app_id).execute(&mut *tx).await?.rows_affected();
        if n > 0 {
            sqlx::query("UPDATE apps SET updated_at = $2 WHERE id = $1")
                .bind(app_id).bind(at_ms).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok::<_, sqlx::Error>(n)
    }.await)?;
    Ok(n > 0)
}
