//! LLM apps (spec `llmops-api.md`, Apps; seed `004_…` §1): CRUD and listing, the draft and
//! published configs, the debug conversation's long-term memory, debug chat through the
//! `chat` queue and its messages. Every route needs a bearer token; an app is visible to its
//! account only.

mod access;
mod api_keys;
mod debug;
mod input;
mod messages;
mod views;

use axum::extract::State;
use shared::{
    chat::{MemoryMode, ModelConfig},
    store::{
        apps::{self, AppChanges, NewApp},
        messages as message_store, now_ms,
    },
};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub use access::{AppId, MessageId, owned_app};
pub use input::{
    CreateAppRequest, DebugRequest, SearchParams, UpdateAppRequest, UpdateConfigRequest,
    UpdateMemoryRequest, parse_query,
};
pub use views::{
    AppConfigView, AppListItemView, AppView, CreatedApp, LongTermMemoryView, MessageView,
};

use crate::{
    envelope::{Empty, Envelope, ErrorEnvelope, Page},
    error::{ApiError, ApiResult},
    extract::{ApiJson, ApiQuery, CurrentAccount, PageParams, Pagination},
    state::AppState,
};
use input::{AppUpdate, NewAppFields};

/// Seed 1.2's success message.
pub const CONFIG_UPDATED: &str = "更新AI应用配置成功";
/// Seed 1.4's success message.
pub const MEMORY_UPDATED: &str = "更新AI应用长记忆成功";
/// The refusal of 1.3 and 1.4 when the effective config has no long-term memory.
pub const MEMORY_OFF: &str = "long-term memory is off for this app (its memory_mode is none)";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_app, list_apps))
        .routes(routes!(get_app, update_app))
        .routes(routes!(delete_app))
        .routes(routes!(update_draft_config))
        .routes(routes!(publish_app))
        .routes(routes!(cancel_publish_app))
        .routes(routes!(get_long_term_memory, update_long_term_memory))
        .merge(api_keys::router())
        .merge(debug::router())
        .merge(messages::router())
}

/// Creates an app and its default draft config (`model_config` defaults, `memory_mode`
/// `none`).
#[utoipa::path(post, path = "/api/apps", tag = "apps",
    security(("bearer" = [])),
    request_body = CreateAppRequest,
    responses(
        (status = 200, description = "the app was created", body = Envelope<CreatedApp>),
        (status = 400, description = "the body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "no valid access token", body = ErrorEnvelope),
        (status = 422, description = "a field breaks a rule", body = ErrorEnvelope),
    ))]
#[tracing::instrument(skip_all)]
async fn create_app(
    State(state): State<AppState>,
    account: CurrentAccount,
    ApiJson(body): ApiJson<CreateAppRequest>,
) -> ApiResult<CreatedApp> {
    let fields = NewAppFields::try_from(body).map_err(ApiError::Validation)?;
    let id = Uuid::new_v4();
    let config = ModelConfig::with_default_model(&state.config.llm_model).to_json();
    apps::insert_app(
        &state.db,
        NewApp {
            id,
            account_id: account.id,
            name: &fields.name,
            icon: &fields.icon,
            description: &fields.description,
            draft_id: Uuid::new_v4(),
            model_config: &config,
            memory_mode: MemoryMode::DEFAULT,
            at_ms: now_ms(),
        },
    )
    .await?;
    tracing::info!(app_id = %id, "app created");
    Ok(Envelope::ok(CreatedApp { id }))
}

/// The caller's apps, newest first, optionally only those whose name contains `search_word`.
#[utoipa::path(get, path = "/api/apps", tag = "apps",
    security(("bearer" = [])),
    params(PageParams, SearchParams),
    responses(
        (status = 200, description = "one page of apps", body = Envelope<Page<AppListItemView>>),
        (status = 401, description = "no valid access token", body = ErrorEnvelope),
        (status = 422, description = "a bad page parameter or a search word over 100 characters", body = ErrorEnvelope),
    ))]
async fn list_apps(
    State(state): State<AppState>,
    account: CurrentAccount,
    page: Pagination,
    ApiQuery(search): ApiQuery<SearchParams>,
) -> ApiResult<Page<AppListItemView>> {
    let word = search.word().map_err(ApiError::Validation)?;
    let (items, total) =
        apps::list_apps(&state.db, account.id, word, page.limit(), page.offset()).await?;
    Ok(Envelope::ok(
        page.page(items, total).map(AppListItemView::from),
    ))
}

/// Seed 1.1: the app, its two configs and its debug conversation id.
#[utoipa::path(get, path = "/api/apps/{app_id}", tag = "apps",
    security(("bearer" = [])),
    params(("app_id" = String, Path, description = "app id (UUID)")),
    responses(
        (status = 200, description = "the app", body = Envelope<AppView>),
        (status = 401, description = "no valid access token", body = ErrorEnvelope),
        (status = 403, description = "the app belongs to another account", body = ErrorEnvelope),
        (status = 404, description = "no such app", body = ErrorEnvelope),
    ))]
