//! Signals between processes: "a job was pushed", "a task finished", "a chat produced a delta",
//! "cancel this run". Redis pub/sub in the distributed mode, an in-process broadcast in the
//! embedded one, behind one small interface.
//!
//! Signals are hints, not storage: a message nobody listens to is dropped, so every state a
//! signal announces is also written to the store first, and whoever waits on a signal also
//! reads the store now and then ([`Signals::store_checks`]): at once when the bus comes back
//! after an outage (messages sent meanwhile are lost), every second while it is down, and
//! every few seconds otherwise. On Redis the subscribing connection is re-established, with
//! backoff, whenever it drops, and every channel still listened to is subscribed again.

use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex, OnceLock, Weak},
    task::{Context, Poll},
    time::Duration,
};

use futures::{Stream, StreamExt};
use redis::aio::{ConnectionManager, PubSubSink, PubSubStream};
use tokio::sync::{broadcast, watch};

use uuid::Uuid;

use crate::{chat::events::ChatEvent, redis_conn::retry_once, store::tasks::TaskStatus};

/// Channel families every process pattern-subscribes to once at start-up, so that the many
/// short-lived per-task subscriptions cost no Redis round trip (SUBSCRIBE + UNSUBSCRIBE per
/// run would). Chat channels stay per-channel: their deltas only go where someone listens.
const PATTERN_FAMILIES: [&str; 3] = ["task:", "queue:", "chat:"];

/// Capacity of a chat message's event channel (its deltas). A subscriber that falls this far
/// behind (a stalled SSE client) misses messages rather than stalling the publisher.
const STREAM_CHANNEL_CAPACITY: usize = 1024;

/// Capacity of every other channel: they carry one-off signals (done, cancel, stop, wake).
/// A broadcast channel allocates all its slots up front, and two channels are made per
/// workflow run: at 1,024 slots that was ~80 KB zeroed per run.
const SIGNAL_CHANNEL_CAPACITY: usize = 16;

/// Capacity of a run's events channel (its tokens and progress notes). Its one subscriber
/// per process (the task's feed) relays them at once; what a stalled one misses is in the
/// store. Smaller than a chat's: a process may follow a thousand runs.
const RUN_EVENTS_CHANNEL_CAPACITY: usize = 128;

fn channel_capacity(channel: &str) -> usize {
    if channel::is_run_events(channel) {
        RUN_EVENTS_CHANNEL_CAPACITY
    } else if channel::is_message_events(channel) {
        STREAM_CHANNEL_CAPACITY
    } else {
        SIGNAL_CHANNEL_CAPACITY
    }
}

/// How often a waiter reads the store while the bus is up: covers a message lost to a race
/// or to an outage not yet noticed (a half-open connection).
pub const CHECK_WHILE_UP: Duration = Duration::from_secs(5);
/// How often a waiter reads the store while the bus is down.
pub const CHECK_WHILE_DOWN: Duration = Duration::from_secs(1);

/// Backoff between attempts to re-establish the subscribing connection.
const RESUBSCRIBE_MIN_DELAY: Duration = Duration::from_millis(50);
const RESUBSCRIBE_MAX_DELAY: Duration = Duration::from_secs(2);
/// Longest one (re)subscription may take before it counts as failed: a SUBSCRIBE sent on a
/// connection that died silently would otherwise wait for ever.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
}

/// The state of the process's link to the signal bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    /// Whether the subscribing side is connected (always, in process).
    pub up: bool,
    /// How many times the subscribing connection was (re-)established.
    pub connections: u64,
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
    /// Someone listens to a workflow task's stream (refreshed while the stream is open): the
    /// worker running it then streams its llm nodes' tokens (see [`super::Signals::is_listened`]).
    pub fn task_listen(task_id: Uuid) -> String {
        format!("task:{task_id}:listen")
    }
    /// The task of a `task:<id>:listen` channel.
    pub fn task_listen_id(channel: &str) -> Option<Uuid> {
        let id = channel.strip_prefix("task:")?.strip_suffix(":listen")?;
        Uuid::parse_str(id).ok()
    }
    /// What a listened workflow task does as it happens: its llm nodes' tokens (`node_delta`
    /// events) and "progress stored" notes. Not in the `task:` pattern family: these only go
    /// to processes that subscribed to this run.
    pub fn run_events(task_id: Uuid) -> String {
        format!("run:{task_id}:events")
    }
    /// Whether the channel is a [`run_events`] channel.
    pub fn is_run_events(channel: &str) -> bool {
        channel.starts_with("run:") && channel.ends_with(":events")
    }
    /// Events of a debug chat message (deltas, end, error).
    pub fn message_events(message_id: Uuid) -> String {
        format!("message:{message_id}:events")
    }
    /// Whether the channel is a [`message_events`] channel.
    pub fn is_message_events(channel: &str) -> bool {
        channel.starts_with("message:") && channel.ends_with(":events")
    }
    /// Stop was requested for a chat message. In the `chat:` pattern family (unlike the
    /// message's events): every answer subscribes to it, and a SUBSCRIBE and UNSUBSCRIBE per
    /// answer queued on the worker's one pub/sub connection under 200 concurrent chats.
    pub fn message_stop(message_id: Uuid) -> String {
        format!("chat:{message_id}:stop")
    }
}

