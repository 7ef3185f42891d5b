//! Answers one chat message, from the debug chat (spec `llmops-api.md`, Debug chat, steps 2–5)
//! or the service API of a published app alike: claim it, assemble the prompt (preset prompt,
//! long-term summary, the last `dialog_round` answered rounds — or the rounds the request
//! carried, for the OpenAI-compatible endpoint — and the query), stream the answer from the
//! OpenAI-compatible provider, store answer, token usage and latency, fold the round into the
//! summary when long-term memory is on, then publish the final event that the waiting API
//! request is listening for. The message row holds the config to answer with (the draft for
//! a debug chat, the published config for the service API), so this job never chooses.
//!
//! Stop arrives as a signal from any API replica: the provider stream is dropped (closing its
//! connection) and the partial answer is stored as `stopped`. A provider failure is stored as
//! `error` with its reason; the question itself is never lost. The job errs (and is retried)
//! only when the store fails.

use std::time::{Duration, Instant};

use apalis::prelude::*;
use futures::StreamExt;
use shared::{
    chat::{
        self, ChatEvent, MemoryMode, ModelConfig, NO_PROVIDER,
        prompt::{chat_messages, chat_request, estimate_tokens, summary_request},
    },
    llm::{ChatChunk, Usage},
    queue::AnswerMessage,
    signals::{Signals, Subscription, channel},
    store::{
        messages::{self, AnswerOutcome, Message, MessageStatus, MessageToAnswer},
        now_ms,
    },
};
use tokio::sync::mpsc;
use tracing::Instrument;
use uuid::Uuid;

use super::JobError;
use crate::state::WorkerState;

pub async fn answer_message(
    job: AnswerMessage,
    state: Data<WorkerState>,
) -> Result<(), BoxDynError> {
    // One span per chat message, in the asking request's trace when traces are exported.
    let span = tracing::info_span!("chat", message_id = %job.message_id);
    shared::telemetry::continue_trace(&span, job.traceparent.as_deref());
    execute(job, &state).instrument(span).await.map_err(|e| {
        tracing::error!(error = %e, "chat answer job failed");
        e.into()
    })
}

/// How the provider call ended.
enum End {
    Completed(Option<Usage>),
    Stopped,
    Failed(String),
}

/// What the provider produced.
struct Generated {
    answer: String,
    /// When the last piece of the answer arrived.
    last_token: Option<Instant>,
    /// The prompt's estimated tokens, for when the provider reports no usage.
    prompt_estimate: u64,
    end: End,
}

/// One unit of work, callable without apalis.
pub async fn execute(job: AnswerMessage, state: &WorkerState) -> Result<(), JobError> {
    let started = Instant::now();
    let id = job.message_id;
    let db = &state.db;
    // Subscribe before claiming: a stop published after the claim is then seen, and one
    // stored before it comes back in the claim's `stop_requested`.
    let mut stop = state.signals.subscribe(&channel::message_stop(id)).await?;
    let Some(message) = messages::start_answer(db, id, now_ms()).await? else {
        tracing::debug!("message is not answerable (unknown or final); job dropped");
        announce_final(state, id).await?;
        return Ok(());
    };
    if message.attempt == 1 {
        super::record_pickup("chat", message.created_at);
    }
    let config = ModelConfig::from_stored(&message.model_config.0, &state.config.llm_model);
    let memory = message.memory_mode;

    // With long-term memory: the provider and the summary the prompt used, to fold the
    // answered round into afterwards.
    let mut memory_update = None;
    let generated = if message.stop_requested {
        Generated::ended(End::Stopped)
    } else if let Some(base_url) = chat::provider_base_url(&state.config) {
        let summary = match memory {
            MemoryMode::LongTermMemory => {
                messages::get_summary(db, message.conversation_id).await?
            }
            MemoryMode::None => String::new(),
        };
        let history = match &message.history {
            Some(rounds) => rounds.0.clone(),
            None => {
                messages::recent_rounds(
                    db,
                    message.conversation_id,
                    message.id,
                    message.created_at,
                    i64::from(config.dialog_round),
                )
                .await?
            }
        };
        let prompt = chat_messages(&config, memory, &summary, &history, &message.query);
        let prompt_estimate = estimate_prompt_tokens(&prompt);
        let body = chat_request(&config, prompt);
        let mut generated = generate(state, base_url, body, &message, &mut stop).await;
        generated.prompt_estimate = prompt_estimate;
        if memory == MemoryMode::LongTermMemory {
            memory_update = Some((base_url, summary));
        }
        generated
    } else {
        Generated::ended(End::Failed(NO_PROVIDER.to_owned()))
    };
    drop(stop);

    let latency = latency_ms(started, generated.last_token);
    // Stored before summarising, so that the answer is kept whatever happens next.
    let Some(stored) = store_outcome(state, &message, &generated, latency).await? else {
        return Ok(());
    };
    let outcome = match &generated.end {
        End::Completed(_) => "completed",
        End::Stopped => "stopped",
        End::Failed(_) => "failed",
    };
    metrics::counter!(shared::metrics::CHATS, "outcome" => outcome).increment(1);
    let event = match generated.end {
        End::Completed(_) => {
            if let Some((base_url, summary)) = memory_update {
                remember(
                    state,
                    base_url,
                    &config,
                    &message,
                    &summary,
                    &generated.answer,
                )
                .await;
            }
            ChatEvent::MessageEnd {
                stored: Some(stored),
            }
        }
        End::Stopped => ChatEvent::Stopped {
            stored: Some(stored),
        },
        End::Failed(reason) => ChatEvent::Error { message: reason },
    };
    publish_final(state, id, &event).await;
    Ok(())
}