async fn get_app(
    State(state): State<AppState>,
    account: CurrentAccount,
    AppId(id): AppId,
) -> ApiResult<AppView> {
    let detail = owned_app(&state, &account, id).await?;
    Ok(Envelope::ok(AppView::new(detail, &state.config.llm_model)))
}

/// Changes the app's name, icon or description (fields left out keep their values).
#[utoipa::path(post, path = "/api/apps/{app_id}", tag = "apps",
    security(("bearer" = [])),
    params(("app_id" = String, Path, description = "app id (UUID)")),
    request_body = UpdateAppRequest,
    responses(
        (status = 200, description = "updated", body = Envelope<Empty>),
        (status = 401, description = "no valid access token", body = ErrorEnvelope),
        (status = 403, description = "the app belongs to another account", body = ErrorEnvelope),
        (status = 404, description = "no such app", body = ErrorEnvelope),
        (status = 422, description = "a field breaks a rule", body = ErrorEnvelope),
    ))]
async fn update_app(
    State(state): State<AppState>,
    account: CurrentAccount,
    AppId(id): AppId,
    ApiJson(body): ApiJson<UpdateAppRequest>,
) -> ApiResult<Empty> {
    owned_app(&state, &account, id).await?;
    let update = AppUpdate::try_from(body).map_err(ApiError::Validation)?;
    let changes = AppChanges {
        name: update.name.as_deref(),
        icon: update.icon.as_deref(),
        description: update.description.as_deref(),
    };
    if !apps::update_app(&state.db, id, changes, now_ms()).await? {
        return Err(ApiError::not_found(access::APP_NOT_FOUND));
    }
    Ok(Envelope::empty())
}

/// Deletes the app with its configs, conversations and messages.
#[utoipa::path(post, path = "/api/apps/{app_id}/delete", tag = "apps",
    security(("bearer" = [])),
    params(("app_id" = String, Path, description = "app id (UUID)")),
    responses(
        (status = 200, description = "deleted", body = Envelope<Empty>),
        (status = 401, description = "no valid access token", body = ErrorEnvelope),
        (status = 403, description = "the app belongs to another account", body = ErrorEnvelope),
        (status = 404, description = "no such app", body = ErrorEnvelope),
    ))]
#[tracing::instrument(skip_all, fields(app_id = %id))]
async fn delete_app(
    State(state): State<AppState>,
    account: CurrentAccount,
    AppId(id): AppId,
) -> ApiResult<Empty> {
    owned_app(&state, &account, id).await?;
    if !apps::delete_app(&state.db, id).await? {
        return Err(ApiError::not_found(access::APP_NOT_FOUND));
    }
    tracing::info!("app deleted");
    Ok(Envelope::empty())
}

/// Seed 1.2: replaces the draft config, creating it if the app has none. Inside
/// `model_config`, a field left out takes its default (the model: the server's
/// `LLMOPS_LLM_MODEL`).
#[utoipa::path(put, path = "/api/apps/{app_id}/config", tag = "apps",
    security(("bearer" = [])),
    params(("app_id" = String, Path, description = "app id (UUID)")),
    request_body = UpdateConfigRequest,
    responses(
        (status = 200, description = "`更新AI应用配置成功`", body = Envelope<Empty>),
        (status = 400, description = "the body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "no valid access token", body = ErrorEnvelope),
        (status = 403, description = "the app belongs to another account", body = ErrorEnvelope),
        (status = 404, description = "no such app", body = ErrorEnvelope),
        (status = 422, description = "a field breaks a rule (named `model_config.<field>`)", body = ErrorEnvelope),
    ))]
async fn update_draft_config(
    State(state): State<AppState>,
    account: CurrentAccount,
    AppId(id): AppId,
    ApiJson(body): ApiJson<UpdateConfigRequest>,
) -> ApiResult<Empty> {
    owned_app(&state, &account, id).await?;
    // Replaced, not merged: a field left out returns to its default, so a draft that once
    // named a model can go back to the server's.
    let defaults = ModelConfig::with_default_model(&state.config.llm_model);
    let (config, memory) = body.into_config(&defaults).map_err(ApiError::Validation)?;
    apps::save_draft_config(
        &state.db,
        id,
        Uuid::new_v4(),
        &config.to_json(),
        memory.as_str(),
        now_ms(),
    )
    .await?;
    Ok(Envelope::message(CONFIG_UPDATED))
}

/// Publishes the app: copies the draft into the published config (status `published`). The
/// draft stays.
#[utoipa::path(post, path = "/api/apps/{app_id}/publish", tag = "apps",
    security(("bearer" = [])),
    params(("app_id" = String, Path, description = "app id (UUID)")),
    responses(
        (status = 200, description = "published", body = Envelope<Empty>),
        (status = 400, description = "`fail`: the app has no draft config", body = ErrorEnvelope),
        (status = 401, description = "no valid access token", body = ErrorEnvelope),
        (status = 403, description = "the app belongs to another account", body = ErrorEnvelope),
        (status = 404, description = "no such app", body = ErrorEnvelope),
    ))]
