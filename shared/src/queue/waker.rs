//! Push-woken pick-up: workers turn the `queue:<name>:available` signal into a poll of their
//! queue, with a slow fallback tick for anything missed.

use std::{pin::Pin, sync::Arc, time::Duration};

use futures::{Stream, StreamExt};
use tokio::sync::Notify;

use crate::signals::{SignalError, Signals, channel};

/// Fallback poll period: covers a wake-up signal lost to a race or a reconnect. Pick-up does
/// not wait on it.
pub const FALLBACK_POLL: Duration = Duration::from_millis(250);

/// See [`QueueWaker::stream`]: how long after a wake a second one is sent, unless another wake
/// came first.
pub const WAKE_ECHO: Duration = Duration::from_millis(5);

/// A stream that yields whenever the worker should poll its queue: on every "job available"
/// signal, and on a slow fallback tick. apalis polls the backend each time it yields.
pub type WakeStream = Pin<Box<dyn Stream<Item = ()> + Send>>;

/// Listens to a queue's wake-up signal for the life of the process and hands out wake streams.
#[derive(Clone)]
pub struct QueueWaker {
    notify: Arc<Notify>,
    fallback: Duration,
}

impl QueueWaker {
    /// Subscribes to `queue:<name>:available` and relays it to the wake streams.
    pub async fn start(
        signals: &Signals,
        queue: &str,
        fallback: Duration,
    ) -> Result<Self, SignalError> {
        let notify = Arc::new(Notify::new());
        let mut sub = signals.subscribe(&channel::queue_available(queue)).await?;
        let relay = notify.clone();
        tokio::spawn(async move {
            while sub.next().await.is_some() {
                relay.notify_waiters();
                // Also store a permit, so a worker between two polls does not miss it.
                relay.notify_one();
            }
        });
        Ok(Self { notify, fallback })
    }

    /// A fresh stream for one apalis worker (apalis re-creates workers on restart).
    ///
    /// apalis consumes a wake even while a fetch is already in flight, and that fetch may have
    /// started just before the job was committed: the job would then wait for the fallback
    /// tick. So [`WAKE_ECHO`] after the last of a run of wakes, the stream wakes once more
    /// (one extra poll per burst, not per job).
    pub fn stream(&self) -> WakeStream {
        let signalled =
            futures::stream::unfold((self.notify.clone(), false), |(n, echo_due)| async move {
                if echo_due {
                    // A wake within the window is passed on and the echo moves after it; a quiet
                    // window sends the echo.
                    let another = tokio::time::timeout(WAKE_ECHO, n.notified()).await.is_ok();
                    return Some(((), (n, another)));
                }
                n.notified().await;
                Some(((), (n, true)))
            });
        let mut interval = tokio::time::interval(self.fallback);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ticks = futures::stream::unfold(interval, |mut i| async move {
            i.tick().await;
            Some(((), i))
        });
        Box::pin(futures::stream::select(signalled, ticks))
    }
}
