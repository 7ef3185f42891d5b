//! Request bodies of the app routes and their rules. Each DTO refuses unknown fields; each
//! rule reports its field by name, all problems at once.

use axum::http::Uri;
use serde::Deserialize;
use serde_json::Value;
use shared::chat::{MemoryMode, ModelConfig};
use utoipa::{IntoParams, ToSchema};

use crate::error::FieldErrors;

pub const MAX_NAME: usize = 40;
pub const MAX_DESCRIPTION: usize = 800;
pub const MAX_ICON: usize = 2048;
pub const MAX_QUERY: usize = 2000;
pub const MAX_SUMMARY: usize = shared::chat::MAX_SUMMARY_CHARS;
/// Longest `search_word`, in characters. Names have at most [`MAX_NAME`], so a longer word
/// finds nothing anyway; without a limit, a huge word made a `LIKE` pattern that SQLite refuses
/// ("pattern too complex", over 50,000 bytes) and that costs Postgres a scan per character.
pub const MAX_SEARCH_WORD: usize = 100;

/// An app name: trimmed, 1–40 characters.
fn parse_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("name is required".into());
    }
    if name.chars().count() > MAX_NAME {
        return Err(format!("name must be at most {MAX_NAME} characters"));
    }
    Ok(name.to_owned())
}

/// An icon: an absolute http(s) URL.
fn parse_icon(raw: &str) -> Result<String, String> {
    let icon = raw.trim();
    if icon.is_empty() {
        return Err("icon is required".into());
    }
    let valid = icon.len() <= MAX_ICON
        && !icon.contains(char::is_whitespace)
        && icon.parse::<Uri>().is_ok_and(|uri| {
            matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.host().is_some_and(|h| !h.is_empty())
        });
    if valid {
        Ok(icon.to_owned())
    } else {
        Err("icon must be an http or https URL".into())
    }
}

/// A description: at most 800 characters.
fn parse_description(raw: &str) -> Result<String, String> {
    let description = raw.trim();
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(format!(
            "description must be at most {MAX_DESCRIPTION} characters"
        ));
    }
    Ok(description.to_owned())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAppRequest {
    /// 1–40 characters.
    #[schema(required = true, example = "LLMOps助手")]
    pub name: Option<String>,
    /// An http(s) URL of the app's icon.
    #[schema(required = true, example = "https://a.com/111.png")]
    pub icon: Option<String>,
    /// At most 800 characters; default `""`.
    #[schema(example = "回答LLMOps问题的应用")]
    pub description: Option<String>,
}

/// A create request that passed every rule.
pub struct NewAppFields {
    pub name: String,
    pub icon: String,
    pub description: String,
}

impl TryFrom<CreateAppRequest> for NewAppFields {
    type Error = FieldErrors;

    fn try_from(body: CreateAppRequest) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = errors.check("name", parse_name(body.name.as_deref().unwrap_or_default()));
        let icon = errors.check("icon", parse_icon(body.icon.as_deref().unwrap_or_default()));
        let description = errors.check(
            "description",
            parse_description(body.description.as_deref().unwrap_or_default()),
        );
        match (name, icon, description) {
            (Some(name), Some(icon), Some(description)) => Ok(Self {
                name,
                icon,
                description,
            }),
            _ => Err(errors),
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAppRequest {
    /// 1–40 characters; absent or `null` keeps the name.
    pub name: Option<String>,
    /// An http(s) URL; absent or `null` keeps the icon.
    pub icon: Option<String>,
    /// At most 800 characters; absent or `null` keeps the description.
    pub description: Option<String>,
}

/// An update that passed every rule; `None` keeps a field.
#[derive(Debug, Default)]
pub struct AppUpdate {
    pub name: Option<String>,
    pub icon: Option<String>,
    pub description: Option<String>,
}

impl TryFrom<UpdateAppRequest> for AppUpdate {
    type Error = FieldErrors;

    fn try_from(body: UpdateAppRequest) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let update = AppUpdate {
            name: body
                .name
                .and_then(|raw| errors.check("name", parse_name(&raw))),
            icon: body
                .icon
                .and_then(|raw| errors.check("icon", parse_icon(&raw))),
            description: body
                .description
                .and_then(|raw| errors.check("description", parse_description(&raw))),
        };
        if errors.is_empty() {
            Ok(update)
        } else {
            Err(errors)
        }
    }
}

/// Seed 1.2. Both fields are required; `model_config` replaces the draft's: a field not
/// given takes its default (the model: the server's `LLMOPS_LLM_MODEL`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfigRequest {
    /// `{dialog_round (0–100), model, temperature (0–2), max_tokens (null or ≥ 1),
    /// preset_prompt (≤ 2000 characters)}`, any subset; the others take their defaults.
    #[schema(required = true, value_type = Object, example = json!({"dialog_round": 3}))]
    pub model_config: Option<Value>,
    /// `long_term_memory` or `none`.
    #[schema(required = true, value_type = String, example = "long_term_memory")]
    pub memory_mode: Option<Value>,
}