async fn publish_app(
    State(state): State<AppState>,
    account: CurrentAccount,
    AppId(id): AppId,
) -> ApiResult<Empty> {
    owned_app(&state, &account, id).await?;
    if !apps::publish_draft(&state.db, id, Uuid::new_v4(), now_ms()).await? {
        return Err(ApiError::fail("the app has no draft config to publish"));
    }
    Ok(Envelope::empty())
}

/// Withdraws the published config; `fail` when nothing is published.
#[utoipa::path(post, path = "/api/apps/{app_id}/cancel-publish", tag = "apps",
    security(("bearer" = [])),
    params(("app_id" = String, Path, description = "app id (UUID)")),
    responses(
        (status = 200, description = "no longer published", body = Envelope<Empty>),
        (status = 400, description = "`fail`: the app is not published", body = ErrorEnvelope),
        (status = 401, description = "no valid access token", body = ErrorEnvelope),
        (status = 403, description = "the app belongs to another account", body = ErrorEnvelope),
        (status = 404, description = "no such app", body = ErrorEnvelope),
    ))]
async fn cancel_publish_app(
    State(state): State<AppState>,
    account: CurrentAccount,
    AppId(id): AppId,
) -> ApiResult<Empty> {
    owned_app(&state, &account, id).await?;
    if !apps::cancel_publish(&state.db, id, now_ms()).await? {
        return Err(ApiError::fail("the app is not published"));
    }
    Ok(Envelope::empty())
}

/// The debug conversation for the memory routes, after checking that the effective config
/// has long-term memory on.
async fn memory_conversation(
    state: &AppState,
    account: &CurrentAccount,
    id: Uuid,
) -> Result<Uuid, ApiError> {
    let detail = owned_app(state, account, id).await?;
    let memory_on = detail
        .effective_config()
        .is_some_and(|c| c.memory_mode == MemoryMode::LongTermMemory);
    if !memory_on {
        return Err(ApiError::fail(MEMORY_OFF));
    }
    message_store::ensure_debug_conversation(
        &state.db,
        id,
        account.id,
        detail.app.debug_conversation_id,
        now_ms(),
    )
    .await?
    .ok_or_else(|| ApiError::not_found(access::APP_NOT_FOUND))
}

/// Seed 1.3: the long-term memory of the app's debug conversation (created on first use).
#[utoipa::path(get, path = "/api/apps/{app_id}/long-term-memory", tag = "apps",
    security(("bearer" = [])),
    params(("app_id" = String, Path, description = "app id (UUID)")),
    responses(
        (status = 200, description = "the summary", body = Envelope<LongTermMemoryView>),
        (status = 400, description = "`fail`: the effective config's memory_mode is none", body = ErrorEnvelope),
        (status = 401, description = "no valid access token", body = ErrorEnvelope),
        (status = 403, description = "the app belongs to another account", body = ErrorEnvelope),
        (status = 404, description = "no such app", body = ErrorEnvelope),
    ))]
async fn get_long_term_memory(
    State(state): State<AppState>,
    account: CurrentAccount,
    AppId(id): AppId,
) -> ApiResult<LongTermMemoryView> {
    let conversation_id = memory_conversation(&state, &account, id).await?;
    let conversation = message_store::get_conversation(&state.db, conversation_id)
        .await?
        .ok_or_else(|| ApiError::not_found(access::APP_NOT_FOUND))?;
    Ok(Envelope::ok(LongTermMemoryView::from(conversation)))
}

/// Seed 1.4: replaces the long-term memory summary of the app's debug conversation.
#[utoipa::path(post, path = "/api/apps/{app_id}/long-term-memory", tag = "apps",
    security(("bearer" = [])),
    params(("app_id" = String, Path, description = "app id (UUID)")),
    request_body = UpdateMemoryRequest,
    responses(
        (status = 200, description = "`更新AI应用长记忆成功`", body = Envelope<Empty>),
        (status = 400, description = "`fail`: the effective config's memory_mode is none; or the body is not JSON", body = ErrorEnvelope),
        (status = 401, description = "no valid access token", body = ErrorEnvelope),
        (status = 403, description = "the app belongs to another account", body = ErrorEnvelope),
        (status = 404, description = "no such app", body = ErrorEnvelope),
        (status = 422, description = "summary missing or too long", body = ErrorEnvelope),
    ))]
async fn update_long_term_memory(
    State(state): State<AppState>,
    account: CurrentAccount,
    AppId(id): AppId,
    ApiJson(body): ApiJson<UpdateMemoryRequest>,
) -> ApiResult<Empty> {
    let summary = body.into_summary().map_err(ApiError::Validation)?;
    let conversation_id = memory_conversation(&state, &account, id).await?;
    message_store::set_summary(&state.db, conversation_id, &summary, now_ms()).await?;
    Ok(Envelope::message(MEMORY_UPDATED))
}
