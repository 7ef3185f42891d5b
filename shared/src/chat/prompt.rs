//! Prompt assembly for a debug chat (spec `llmops-api.md`, Debug chat, step 2) and the
//! long-term memory summarising request (step 4).
//!
//! The messages sent are, in order:
//! 1. `system`: the preset prompt, followed (with `long_term_memory` and a non-empty summary)
//!    by the conversation's summary; left out when both are empty;
//! 2. the last `dialog_round` answered rounds, oldest first, as `user` / `assistant` pairs;
//! 3. the new query as `user`.

use serde_json::{Value, json};

use super::config::{MemoryMode, ModelConfig};

/// Introduces the summary inside the system message.
pub const MEMORY_HEADING: &str = "Long-term memory (a summary of the earlier conversation):";

/// The summariser's instructions.
pub const SUMMARY_PROMPT: &str = "You keep the long-term memory of a conversation between a human \
and an AI assistant. Given the current summary and the newest exchange, write the updated summary: \
keep every lasting fact about the human (names, preferences, goals, decisions) and what was agreed, \
drop small talk, and answer with the summary only, in the language of the conversation, in at \
most 300 words.";

/// One earlier question and its answer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Round {
    pub query: String,
    pub answer: String,
}

/// The system message's text, if there is anything to say.
pub fn system_prompt(config: &ModelConfig, memory: MemoryMode, summary: &str) -> Option<String> {
    let preset = config.preset_prompt.trim();
    let summary = summary.trim();
    let with_summary = memory == MemoryMode::LongTermMemory && !summary.is_empty();
    match (preset.is_empty(), with_summary) {
        (true, false) => None,
        (false, false) => Some(preset.to_owned()),
        (true, true) => Some(format!("{MEMORY_HEADING}\n{summary}")),
        (false, true) => Some(format!("{preset}\n\n{MEMORY_HEADING}\n{summary}")),
    }
}

/// The chat messages for `query`. `history` is oldest first; only its last `dialog_round`
/// rounds are used.
pub fn chat_messages(
    config: &ModelConfig,
    memory: MemoryMode,
    summary: &str,
    history: &[Round],
    query: &str,
) -> Vec<Value> {
    let keep = (config.dialog_round as usize).min(history.len());
    let history = &history[history.len() - keep..];
    let mut messages = Vec::with_capacity(2 + 2 * history.len());
    if let Some(system) = system_prompt(config, memory, summary) {
        messages.push(json!({"role": "system", "content": system}));
    }
    for round in history {
        messages.push(json!({"role": "user", "content": round.query}));
        messages.push(json!({"role": "assistant", "content": round.answer}));
    }
    messages.push(json!({"role": "user", "content": query}));
    messages
}

/// The OpenAI request body for these messages (the client adds `stream` when streaming).
pub fn chat_request(config: &ModelConfig, messages: Vec<Value>) -> Value {
    let mut body = json!({
        "model": config.model,
        "messages": messages,
        "temperature": config.temperature,
    });
    if let Some(max_tokens) = config.max_tokens {
        body["max_tokens"] = json!(max_tokens);
    }
    body
}

/// The non-streaming request that folds a new round into the summary.
pub fn summary_request(config: &ModelConfig, summary: &str, query: &str, answer: &str) -> Value {
    let current = if summary.trim().is_empty() {
        "(empty)"
    } else {
        summary.trim()
    };
    json!({
        "model": config.model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": SUMMARY_PROMPT},
            {"role": "user", "content": format!(
                "Current summary:\n{current}\n\nNewest exchange:\nHuman: {query}\nAI: {answer}"
            )},
        ],
    })
}

