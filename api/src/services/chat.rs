//! What every chat route shares, the debug chat and the service API alike: store the question
//! (`pending`) and push its `AnswerMessage` job onto the `chat` queue, having subscribed to the
//! message's event channel first so that nothing the worker publishes can be missed; then
//! wait for the final event, or relay the deltas as they come. No polling: the worker's
//! signal wakes the request, and the store is read only when the signal bus drops or comes
//! back, and every few seconds.

use std::time::Duration;

use futures::{Stream, stream};
use shared::{
    chat::ChatEvent,
    queue::AnswerMessage,
    signals::{StoreChecks, Subscription, channel},
    store::{
        Db,
        interrupt::Interrupt,
        messages::{self, Message, NewMessage},
        now_ms,
    },
    submission,
};
use uuid::Uuid;

use crate::{error::ApiError, state::AppState};

/// Longest a chat call waits for its answer. A worker that dies mid-answer has its job
/// handed to another within a few heartbeats, which answers on the same channel; this bound
/// only matters when no worker runs at all.
pub const MAX_ANSWER_WAIT: Duration = Duration::from_secs(600);
/// The answer when the wait ran out first.
pub const STILL_ANSWERING: &str =
    "the answer is not ready yet; it will appear in the message list when it is";
/// What a waiting call answers when the message vanished (its app or conversation was
/// deleted meanwhile).
pub const MESSAGE_GONE: &str = "the message was deleted while it was being answered";

/// A question stored and queued, with the subscription to its events.
pub struct Submitted {
    pub id: Uuid,
    events: Subscription,
    checks: StoreChecks,
}

/// Stores the question and queues its job; subscribes to its events first.
pub async fn submit(state: &AppState, message: NewMessage<'_>) -> Result<Submitted, ApiError> {
    let id = message.id;
    let events = state
        .signals
        .subscribe(&channel::message_events(id))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    // Stored, so accepted, even if the queue is down: the workers' re-queue sweep pushes it
    // once the queue is back, and this request goes on waiting for the answer.
    let job = AnswerMessage {
        message_id: id,
        traceparent: shared::telemetry::traceparent(),
    };
    submission::store_and_queue_message(&state.db, &state.queues, message, job).await?;
    Ok(Submitted {
        id,
        events,
        checks: state.signals.store_checks(),
    })
}

/// The message as the chat left it: carried by the final event, or read from the store when
/// the event has no copy (stopped while queued, failed) or never came (lost signal,
/// [`MAX_ANSWER_WAIT`]). `not_found` when the message was deleted meanwhile.
pub async fn outcome(db: &Db, id: Uuid, last: Option<ChatEvent>) -> Result<Message, ApiError> {
    if let Some(stored) = last.and_then(ChatEvent::into_stored) {
        return Ok(stored);
    }
    messages::get_message(db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(MESSAGE_GONE))
}

/// Waits for the chat's final event (or [`MAX_ANSWER_WAIT`]) and answers the message.
pub async fn wait_for_answer(db: &Db, submitted: Submitted) -> Result<Message, ApiError> {
    let Submitted {
        id,
        mut events,
        mut checks,
    } = submitted;
    let deadline = tokio::time::Instant::now() + MAX_ANSWER_WAIT;
    let last = loop {
        match next_event(db, id, &mut events, &mut checks, deadline).await? {
            Next::Event(event) if event.is_final() => break Some(event),
            Next::Event(_) => {}
            Next::Answered | Next::Ended => break None,
        }
    };
    drop(events);
    outcome(db, id, last).await
}

/// What a relayed chat gives: the answer's pieces, then its end.
pub enum Relayed {
    Delta(String),
    /// The message as it ended (or why it could not be read).
    End(Result<Message, ApiError>),
}

/// The deltas as they come, then the end; the stream ends there.
pub fn relay(db: Db, submitted: Submitted) -> impl Stream<Item = Relayed> {
    let deadline = tokio::time::Instant::now() + MAX_ANSWER_WAIT;
    let Submitted { id, events, checks } = submitted;
    stream::unfold(Some((events, checks)), move |waiting| {
        let db = db.clone();
        async move {
            let (mut events, mut checks) = waiting?;
            let last = match next_event(&db, id, &mut events, &mut checks, deadline).await {
                Ok(Next::Event(ChatEvent::AnswerDelta { delta })) => {
                    return Some((Relayed::Delta(delta), Some((events, checks))));
                }
                Ok(Next::Event(event)) => Some(event),
                Ok(Next::Answered | Next::Ended) => None,
                Err(error) => {
                    tracing::error!(%error, "reading the message while streaming failed");
                    None
                }
            };
            drop(events);
            Some((Relayed::End(outcome(&db, id, last).await), None))
        }
    })
}

/// Stops a message's generation: the worker holding it closes the provider request and keeps
/// the partial answer (status `stopped`); a question not yet picked up is stopped at once. A
/// message that already finished is left as it is.
pub async fn stop(state: &AppState, id: Uuid) -> Result<(), ApiError> {
    // The request is in the store, where the worker also looks; the signal makes it
    // immediate, so a bus outage does not fail the stop. A question still queued is stopped
    // in the store at once; the worker that meets its job announces the end.
    if messages::request_stop(&state.db, id, now_ms()).await? == Interrupt::Requested {
        match state.signals.publish_message_stop(id).await {
            Ok(()) => tracing::info!(message_id = %id, "stop requested"),
            Err(error) => {
                tracing::warn!(%error, message_id = %id, "stop recorded, but not signalled")
            }
        }
    }
    Ok(())
}

/// What waiting on a chat's events gave.
enum Next {
    Event(ChatEvent),
    /// The store says the message is final (its final event was lost, or never sent).
    Answered,
    /// The wait ran out, or the subscription ended.
    Ended,
}

/// The chat's next event; the store is read instead when the signal bus drops or comes back
/// (events sent meanwhile are lost), and every few seconds.
async fn next_event(
    db: &Db,
    id: Uuid,
    events: &mut Subscription,
    checks: &mut StoreChecks,
    deadline: tokio::time::Instant,
) -> Result<Next, ApiError> {
    use futures::StreamExt;
    loop {
        tokio::select! {
            payload = tokio::time::timeout_at(deadline, events.next()) => {
                match payload {
                    Ok(Some(payload)) => {
                        if let Some(event) = ChatEvent::from_payload(&payload) {
                            return Ok(Next::Event(event));
                        }
                    }
                    Ok(None) | Err(_) => return Ok(Next::Ended),
                }
            }
            _ = checks.due() => {
                match messages::get_message(db, id).await? {
                    Some(message) if !message.status.is_final() => {}
                    // Final, or gone (deleted): `outcome` reads which.
                    _ => return Ok(Next::Answered),
                }
            }
        }
    }
}