impl Generated {
    fn ended(end: End) -> Self {
        Self {
            answer: String::new(),
            last_token: None,
            prompt_estimate: 0,
            end,
        }
    }
}

/// Streams the answer, publishing deltas when the caller streams, until the provider ends,
/// fails, or a stop arrives (which drops the stream and so closes the provider connection).
async fn generate(
    state: &WorkerState,
    base_url: &str,
    body: serde_json::Value,
    message: &MessageToAnswer,
    stop: &mut Subscription,
) -> Generated {
    let api_key = state
        .config
        .llm_api_key
        .as_ref()
        .map_or("", |key| key.expose());
    let mut generated = Generated::ended(End::Completed(None));
    // The stop signal is a fast path; the store's flag is read too, when the signal bus
    // drops or comes back and every few seconds, so a lost signal still stops the answer.
    let mut checks = state.signals.store_checks();
    let connect = state.llm.chat_stream(base_url, api_key, body);
    tokio::pin!(connect);
    let mut stream = loop {
        tokio::select! {
            connected = &mut connect => match connected {
                Ok(stream) => break stream,
                Err(e) => {
                    generated.end = End::Failed(e.to_string());
                    return generated;
                }
            },
            Some(_) = stop.next() => {
                generated.end = End::Stopped;
                return generated;
            }
            _ = checks.due() => {
                if stop_stored(state, message.id).await {
                    generated.end = End::Stopped;
                    return generated;
                }
            }
        }
    };
    let relay = message
        .stream_deltas
        .then(|| DeltaRelay::start(state.signals.clone(), message.id));
    let mut usage = None;
    generated.end = loop {
        tokio::select! {
            chunk = stream.next() => match chunk {
                Some(Ok(ChatChunk::Delta(delta))) => {
                    generated.last_token = Some(Instant::now());
                    generated.answer.push_str(&delta);
                    if let Some(relay) = &relay {
                        relay.send(delta);
                    }
                }
                Some(Ok(ChatChunk::Usage(u))) => usage = Some(u),
                Some(Err(e)) => break End::Failed(e.to_string()),
                None => break End::Completed(usage.take()),
            },
            Some(_) = stop.next() => {
                tracing::info!("stop requested; closing the provider stream");
                break End::Stopped;
            }
            _ = checks.due() => {
                if stop_stored(state, message.id).await {
                    tracing::info!("stop requested (seen in the store); closing the provider stream");
                    break End::Stopped;
                }
            }
        }
    };
    drop(stream);
    if let Some(relay) = relay {
        // Every delta goes out before the final event.
        relay.finish().await;
    }
    generated
}

/// Whether a stop of the message is recorded in the store (a read error counts as no).
async fn stop_stored(state: &WorkerState, id: Uuid) -> bool {
    messages::stop_requested(&state.db, id)
        .await
        .inspect_err(|error| tracing::warn!(%error, "could not read the stop flag"))
        .unwrap_or(false)
}

/// Publishes a chat's answer deltas in order from a task of its own, so that reading the
/// provider never waits on the signal bus; deltas that arrive while one is being published
/// go out together as the next one.
struct DeltaRelay {
    tx: mpsc::UnboundedSender<String>,
    task: tokio::task::JoinHandle<()>,
}

impl DeltaRelay {
    fn start(signals: Signals, id: Uuid) -> Self {
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        let task = tokio::spawn(async move {
            while let Some(mut delta) = rx.recv().await {
                while let Ok(more) = rx.try_recv() {
                    delta.push_str(&more);
                }
                let event = ChatEvent::AnswerDelta { delta };
                if let Err(e) = signals.publish_chat_event(id, &event).await {
                    tracing::warn!(error = %e, "could not publish an answer delta");
                }
            }
        });
        Self { tx, task }
    }

    fn send(&self, delta: String) {
        let _ = self.tx.send(delta);
    }

    async fn finish(self) {
        drop(self.tx);
        let _ = self.task.await;
    }
}

/// Milliseconds from the job's start to the last token (or to now, without any).
fn latency_ms(started: Instant, last_token: Option<Instant>) -> f64 {
    let end = last_token.unwrap_or_else(Instant::now);
    let elapsed: Duration = end.saturating_duration_since(started);
    (elapsed.as_secs_f64() * 1e6).round() / 1e3
}