/// A rough token count for answers whose provider reported no usage: every non-ASCII
/// character (CJK, mostly) counts one, every run of ASCII non-space characters one per four
/// characters, rounded up. Close enough for English and Chinese on OpenAI-style tokenizers;
/// an estimate, not a tokenizer.
pub fn estimate_tokens(text: &str) -> u64 {
    let mut tokens = 0u64;
    let mut run = 0u64;
    for c in text.chars() {
        if c.is_ascii() && !c.is_ascii_whitespace() {
            run += 1;
            continue;
        }
        tokens += run.div_ceil(4);
        run = 0;
        if !c.is_ascii() && !c.is_whitespace() {
            tokens += 1;
        }
    }
    tokens + run.div_ceil(4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dialog_round: u32, preset: &str) -> ModelConfig {
        ModelConfig {
            dialog_round,
            preset_prompt: preset.into(),
            ..ModelConfig::with_default_model("m")
        }
    }

    fn rounds(n: usize) -> Vec<Round> {
        (1..=n)
            .map(|i| Round {
                query: format!("q{i}"),
                answer: format!("a{i}"),
            })
            .collect()
    }

    fn contents(messages: &[Value]) -> Vec<String> {
        messages
            .iter()
            .map(|m| {
                format!(
                    "{}:{}",
                    m["role"].as_str().unwrap(),
                    m["content"].as_str().unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn the_last_dialog_round_rounds_are_sent_oldest_first_then_the_query() {
        let messages = chat_messages(
            &config(2, "be brief"),
            MemoryMode::None,
            "",
            &rounds(4),
            "q5",
        );
        assert_eq!(
            contents(&messages),
            [
                "system:be brief",
                "user:q3",
                "assistant:a3",
                "user:q4",
                "assistant:a4",
                "user:q5"
            ]
        );
    }

    #[test]
    fn zero_rounds_or_no_history_sends_only_the_query() {
        let messages = chat_messages(&config(0, ""), MemoryMode::None, "", &rounds(3), "hi");
        assert_eq!(contents(&messages), ["user:hi"]);
        let messages = chat_messages(&config(5, ""), MemoryMode::None, "", &[], "hi");
        assert_eq!(contents(&messages), ["user:hi"]);
        let messages = chat_messages(&config(5, ""), MemoryMode::None, "", &rounds(2), "hi");
        assert_eq!(messages.len(), 5, "fewer rounds than allowed: all of them");
    }

    #[test]
    fn the_summary_joins_the_system_prompt_only_with_long_term_memory() {
        let c = config(0, "You are kind.");
        assert_eq!(
            system_prompt(&c, MemoryMode::LongTermMemory, "likes tea").unwrap(),
            format!("You are kind.\n\n{MEMORY_HEADING}\nlikes tea")
        );
        assert_eq!(
            system_prompt(&c, MemoryMode::None, "likes tea").unwrap(),
            "You are kind."
        );
        assert_eq!(
            system_prompt(&c, MemoryMode::LongTermMemory, "  ").unwrap(),
            "You are kind."
        );
        let bare = config(0, "");
        assert_eq!(
            system_prompt(&bare, MemoryMode::LongTermMemory, "likes tea").unwrap(),
            format!("{MEMORY_HEADING}\nlikes tea")
        );
        assert_eq!(system_prompt(&bare, MemoryMode::LongTermMemory, ""), None);
    }

    #[test]
    fn the_request_carries_the_model_settings() {
        let mut c = config(0, "");
        let body = chat_request(&c, vec![json!({"role": "user", "content": "x"})]);
        assert_eq!(body["model"], "m");
        assert_eq!(body["temperature"], 1.0);
        assert!(body.get("max_tokens").is_none());
        c.max_tokens = Some(64);
        assert_eq!(chat_request(&c, vec![])["max_tokens"], 64);
    }

    #[test]
    fn the_summary_request_holds_the_old_summary_and_the_new_round() {
        let body = summary_request(&config(0, ""), "likes tea", "what is 2+2", "4");
        assert_eq!(body["messages"][0]["content"], SUMMARY_PROMPT);
        let user = body["messages"][1]["content"].as_str().unwrap();
        assert!(
            user.contains("likes tea")
                && user.contains("Human: what is 2+2")
                && user.contains("AI: 4")
        );
        let body = summary_request(&config(0, ""), "", "q", "a");
        assert!(
            body["messages"][1]["content"]
                .as_str()
                .unwrap()
                .contains("(empty)")
        );
        assert!(body.get("stream").is_none());
    }

    #[test]
    fn tokens_are_estimated_per_word_piece_and_per_cjk_character() {
        assert_eq!(estimate_tokens(""), 0);
        assert_eq!(estimate_tokens("Hi"), 1);
        assert_eq!(estimate_tokens("Hello, world"), 2 + 2);
        assert_eq!(estimate_tokens("你好，我是AI助手"), 7 + 1);
        assert_eq!(estimate_tokens("a  b\n c"), 3);
    }
}
