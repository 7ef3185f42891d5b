//! What the app routes answer. Times are Unix seconds (the store keeps milliseconds).

use serde::Serialize;
use shared::{
    chat::{MemoryMode, ModelConfig},
    store::{
        apps::{App, AppConfig, AppDetail, AppListItem, ConfigStatus},
        messages::{Conversation, Message, MessageStatus},
    },
};
use utoipa::ToSchema;
use uuid::Uuid;

fn secs(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApp {
    pub id: Uuid,
}

/// A config as seed 1.1 shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppConfigView {
    pub id: Uuid,
    pub model_config: ModelConfig,
    /// `long_term_memory` or `none`.
    #[schema(example = "long_term_memory")]
    pub memory_mode: MemoryMode,
    /// `drafted` or `published`.
    #[schema(value_type = String, example = "drafted")]
    pub status: ConfigStatus,
    pub created_at: i64,
    pub updated_at: i64,
}

impl AppConfigView {
    fn new(config: AppConfig, default_model: &str) -> Self {
        Self {
            id: config.id,
            model_config: ModelConfig::from_stored(&config.model_config.0, default_model),
            memory_mode: config.memory_mode,
            status: config.status,
            created_at: secs(config.created_at),
            updated_at: secs(config.updated_at),
        }
    }
}

/// Seed 1.1, field for field.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppView {
    pub id: Uuid,
    pub name: String,
    pub icon: String,
    pub description: String,
    pub published_app_config_id: Option<Uuid>,
    pub drafted_app_config_id: Option<Uuid>,
    pub debug_conversation_id: Option<Uuid>,
    pub published_app_config: Option<AppConfigView>,
    pub drafted_app_config: Option<AppConfigView>,
    pub updated_at: i64,
    pub created_at: i64,
}

impl AppView {
    pub fn new(detail: AppDetail, default_model: &str) -> Self {
        let AppDetail {
            app,
            drafted,
            published,
        } = detail;
        Self {
            id: app.id,
            name: app.name,
            icon: app.icon,
            description: app.description,
            published_app_config_id: published.as_ref().map(|c| c.id),
            drafted_app_config_id: drafted.as_ref().map(|c| c.id),
            debug_conversation_id: app.debug_conversation_id,
            published_app_config: published.map(|c| AppConfigView::new(c, default_model)),
            drafted_app_config: drafted.map(|c| AppConfigView::new(c, default_model)),
            updated_at: secs(app.updated_at),
            created_at: secs(app.created_at),
        }
    }
}

/// An app of the listing: seed 1.1 without the two embedded configs.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppListItemView {
    pub id: Uuid,
    pub name: String,
    pub icon: String,
    pub description: String,
    pub published_app_config_id: Option<Uuid>,
    pub drafted_app_config_id: Option<Uuid>,
    pub debug_conversation_id: Option<Uuid>,
    pub updated_at: i64,
    pub created_at: i64,
}

impl From<AppListItem> for AppListItemView {
    fn from(item: AppListItem) -> Self {
        let App {
            id,
            name,
            icon,
            description,
            debug_conversation_id,
            created_at,
            updated_at,
            ..
        } = item.app;
        Self {
            id,
            name,
            icon,
            description,
            published_app_config_id: item.published_app_config_id,
            drafted_app_config_id: item.drafted_app_config_id,
            debug_conversation_id,
            updated_at: secs(updated_at),
            created_at: secs(created_at),
        }
    }
}

/// Seed 1.3 (as the spec states it): the debug conversation's summary.
#[derive(Debug, Serialize, ToSchema)]
pub struct LongTermMemoryView {
    pub summary: String,
    pub conversation_id: Uuid,
    /// When the summary last changed, Unix seconds.
    pub updated_at: i64,
}

impl From<Conversation> for LongTermMemoryView {
    fn from(c: Conversation) -> Self {
        Self {
            summary: c.summary,
            conversation_id: c.id,
            updated_at: secs(c.summary_updated_at),
        }
    }
}

/// A debug message: seed 1.5's fields plus its `status` and, for a failed answer, `error`.
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageView {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub query: String,
    pub answer: String,
    /// The completion's tokens.
    pub answer_tokens: i64,
    /// The prompt's tokens (as the provider reported them, else estimated).
    pub prompt_tokens: i64,
    pub total_tokens: i64,
    /// Milliseconds from the worker's start to the last token.
    #[schema(example = 812.5)]
    pub response_latency: f64,
    /// `pending`, `streaming`, `normal`, `error` or `stopped`.
    #[schema(value_type = String, example = "normal")]
    pub status: MessageStatus,
    /// Why the answer failed; `""` otherwise.
    pub error: String,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Message> for MessageView {
    fn from(m: Message) -> Self {
        Self {
            id: m.id,
            conversation_id: m.conversation_id,
            query: m.query,
            answer: m.answer,
            answer_tokens: m.answer_tokens,
            prompt_tokens: m.prompt_tokens,
            total_tokens: m.total_tokens,
            response_latency: m.response_latency,
            status: m.status,
            error: m.error,
            created_at: secs(m.created_at),
            updated_at: secs(m.updated_at),
        }
    }
}