/// Writes the outcome. `None` when a newer attempt holds the message (this one must then
/// stay silent); else the message as stored.
async fn store_outcome(
    state: &WorkerState,
    message: &MessageToAnswer,
    generated: &Generated,
    latency_ms: f64,
) -> Result<Option<Message>, JobError> {
    let prompt_tokens = match &generated.end {
        End::Completed(Some(usage)) => usage.prompt_tokens,
        _ => generated.prompt_estimate,
    };
    let prompt_tokens = i64::try_from(prompt_tokens).unwrap_or(i64::MAX);
    let (status, error, tokens) = match &generated.end {
        End::Completed(usage) => (
            MessageStatus::Normal,
            "",
            usage.as_ref().map_or_else(
                || estimate_tokens(&generated.answer),
                |u| u.completion_tokens,
            ),
        ),
        End::Stopped => (
            MessageStatus::Stopped,
            "",
            estimate_tokens(&generated.answer),
        ),
        End::Failed(reason) => (
            MessageStatus::Error,
            reason.as_str(),
            estimate_tokens(&generated.answer),
        ),
    };
    let outcome = AnswerOutcome {
        status,
        answer: &generated.answer,
        answer_tokens: i64::try_from(tokens).unwrap_or(i64::MAX),
        prompt_tokens,
        response_latency_ms: latency_ms,
        error,
    };
    let at_ms = now_ms();
    let owned =
        messages::finish_answer(&state.db, message.id, message.attempt, outcome, at_ms).await?;
    if !owned {
        tracing::warn!(
            attempt = message.attempt,
            "the message was deleted or a newer attempt owns it; outcome discarded"
        );
        announce_final(state, message.id).await?;
        return Ok(None);
    }
    if status == MessageStatus::Error {
        tracing::warn!(error, "chat answer failed");
    }
    Ok(Some(Message {
        id: message.id,
        app_id: message.app_id,
        conversation_id: message.conversation_id,
        query: message.query.clone(),
        answer: generated.answer.clone(),
        answer_tokens: i64::try_from(tokens).unwrap_or(i64::MAX),
        prompt_tokens,
        total_tokens: i64::try_from(tokens)
            .unwrap_or(i64::MAX)
            .saturating_add(prompt_tokens),
        response_latency: latency_ms,
        status,
        error: error.to_owned(),
        rating: None,
        created_at: message.created_at,
        updated_at: at_ms,
        deleted_at: None,
    }))
}

/// The estimated tokens of a prompt's messages (their text, plus a few per message for the
/// role markers, as OpenAI counts them).
fn estimate_prompt_tokens(prompt: &[serde_json::Value]) -> u64 {
    prompt
        .iter()
        .map(|m| estimate_tokens(m["content"].as_str().unwrap_or_default()) + 4)
        .sum()
}

/// Folds the answered round into the conversation's summary. A failure keeps the old
/// summary: the answer is what the caller asked for.
async fn remember(
    state: &WorkerState,
    base_url: &str,
    config: &ModelConfig,
    message: &MessageToAnswer,
    summary: &str,
    answer: &str,
) {
    let api_key = state
        .config
        .llm_api_key
        .as_ref()
        .map_or("", |key| key.expose());
    let body = summary_request(config, summary, &message.query, answer);
    match state.llm.chat(base_url, api_key, body).await {
        Ok(completion) => {
            let next = chat::bounded_summary(completion.content.trim()).trim_end();
            if next.is_empty() {
                return;
            }
            if let Err(e) =
                messages::set_summary(&state.db, message.conversation_id, next, now_ms()).await
            {
                tracing::warn!(error = %e, "could not store the long-term memory summary");
            }
        }
        Err(e) => tracing::warn!(error = %e, "summarising the round failed; the old summary stays"),
    }
}

/// Announces how a message this job could not answer already ended: stopped while queued
/// (the stop of a queued message is announced only here), answered by an earlier delivery,
/// or gone with its app (the waiting request then answers `not_found` instead of waiting in
/// vain). A message another attempt is still answering is left to that attempt.
async fn announce_final(state: &WorkerState, id: Uuid) -> Result<(), JobError> {
    let event = match messages::get_message(&state.db, id).await? {
        None => ChatEvent::Error {
            message: "the app was deleted".into(),
        },
        Some(message) => match message.status {
            MessageStatus::Normal => ChatEvent::MessageEnd {
                stored: Some(message),
            },
            MessageStatus::Stopped => ChatEvent::Stopped {
                stored: Some(message),
            },
            MessageStatus::Error => ChatEvent::Error {
                message: message.error,
            },
            MessageStatus::Pending | MessageStatus::Streaming => return Ok(()),
        },
    };
    publish_final(state, id, &event).await;
    Ok(())
}

/// Wakes the API request waiting for this message. The store already holds the outcome.
async fn publish_final(state: &WorkerState, id: Uuid, event: &ChatEvent) {
    if let Err(e) = state.signals.publish_chat_event(id, event).await {
        tracing::warn!(error = %e, "could not publish the end of the chat");
    }
}
