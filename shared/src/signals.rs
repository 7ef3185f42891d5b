//! Signals between processes: "a job was pushed", "a task finished", "a chat produced a delta",
//! "cancel this run". Redis pub/sub in the distributed mode, an in-process broadcast in the
//! embedded one, behind one small interface.
//!
//! Signals are hints, not storage: a message nobody listens to is dropped, so every state a
//! signal announces is also written to the store first.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex, OnceLock},
    task::{Context, Poll},
};

use futures::{Stream, StreamExt};
use redis::aio::{ConnectionManager, PubSubSink};
use tokio::sync::broadcast;

/// Channel families every process pattern-subscribes to once at start-up, so that the many
/// short-lived per-task subscriptions cost no Redis round trip (SUBSCRIBE + UNSUBSCRIBE per
/// run would). Chat channels stay per-channel: their deltas only go where someone listens.
const PATTERN_FAMILIES: [&str; 2] = ["task:", "queue:"];

/// Capacity of a chat message's event channel (its deltas). A subscriber that falls this far
/// behind (a stalled SSE client) misses messages rather than stalling the publisher.
const STREAM_CHANNEL_CAPACITY: usize = 1024;

/// Capacity of every other channel: they carry one-off signals (done, cancel, stop, wake).
/// A broadcast channel allocates all its slots up front, and two channels are made per
/// workflow run: at 1,024 slots that was ~80 KB zeroed per run.
const SIGNAL_CHANNEL_CAPACITY: usize = 16;