/// The payload of `task:<id>:done`: the task's final status and result.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct TaskDone {
    pub status: TaskStatus,
    pub outputs: serde_json::Map<String, serde_json::Value>,
}

/// The typed publishers, one per signal. Each signal has one publishing side:
///
/// | signal | channel | published by |
/// |---|---|---|
/// | a task's outcome | `task:<id>:done` | the worker that ended it (or found it ended) |
/// | cancel a running task | `task:<id>:cancel` | the API |
/// | someone listens to a task's stream | `task:<id>:listen` | the API (refreshed while open) |
/// | a listened task's tokens and progress notes | `run:<id>:events` | the worker running it |
/// | a chat's deltas and final event | `message:<id>:events` | the worker answering it (or finding it final) |
/// | stop a chat's answer | `chat:<id>:stop` | the API |
/// | a queue has jobs | `queue:<name>:available` | the producer (and its Redis push script) |
impl Signals {
    pub async fn publish_task_done(&self, id: Uuid, done: &TaskDone) -> Result<(), SignalError> {
        let payload = serde_json::to_string(done).unwrap_or_default();
        self.publish(&channel::task_done(id), &payload).await
    }

    pub async fn publish_task_cancel(&self, id: Uuid) -> Result<(), SignalError> {
        self.publish(&channel::task_cancel(id), "").await
    }

    /// Tells every process that a stream of this task is open (see [`Signals::is_listened`]).
    pub async fn publish_task_listen(&self, id: Uuid) -> Result<(), SignalError> {
        self.publish(&channel::task_listen(id), "").await
    }

    /// One live event of a listened run, as JSON: a `node_delta` (`{id, taskID, nodeID,
    /// delta}`) or the note that its progress was just stored (`{"stored": true}`).
    pub async fn publish_run_event(&self, id: Uuid, payload: &str) -> Result<(), SignalError> {
        self.publish(&channel::run_events(id), payload).await
    }

    pub async fn publish_chat_event(&self, id: Uuid, event: &ChatEvent) -> Result<(), SignalError> {
        self.publish(&channel::message_events(id), &event.to_payload())
            .await
    }

    pub async fn publish_message_stop(&self, id: Uuid) -> Result<(), SignalError> {
        self.publish(&channel::message_stop(id), "").await
    }

    pub async fn publish_queue_available(&self, queue: &str) -> Result<(), SignalError> {
        self.publish(&channel::queue_available(queue), "").await
    }
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
    /// Tasks someone listens to, until when: filled from `task:<id>:listen`, which every
    /// process receives (pattern family), so a worker knows before it even claims the run.
    listened: Mutex<Listened>,
    redis: Option<RedisBus>,
    link: watch::Sender<Link>,
}

type TaskDoneObserver = Box<dyn Fn(uuid::Uuid, &Arc<str>) + Send + Sync>;

struct RedisBus {
    client: redis::Client,
    publisher: ConnectionManager,
    /// Subscribes and unsubscribes on the process's one pub/sub connection; `None` while
    /// that connection is being re-established.
    sink: tokio::sync::Mutex<Option<PubSubSink>>,
}

impl Signals {
    /// In-process signals for the embedded mode.
    pub fn in_process() -> Self {
        Self {
            inner: Arc::new(Inner::new(None)),
        }
    }

    /// Redis pub/sub: one publishing connection and one subscribing connection per process,
    /// with messages fanned out to local subscribers. Both heal themselves: the publisher
    /// reconnects and retries (see [`crate::redis_conn`]), and the subscriber is
    /// re-established in the background whenever it drops.
    pub async fn redis(url: &str) -> Result<Self, SignalError> {
        let client = redis::Client::open(url)?;
        let publisher = crate::redis_conn::connect(url).await?;
        let inner = Arc::new(Inner::new(Some(RedisBus {
            client,
            publisher,
            sink: tokio::sync::Mutex::new(None),
        })));
        // The first connection is made here, so that a process starts only with Redis.
        let stream = inner.connect_subscriber().await?;
        tokio::spawn(keep_subscribed(Arc::downgrade(&inner), stream));
        Ok(Self { inner })
    }