impl UpdateConfigRequest {
    /// The new draft: `defaults` with the given fields.
    pub fn into_config(
        self,
        defaults: &ModelConfig,
    ) -> Result<(ModelConfig, MemoryMode), FieldErrors> {
        let mut errors = FieldErrors::new();
        let config = match self.model_config {
            None | Some(Value::Null) => {
                errors.add("model_config", "model_config is required");
                None
            }
            Some(Value::Object(changes)) => match defaults.apply(&changes) {
                Ok(config) => Some(config),
                Err(problems) => {
                    for (field, message) in problems {
                        errors.add(field, message);
                    }
                    None
                }
            },
            Some(_) => {
                errors.add("model_config", "model_config must be a JSON object");
                None
            }
        };
        let memory = match self.memory_mode {
            None | Some(Value::Null) => {
                errors.add("memory_mode", "memory_mode is required");
                None
            }
            Some(value) => errors.check("memory_mode", MemoryMode::from_json(&value)),
        };
        match (config, memory) {
            (Some(config), Some(memory)) if errors.is_empty() => Ok((config, memory)),
            _ => Err(errors),
        }
    }
}

/// Seed 1.4.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMemoryRequest {
    /// The new summary, at most 10,000 characters (`""` clears it).
    #[schema(required = true, example = "这是一个长记忆的总结信息")]
    pub summary: Option<String>,
}

impl UpdateMemoryRequest {
    pub fn into_summary(self) -> Result<String, FieldErrors> {
        match self.summary {
            None => Err(FieldErrors::single("summary", "summary is required")),
            Some(s) if s.chars().count() > MAX_SUMMARY => Err(FieldErrors::single(
                "summary",
                format!("summary must be at most {MAX_SUMMARY} characters"),
            )),
            Some(s) => Ok(s.trim().to_owned()),
        }
    }
}

/// Seed 1.5.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DebugRequest {
    /// The question, 1–2000 characters.
    #[schema(required = true, example = "你好")]
    pub query: Option<String>,
}

impl DebugRequest {
    pub fn into_query(self) -> Result<String, FieldErrors> {
        parse_query("query", self.query).map_err(|m| FieldErrors::single("query", m))
    }
}

/// A chat question: 1–2000 characters, not blank (the service API's rule too); `field`
/// names it in the message.
pub fn parse_query(field: &str, raw: Option<String>) -> Result<String, String> {
    let query = raw.unwrap_or_default();
    if query.trim().is_empty() {
        return Err(format!("{field} is required"));
    }
    if query.chars().count() > MAX_QUERY {
        return Err(format!("{field} must be at most {MAX_QUERY} characters"));
    }
    Ok(query)
}

/// `search_word` of the app listing (the page parameters are read by `Pagination`).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Only apps whose name contains this, ignoring case (at most 100 characters).
    pub search_word: Option<String>,
}