fn channel_capacity(channel: &str) -> usize {
    if channel::is_message_events(channel) {
        STREAM_CHANNEL_CAPACITY
    } else {
        SIGNAL_CHANNEL_CAPACITY
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Channel names, in one place so publishers and subscribers agree.
pub mod channel {
    use uuid::Uuid;

    /// A job was pushed onto the named queue: wake idle workers.
    pub fn queue_available(queue: &str) -> String {
        format!("queue:{queue}:available")
    }
    /// Cancel was requested for a workflow task.
    pub fn task_cancel(task_id: Uuid) -> String {
        format!("task:{task_id}:cancel")
    }
    /// A workflow task reached a terminal state.
    pub fn task_done(task_id: Uuid) -> String {
        format!("task:{task_id}:done")
    }
    /// The task of a `task:<id>:done` channel.
    pub fn task_done_id(channel: &str) -> Option<Uuid> {
        let id = channel.strip_prefix("task:")?.strip_suffix(":done")?;
        Uuid::parse_str(id).ok()
    }
    /// Events of a debug chat message (deltas, end, error).
    pub fn message_events(message_id: Uuid) -> String {
        format!("message:{message_id}:events")
    }
    /// Whether the channel is a [`message_events`] channel.
    pub fn is_message_events(channel: &str) -> bool {
        channel.starts_with("message:") && channel.ends_with(":events")
    }
    /// Stop was requested for a debug chat message.
    pub fn message_stop(message_id: Uuid) -> String {
        format!("message:{message_id}:stop")
    }
}

/// The payload of `task:<id>:done`: the task's final status and result.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct TaskDone<S = String, O = serde_json::Map<String, serde_json::Value>> {
    pub status: S,
    pub outputs: O,
}

/// The signal bus of this process.
#[derive(Clone)]
pub struct Signals {
    inner: Arc<Inner>,
}

struct Inner {
    /// Local subscribers per channel; the same fan-out serves both modes.
    local: Mutex<HashMap<String, broadcast::Sender<Arc<str>>>>,
    /// Sees every task outcome this process receives, before its subscribers do.
    task_done_observer: OnceLock<TaskDoneObserver>,
    redis: Option<RedisBus>,
}

type TaskDoneObserver = Box<dyn Fn(uuid::Uuid, &Arc<str>) + Send + Sync>;

struct RedisBus {
    publisher: ConnectionManager,
    /// Subscribes and unsubscribes on the process's one pub/sub connection.
    sink: tokio::sync::Mutex<PubSubSink>,
}

impl Signals {
    /// In-process signals for the embedded mode.
    pub fn in_process() -> Self {
        Self {
            inner: Arc::new(Inner::new(None)),
        }
    }

    /// Redis pub/sub: one publishing connection and one subscribing connection per process,
    /// with messages fanned out to local subscribers.
    pub async fn redis(url: &str) -> Result<Self, SignalError> {
        let client = redis::Client::open(url)?;
        let publisher = ConnectionManager::new(client.clone()).await?;
        let (mut sink, mut stream) = client.get_async_pubsub().await?.split();
        for family in PATTERN_FAMILIES {
            sink.psubscribe(format!("{family}*")).await?;
        }
        let inner = Arc::new(Inner::new(Some(RedisBus {
            publisher,
            sink: tokio::sync::Mutex::new(sink),
        })));
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            while let Some(msg) = stream.next().await {
                let Some(inner) = weak.upgrade() else { break };
                let payload: String = msg.get_payload().unwrap_or_default();
                inner.deliver(msg.get_channel_name(), payload.into());
            }
            tracing::warn!("signal subscription connection closed");
        });
        Ok(Self { inner })
    }

    /// Publishes a message to everyone subscribed to `channel`, in any process.
    pub async fn publish(&self, channel: &str, payload: &str) -> Result<(), SignalError> {
        match &self.inner.redis {
            Some(bus) => {
                let mut conn = bus.publisher.clone();
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .query_async::<i64>(&mut conn)
                    .await?;
            }
            None => self.inner.deliver(channel, payload.into()),
        }
        Ok(())
    }

    /// Subscribes to `channel`. Messages published after this returns are delivered; the
    /// subscription ends when the returned stream is dropped.
    pub async fn subscribe(&self, channel: &str) -> Result<Subscription, SignalError> {
        let (receiver, first) = {
            let mut local = self.inner.local.lock().expect("signal map poisoned");
            match local.get(channel) {
                Some(tx) => (tx.subscribe(), false),
                None => {
                    let (tx, rx) = broadcast::channel(channel_capacity(channel));
                    local.insert(channel.to_owned(), tx);
                    (rx, true)
                }
            }
        };
        if first
            && !is_pattern_family(channel)
            && let Some(bus) = &self.inner.redis
        {
            // SUBSCRIBE returns after Redis confirmed it, so nothing published afterwards is missed.
            bus.sink.lock().await.subscribe(channel).await?;
        }
        Ok(Subscription {
            channel: channel.to_owned(),
            stream: Box::pin(
                futures::stream::unfold(receiver, |mut rx| async move {
                    loop {
                        match rx.recv().await {
                            Ok(msg) => return Some((msg, rx)),
                            Err(broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(broadcast::error::RecvError::Closed) => return None,
                        }
                    }
                })
                .fuse(),
            ),
            signals: self.clone(),
        })
    }

    /// Calls `observe` with every task outcome (`task:<id>:done`) this process receives, in
    /// any mode, before that channel's subscribers get it. So whatever `observe` records is
    /// visible to a subscriber that checks it right after subscribing: an outcome delivered
    /// before the subscription was made is in the record, a later one reaches the
    /// subscription. One observer per process; a second call is ignored (and logged).
    pub fn observe_task_done(
        &self,
        observe: impl Fn(uuid::Uuid, &Arc<str>) + Send + Sync + 'static,
    ) {
        if self
            .inner
            .task_done_observer
            .set(Box::new(observe))
            .is_err()
        {
            tracing::warn!("a task outcome observer is already set; ignoring another");
        }
    }

    /// Whether the Redis side (if any) answers.
    pub async fn ping(&self) -> Result<(), SignalError> {
        if let Some(bus) = &self.inner.redis {
            let mut conn = bus.publisher.clone();
            redis::cmd("PING").query_async::<String>(&mut conn).await?;
        }
        Ok(())
    }

    fn release(&self, channel: &str) {
        let last = {
            let mut local = self.inner.local.lock().expect("signal map poisoned");
            // The dropped subscription's receiver is already gone when this runs.
            match local.get(channel) {
                Some(tx) if tx.receiver_count() == 0 => {
                    local.remove(channel);
                    true
                }
                _ => false,
            }
        };
        if last && self.inner.redis.is_some() && !is_pattern_family(channel) {
            let inner = self.inner.clone();
            let channel = channel.to_owned();
            tokio::spawn(async move {
                if let Some(bus) = &inner.redis {
                    // A subscriber may have come back meanwhile; then keep the subscription.
                    let still_unused = !inner
                        .local
                        .lock()
                        .expect("signal map poisoned")
                        .contains_key(&channel);
                    if still_unused {
                        let _ = bus.sink.lock().await.unsubscribe(&channel).await;
                    }
                }
            });
        }
    }
}