    /// Publishes a message to everyone subscribed to `channel`, in any process. Callers use
    /// the typed publishers below, so each channel carries one kind of payload.
    async fn publish(&self, channel: &str, payload: &str) -> Result<(), SignalError> {
        match &self.inner.redis {
            Some(bus) => {
                retry_once(|| {
                    let mut conn = bus.publisher.clone();
                    async move {
                        redis::cmd("PUBLISH")
                            .arg(channel)
                            .arg(payload)
                            .query_async::<i64>(&mut conn)
                            .await
                    }
                })
                .await?;
            }
            None => self.inner.deliver(channel, payload.into()),
        }
        Ok(())
    }

    /// The link to the bus, watched: it changes when the subscribing connection drops or
    /// is re-established.
    pub fn link(&self) -> watch::Receiver<Link> {
        self.inner.link.subscribe()
    }

    /// When a waiter on a signal should read the store instead (see the module comment).
    pub fn store_checks(&self) -> StoreChecks {
        StoreChecks { link: self.link() }
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
            && let Some(sink) = bus.sink.lock().await.as_mut()
        {
            // SUBSCRIBE returns after Redis confirmed it, so nothing published afterwards is
            // missed. When it fails, the connection is failing too: the channel is registered
            // above, so it is subscribed again with every other one when the connection is
            // re-established, and meanwhile the subscriber's store checks stand in.
            match tokio::time::timeout(SUBSCRIBE_TIMEOUT, sink.subscribe(channel)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::debug!(%error, channel, "subscribe failed"),
                Err(_) => tracing::debug!(channel, "subscribe timed out"),
            }
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

    /// Whether a stream of this task was open within the last [`LISTEN_TTL`], as far as this
    /// process heard (a local lookup: no round trip). The worker asks it when an llm node
    /// starts, to decide between a streaming and a plain provider call.
    pub fn is_listened(&self, id: Uuid) -> bool {
        self.inner
            .listened
            .lock()
            .expect("listened map poisoned")
            .is_listened(id, std::time::Instant::now())
    }

    /// Whether the Redis side (if any) answers and the subscription is up.
    pub async fn ping(&self) -> Result<(), SignalError> {
        if let Some(bus) = &self.inner.redis {
            retry_once(|| {
                let mut conn = bus.publisher.clone();
                async move { redis::cmd("PING").query_async::<String>(&mut conn).await }
            })
            .await?;
            if !self.inner.link.borrow().up {
                return Err(SignalError::Timeout(SUBSCRIBE_TIMEOUT));
            }
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
                    if still_unused && let Some(sink) = bus.sink.lock().await.as_mut() {
                        let _ = tokio::time::timeout(SUBSCRIBE_TIMEOUT, sink.unsubscribe(&channel))
                            .await;
                    }
                }
            });
        }
    }
}

fn is_pattern_family(channel: &str) -> bool {
    PATTERN_FAMILIES.iter().any(|f| channel.starts_with(f))
}

/// Keeps the subscribing connection up for the life of the process: relays its messages,
/// and when it drops, re-establishes it with backoff.
async fn keep_subscribed(inner: Weak<Inner>, mut stream: PubSubStream) {
    loop {
        while let Some(msg) = stream.next().await {
            let Some(inner) = inner.upgrade() else { return };
            let payload: String = msg.get_payload().unwrap_or_default();
            inner.deliver(msg.get_channel_name(), payload.into());
        }
        let Some(live) = inner.upgrade() else { return };
        tracing::warn!("signal subscription connection closed; reconnecting");
        metrics::counter!(crate::metrics::SIGNAL_RECONNECTS).increment(1);
        live.set_up(false);
        if let Some(bus) = &live.redis {
            *bus.sink.lock().await = None;
        }
        drop(live);
        let mut delay = RESUBSCRIBE_MIN_DELAY;
        stream = loop {
            tokio::time::sleep(delay).await;
            let Some(live) = inner.upgrade() else { return };
            match live.connect_subscriber().await {
                Ok(stream) => break stream,
                Err(error) => {
                    tracing::debug!(%error, "signal subscription not re-established yet");
                    delay = (delay * 2).min(RESUBSCRIBE_MAX_DELAY);
                }
            }
        };
        tracing::info!("signal subscription re-established");
    }
}

impl Inner {
    fn new(redis: Option<RedisBus>) -> Self {
        Self {
            local: Mutex::new(HashMap::new()),
            task_done_observer: OnceLock::new(),
            listened: Mutex::new(Listened::default()),
            link: watch::Sender::new(Link {
                up: redis.is_none(),
                connections: 0,
            }),
            redis,
        }
    }

