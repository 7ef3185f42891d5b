//! An app's config: `model_config` (the seed's `dialog_round` plus what a chat needs) and
//! `memory_mode`. The API changes a config with [`ModelConfig::apply`], which checks every
//! field it is given and keeps the others; the stored JSON is always a complete config.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Most earlier rounds a chat may carry.
pub const MAX_DIALOG_ROUND: u64 = 100;
/// Rounds carried by a new app.
pub const DEFAULT_DIALOG_ROUND: u32 = 3;
pub const MAX_TEMPERATURE: f64 = 2.0;
pub const DEFAULT_TEMPERATURE: f64 = 1.0;
/// Longest preset prompt, in characters.
pub const MAX_PRESET_PROMPT: usize = 2000;
pub const MAX_MODEL_NAME: usize = 100;
/// Largest `max_tokens` accepted (providers cap lower; this only rejects nonsense).
pub const MAX_MAX_TOKENS: u64 = 1_000_000;

/// A validation problem: the field (`model_config.temperature`) and what is wrong with it.
pub type FieldProblem = (String, String);

crate::named_enum! {
    /// How a chat remembers earlier conversation beyond the last `dialog_round` rounds.
    pub enum MemoryMode("memory mode") {
        /// A running summary of the conversation goes into the system prompt and is updated
        /// after every answered round.
        LongTermMemory = "long_term_memory",
        None = "none",
    }
}

impl utoipa::PartialSchema for MemoryMode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some([Self::LongTermMemory.as_str(), Self::None.as_str()]))
            .into()
    }
}

impl ToSchema for MemoryMode {}

impl MemoryMode {
    pub const DEFAULT: MemoryMode = MemoryMode::None;

    /// Parses a requested name, with the message a caller sees.
    pub fn parse(raw: &str) -> Result<Self, String> {
        raw.parse()
            .map_err(|_| "memory_mode must be `long_term_memory` or `none`".to_owned())
    }

    /// Parses a JSON value from a request.
    pub fn from_json(value: &Value) -> Result<Self, String> {
        value
            .as_str()
            .ok_or_else(|| "memory_mode must be `long_term_memory` or `none`".to_owned())
            .and_then(Self::parse)
    }
}

/// The model settings of an app config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ModelConfig {
    /// Earlier question/answer rounds sent with a new query, 0–100.
    pub dialog_round: u32,
    /// Model name passed to the provider; default: the server's `LLMOPS_LLM_MODEL`.
    pub model: String,
    /// Sampling temperature, 0–2.
    pub temperature: f64,
    /// Upper bound of the answer's tokens; `null` leaves it to the provider.
    pub max_tokens: Option<u32>,
    /// The system prompt, at most 2000 characters.
    pub preset_prompt: String,
}

impl ModelConfig {
    /// The config of a new app.
    pub fn with_default_model(model: &str) -> Self {
        Self {
            dialog_round: DEFAULT_DIALOG_ROUND,
            model: model.to_owned(),
            temperature: DEFAULT_TEMPERATURE,
            max_tokens: None,
            preset_prompt: String::new(),
        }
    }

    /// Reads a stored config; fields missing from older rows take the defaults.
    pub fn from_stored(value: &Value, default_model: &str) -> Self {
        let mut config = Self::with_default_model(default_model);
        if let Some(map) = value.as_object()
            && let Ok(parsed) = config.apply(map)
        {
            config = parsed;
        }
        config
    }

    /// This config with the given changes, each checked. Fields not given keep their values;
    /// `max_tokens: null` clears the limit. Every problem is reported, named
    /// `model_config.<field>`.
    pub fn apply(&self, changes: &Map<String, Value>) -> Result<Self, Vec<FieldProblem>> {
        let mut next = self.clone();
        let mut problems = Vec::new();
        let mut problem = |field: &str, message: String| {
            problems.push((format!("model_config.{field}"), message));
        };
        for (field, value) in changes {
            match field.as_str() {
                "dialog_round" => match value.as_u64() {
                    Some(n) if n <= MAX_DIALOG_ROUND => next.dialog_round = n as u32,
                    _ => problem(
                        field,
                        format!(
                            "model_config.dialog_round must be an integer from 0 to {MAX_DIALOG_ROUND}"
                        ),
                    ),
                },
                "model" => match value.as_str().map(str::trim) {
                    Some(name) if !name.is_empty() && name.chars().count() <= MAX_MODEL_NAME => {
                        next.model = name.to_owned();
                    }
                    _ => problem(
                        field,
                        format!(
                            "model_config.model must be a model name of 1 to {MAX_MODEL_NAME} characters"
                        ),
                    ),
                },
                "temperature" => match value.as_f64() {
                    Some(t) if (0.0..=MAX_TEMPERATURE).contains(&t) => next.temperature = t,
                    _ => problem(
                        field,
                        "model_config.temperature must be a number from 0 to 2".into(),
                    ),
                },
                "max_tokens" => match value {
                    Value::Null => next.max_tokens = None,
                    _ => match value.as_u64() {
                        Some(n) if (1..=MAX_MAX_TOKENS).contains(&n) => {
                            next.max_tokens = Some(n as u32);
                        }
                        _ => problem(
                            field,
                            format!(
                                "model_config.max_tokens must be null or an integer from 1 to {MAX_MAX_TOKENS}"
                            ),
                        ),
                    },
                },
                "preset_prompt" => match value.as_str() {
                    Some(text) if text.chars().count() <= MAX_PRESET_PROMPT => {
                        next.preset_prompt = text.to_owned();
                    }
                    Some(_) => problem(
                        field,
                        format!(
                            "model_config.preset_prompt must be at most {MAX_PRESET_PROMPT} characters"
                        ),
                    ),
                    None => problem(field, "model_config.preset_prompt must be a string".into()),
                },
                other => problem(
                    other,
                    format!("model_config.{other} is not an accepted field"),
                ),
            }
        }
        if problems.is_empty() {
            Ok(next)
        } else {
            Err(problems)
        }
    }