impl SearchParams {
    /// The trimmed word; `None` when absent or blank.
    pub fn word(&self) -> Result<Option<&str>, FieldErrors> {
        let word = self
            .search_word
            .as_deref()
            .map(str::trim)
            .filter(|w| !w.is_empty());
        match word {
            Some(w) if w.chars().count() > MAX_SEARCH_WORD => Err(FieldErrors::single(
                "search_word",
                format!("search_word must be at most {MAX_SEARCH_WORD} characters"),
            )),
            word => Ok(word),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn create(
        name: Option<&str>,
        icon: Option<&str>,
        description: Option<&str>,
    ) -> CreateAppRequest {
        CreateAppRequest {
            name: name.map(Into::into),
            icon: icon.map(Into::into),
            description: description.map(Into::into),
        }
    }

    #[test]
    fn a_good_app_is_trimmed() {
        let app = NewAppFields::try_from(create(Some("  Bot "), Some("https://a.com/1.png"), None))
            .unwrap();
        assert_eq!((app.name.as_str(), app.description.as_str()), ("Bot", ""));
        assert!(
            NewAppFields::try_from(create(
                Some(&"名".repeat(40)),
                Some("http://x.io/a"),
                Some(&"d".repeat(800))
            ))
            .is_ok()
        );
    }

    #[test]
    fn every_broken_app_field_is_reported() {
        let errors = NewAppFields::try_from(create(None, None, Some(&"d".repeat(801))))
            .err()
            .unwrap();
        assert_eq!(errors.get("name").unwrap(), ["name is required"]);
        assert_eq!(errors.get("icon").unwrap(), ["icon is required"]);
        assert!(errors.get("description").unwrap()[0].contains("800"));
        for icon in [
            "not a url",
            "ftp://a.com/x.png",
            "/relative.png",
            "https://",
            "https://a.com/a b.png",
        ] {
            let errors = NewAppFields::try_from(create(Some("a"), Some(icon), None))
                .err()
                .unwrap();
            assert_eq!(
                errors.get("icon").unwrap(),
                ["icon must be an http or https URL"],
                "{icon}"
            );
        }
        let errors =
            NewAppFields::try_from(create(Some(&"n".repeat(41)), Some("https://a.com"), None))
                .err()
                .unwrap();
        assert!(errors.get("name").unwrap()[0].contains("40"));
    }

    #[test]
    fn an_update_checks_only_given_fields() {
        let update = AppUpdate::try_from(UpdateAppRequest::default()).unwrap();
        assert!(update.name.is_none() && update.icon.is_none() && update.description.is_none());
        let errors = AppUpdate::try_from(UpdateAppRequest {
            name: Some(" ".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(errors.get("name").unwrap(), ["name is required"]);
    }

    #[test]
    fn a_config_update_needs_both_fields_and_names_nested_problems() {
        let current = ModelConfig::with_default_model("m");
        let request =
            |model_config: Option<Value>, memory_mode: Option<Value>| UpdateConfigRequest {
                model_config,
                memory_mode,
            };
        let (config, memory) = request(
            Some(json!({"dialog_round": 5})),
            Some(json!("long_term_memory")),
        )
        .into_config(&current)
        .unwrap();
        assert_eq!(
            (config.dialog_round, memory),
            (5, MemoryMode::LongTermMemory)
        );
        let errors = request(None, None).into_config(&current).unwrap_err();
        assert!(errors.get("model_config").is_some() && errors.get("memory_mode").is_some());
        let errors = request(Some(json!([1])), Some(json!("sometimes")))
            .into_config(&current)
            .unwrap_err();
        assert_eq!(
            errors.get("model_config").unwrap(),
            ["model_config must be a JSON object"]
        );
        assert!(errors.get("memory_mode").is_some());
        let errors = request(
            Some(json!({"dialog_round": 101, "temperature": 3})),
            Some(json!("none")),
        )
        .into_config(&current)
        .unwrap_err();
        assert!(errors.get("model_config.dialog_round").is_some());
        assert!(errors.get("model_config.temperature").is_some());
    }

    #[test]
    fn search_words_are_trimmed_and_limited() {
        let word = |w: Option<&str>| {
            SearchParams {
                search_word: w.map(Into::into),
            }
            .word()
            .map(|w| w.map(str::to_owned))
        };
        assert_eq!(word(None).unwrap(), None);
        assert_eq!(word(Some("  ")).unwrap(), None);
        assert_eq!(word(Some(" 50% ")).unwrap().as_deref(), Some("50%"));
        assert!(word(Some(&"词".repeat(MAX_SEARCH_WORD))).is_ok());
        let errors = word(Some(&"x".repeat(50_000))).unwrap_err();
        assert_eq!(
            errors.get("search_word").unwrap(),
            ["search_word must be at most 100 characters"]
        );
    }

    #[test]
    fn queries_and_summaries_have_limits() {
        let q = |s: Option<&str>| {
            DebugRequest {
                query: s.map(Into::into),
            }
            .into_query()
        };
        assert_eq!(q(Some("你好")).unwrap(), "你好");
        assert!(q(None).is_err() && q(Some("  ")).is_err());
        assert!(q(Some(&"字".repeat(2000))).is_ok());
        assert!(q(Some(&"字".repeat(2001))).is_err());
        let s = |s: Option<&str>| {
            UpdateMemoryRequest {
                summary: s.map(Into::into),
            }
            .into_summary()
        };
        assert_eq!(s(Some("")).unwrap(), "");
        assert!(s(None).is_err());
        assert!(s(Some(&"x".repeat(10_001))).is_err());
    }
}