    /// Opens a subscribing connection and subscribes it to the pattern families and to every
    /// channel that has local subscribers, then installs it. The sink stays locked
    /// throughout, so a `subscribe` racing with this either is in the list or waits for the
    /// new connection.
    async fn connect_subscriber(&self) -> Result<PubSubStream, SignalError> {
        let bus = self.redis.as_ref().expect("a Redis signal bus");
        let mut slot = bus.sink.lock().await;
        let connect = async {
            let (mut sink, stream) = bus.client.get_async_pubsub().await?.split();
            for family in PATTERN_FAMILIES {
                sink.psubscribe(format!("{family}*")).await?;
            }
            let channels: Vec<String> = {
                let local = self.local.lock().expect("signal map poisoned");
                local
                    .keys()
                    .filter(|c| !is_pattern_family(c))
                    .cloned()
                    .collect()
            };
            if !channels.is_empty() {
                sink.subscribe(&channels).await?;
            }
            Ok::<_, SignalError>((sink, stream))
        };
        let (sink, stream) = tokio::time::timeout(SUBSCRIBE_TIMEOUT, connect)
            .await
            .map_err(|_| SignalError::Timeout(SUBSCRIBE_TIMEOUT))??;
        *slot = Some(sink);
        self.link.send_modify(|link| {
            link.up = true;
            link.connections += 1;
        });
        Ok(stream)
    }

    fn set_up(&self, up: bool) {
        self.link.send_if_modified(|link| {
            let changed = link.up != up;
            link.up = up;
            changed
        });
    }

    fn deliver(&self, channel: &str, payload: Arc<str>) {
        if let Some(task_id) = channel::task_listen_id(channel) {
            self.listened
                .lock()
                .expect("listened map poisoned")
                .mark(task_id, std::time::Instant::now());
        }
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

/// How long a `task:<id>:listen` announcement counts. An open stream announces itself again
/// every [`LISTEN_REFRESH`], so a listener is forgotten at most this long after it left.
pub const LISTEN_TTL: Duration = Duration::from_secs(10);
/// How often an open stream of a running task announces itself (once per task and process).
pub const LISTEN_REFRESH: Duration = Duration::from_secs(3);

/// The tasks someone listens to, with when that was last heard. Expired entries are swept
/// at most once per [`LISTEN_TTL`], so the map stays as small as the set of listened runs.
#[derive(Default)]
struct Listened {
    until: HashMap<Uuid, std::time::Instant>,
    swept: Option<std::time::Instant>,
}

impl Listened {
    fn mark(&mut self, id: Uuid, now: std::time::Instant) {
        if self
            .swept
            .is_none_or(|at| now.duration_since(at) >= LISTEN_TTL)
        {
            self.until.retain(|_, until| *until > now);
            self.swept = Some(now);
        }
        self.until.insert(id, now + LISTEN_TTL);
    }

    fn is_listened(&self, id: Uuid, now: std::time::Instant) -> bool {
        self.until.get(&id).is_some_and(|until| *until > now)
    }
}

/// Tells a waiter when to read the store (see [`Signals::store_checks`]).
pub struct StoreChecks {
    link: watch::Receiver<Link>,
}

impl StoreChecks {
    /// Resolves when the store should be read: at once when the link to the bus changes
    /// (it dropped, or came back having missed messages), else after [`CHECK_WHILE_DOWN`]
    /// or [`CHECK_WHILE_UP`].
    pub async fn due(&mut self) {
        let up = self.link.borrow_and_update().up;
        let period = if up { CHECK_WHILE_UP } else { CHECK_WHILE_DOWN };
        tokio::select! {
            changed = self.link.changed() => {
                if changed.is_err() {
                    // The bus is gone (the process is stopping): plain periodic checks.
                    tokio::time::sleep(period).await;
                }
            }
            _ = tokio::time::sleep(period) => {}
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
    async fn a_listen_announcement_marks_the_task_for_a_while() {
        let signals = Signals::in_process();
        let (id, other) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        assert!(!signals.is_listened(id));
        signals.publish_task_listen(id).await.unwrap();
        assert!(signals.is_listened(id));
        assert!(!signals.is_listened(other));
        let mut listened = Listened::default();
        let now = std::time::Instant::now();
        listened.mark(id, now);
        assert!(listened.is_listened(id, now + LISTEN_TTL / 2));
        assert!(!listened.is_listened(id, now + LISTEN_TTL));
        // A later announcement sweeps the expired ones.
        listened.mark(other, now + LISTEN_TTL * 2);
        assert_eq!(listened.until.len(), 1);
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