    /// The stored form.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn base() -> ModelConfig {
        ModelConfig::with_default_model("gpt-4o-mini")
    }

    fn apply(changes: Value) -> Result<ModelConfig, Vec<FieldProblem>> {
        base().apply(changes.as_object().unwrap())
    }

    #[test]
    fn a_new_config_has_every_field_with_its_default() {
        assert_eq!(
            base().to_json(),
            json!({"dialog_round": 3, "model": "gpt-4o-mini", "temperature": 1.0,
                   "max_tokens": null, "preset_prompt": ""})
        );
    }

    #[test]
    fn given_fields_change_and_the_others_stay() {
        let c = apply(
            json!({"dialog_round": 0, "temperature": 2, "max_tokens": 512,
                              "preset_prompt": "你是一个助手", "model": " m1 "}),
        )
        .unwrap();
        assert_eq!(
            (
                c.dialog_round,
                c.temperature,
                c.max_tokens,
                c.model.as_str()
            ),
            (0, 2.0, Some(512), "m1")
        );
        assert_eq!(c.preset_prompt, "你是一个助手");
        let d = c
            .apply(json!({"max_tokens": null}).as_object().unwrap())
            .unwrap();
        assert_eq!(d.max_tokens, None);
        assert_eq!(d.dialog_round, 0);
        assert_eq!(apply(json!({})).unwrap(), base());
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases = [
            (json!({"dialog_round": 101}), "model_config.dialog_round"),
            (json!({"dialog_round": -1}), "model_config.dialog_round"),
            (json!({"dialog_round": 1.5}), "model_config.dialog_round"),
            (json!({"dialog_round": "3"}), "model_config.dialog_round"),
            (json!({"temperature": 2.01}), "model_config.temperature"),
            (json!({"temperature": -0.1}), "model_config.temperature"),
            (json!({"temperature": "hot"}), "model_config.temperature"),
            (json!({"max_tokens": 0}), "model_config.max_tokens"),
            (json!({"max_tokens": "many"}), "model_config.max_tokens"),
            (json!({"model": ""}), "model_config.model"),
            (json!({"model": 5}), "model_config.model"),
            (
                json!({"preset_prompt": "x".repeat(2001)}),
                "model_config.preset_prompt",
            ),
            (json!({"preset_prompt": null}), "model_config.preset_prompt"),
            (json!({"top_k": 3}), "model_config.top_k"),
        ];
        for (changes, field) in cases {
            let problems = apply(changes.clone()).unwrap_err();
            assert_eq!(problems.len(), 1, "{changes}");
            assert_eq!(problems[0].0, field, "{changes}");
            assert!(
                problems[0].1.starts_with(field),
                "{changes}: {}",
                problems[0].1
            );
        }
        let problems = apply(json!({"dialog_round": 500, "temperature": 9})).unwrap_err();
        assert_eq!(problems.len(), 2);
        assert!(apply(json!({"preset_prompt": "字".repeat(2000)})).is_ok());
    }

    #[test]
    fn stored_configs_fill_in_missing_fields() {
        let c = ModelConfig::from_stored(&json!({"dialog_round": 7}), "m");
        assert_eq!((c.dialog_round, c.model.as_str()), (7, "m"));
        assert_eq!(
            ModelConfig::from_stored(&Value::Null, "m"),
            ModelConfig::with_default_model("m")
        );
    }

    #[test]
    fn memory_modes_parse_from_their_names() {
        assert_eq!(
            MemoryMode::parse("long_term_memory"),
            Ok(MemoryMode::LongTermMemory)
        );
        assert_eq!(MemoryMode::from_json(&json!("none")), Ok(MemoryMode::None));
        assert!(MemoryMode::from_json(&json!("short")).is_err());
        assert!(MemoryMode::from_json(&json!(1)).is_err());
        assert_eq!(MemoryMode::LongTermMemory.as_str(), "long_term_memory");
    }
}