fn is_pattern_family(channel: &str) -> bool {
    PATTERN_FAMILIES.iter().any(|f| channel.starts_with(f))
}

impl Inner {
    fn new(redis: Option<RedisBus>) -> Self {
        Self {
            local: Mutex::new(HashMap::new()),
            task_done_observer: OnceLock::new(),
            redis,
        }
    }

    fn deliver(&self, channel: &str, payload: Arc<str>) {
        // The observer runs before the fan-out takes the map lock, so a subscriber that
        // registers after that lock finds the observer's effect (see `observe_task_done`).
        if let Some(observe) = self.task_done_observer.get()
            && let Some(task_id) = channel::task_done_id(channel)
        {
            observe(task_id, &payload);
        }
        let local = self.local.lock().expect("signal map poisoned");
        if let Some(tx) = local.get(channel) {
            let _ = tx.send(payload);
        }
    }
}

/// A live subscription: a stream of message payloads.
pub struct Subscription {
    channel: String,
    stream: Pin<Box<dyn Stream<Item = Arc<str>> + Send>>,
    signals: Signals,
}

impl Stream for Subscription {
    type Item = Arc<str>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.stream.as_mut().poll_next(cx)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Drop the receiver first so the count seen by `release` excludes it.
        self.stream = Box::pin(futures::stream::empty());
        self.signals.release(&self.channel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn in_process_signals_reach_every_subscriber_of_the_channel_only() {
        let signals = Signals::in_process();
        let mut a = signals.subscribe("x").await.unwrap();
        let mut b = signals.subscribe("x").await.unwrap();
        let mut other = signals.subscribe("y").await.unwrap();
        signals.publish("x", "hello").await.unwrap();
        assert_eq!(&*a.next().await.unwrap(), "hello");
        assert_eq!(&*b.next().await.unwrap(), "hello");
        let nothing = tokio::time::timeout(Duration::from_millis(20), other.next()).await;
        assert!(nothing.is_err(), "y must not receive x's message");
    }

    #[tokio::test]
    async fn the_task_outcome_observer_sees_outcomes_before_subscribers() {
        let signals = Signals::in_process();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        signals.observe_task_done(move |id, payload| {
            record.lock().unwrap().push((id, payload.to_string()));
        });
        let id = uuid::Uuid::new_v4();
        let mut sub = signals.subscribe(&channel::task_done(id)).await.unwrap();
        signals
            .publish(&channel::task_done(id), "outcome")
            .await
            .unwrap();
        signals
            .publish(&channel::task_cancel(id), "")
            .await
            .unwrap();
        assert_eq!(&*sub.next().await.unwrap(), "outcome");
        assert_eq!(*seen.lock().unwrap(), vec![(id, "outcome".to_owned())]);
    }

    #[test]
    fn task_done_channels_name_their_task() {
        let id = uuid::Uuid::new_v4();
        assert_eq!(channel::task_done_id(&channel::task_done(id)), Some(id));
        assert_eq!(channel::task_done_id(&channel::task_cancel(id)), None);
        assert_eq!(channel::task_done_id("task:nope:done"), None);
        assert!(channel::is_message_events(&channel::message_events(id)));
        assert!(!channel::is_message_events(&channel::message_stop(id)));
    }

    #[tokio::test]
    async fn dropping_the_last_subscription_forgets_the_channel() {
        let signals = Signals::in_process();
        let a = signals.subscribe("x").await.unwrap();
        let b = signals.subscribe("x").await.unwrap();
        drop(a);
        assert!(signals.inner.local.lock().unwrap().contains_key("x"));
        drop(b);
        assert!(!signals.inner.local.lock().unwrap().contains_key("x"));
        // Publishing to a channel nobody listens to is not an error.
        signals.publish("x", "lost").await.unwrap();
    }
}
