//! Push-woken pick-up: workers turn the `queue:<name>:available` signal into a poll of their
//! queue, with a slow fallback tick for anything missed.

use std::{
    pin::Pin,
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures::{Stream, StreamExt, task::AtomicWaker};
use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep};

use crate::signals::{SignalError, Signals, channel};

/// Fallback poll period: covers a wake-up signal lost to a reconnect. Pick-up does not wait
/// on it.
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
    listeners: Arc<Mutex<Vec<Weak<Listener>>>>,
    fallback: Duration,
}

/// One wake stream's end of the relay: a wake not yet yielded, and whom to wake for it.
#[derive(Default)]
struct Listener {
    signalled: AtomicBool,
    waker: AtomicWaker,
}

impl QueueWaker {
    /// Subscribes to `queue:<name>:available` and relays it to the wake streams.
    pub async fn start(
        signals: &Signals,
        queue: &str,
        fallback: Duration,
    ) -> Result<Self, SignalError> {
        let listeners: Arc<Mutex<Vec<Weak<Listener>>>> = Arc::default();
        let mut sub = signals.subscribe(&channel::queue_available(queue)).await?;
        let relay = listeners.clone();
        tokio::spawn(async move {
            while sub.next().await.is_some() {
                let mut listeners = relay.lock().expect("wake listeners poisoned");
                listeners.retain(|listener| match listener.upgrade() {
                    Some(listener) => {
                        listener.signalled.store(true, Ordering::Release);
                        listener.waker.wake();
                        true
                    }
                    None => false,
                });
            }
        });
        Ok(Self {
            listeners,
            fallback,
        })
    }

    /// A fresh stream for one apalis worker (apalis re-creates workers on restart).
    ///
    /// apalis consumes a wake even while a fetch is already in flight, and that fetch may have
    /// started just before the job was committed: the job would then wait for the fallback
    /// tick. So [`WAKE_ECHO`] after the last of a run of wakes, the stream wakes once more
    /// (one extra poll per burst, not per job).
    pub fn stream(&self) -> WakeStream {
        let listener = Arc::new(Listener::default());
        let mut listeners = self.listeners.lock().expect("wake listeners poisoned");
        listeners.retain(|l| l.strong_count() > 0);
        listeners.push(Arc::downgrade(&listener));
        let mut ticks = tokio::time::interval(self.fallback);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Box::pin(Wakes {
            listener,
            echo: None,
            ticks,
        })
    }
}

/// The stream behind [`QueueWaker::stream`].
///
/// It registers the polling task with every source (the relay, the echo timer, the fallback
/// tick) on *every* poll, including those that yield. apalis's `PollWith` polls its stream
/// once per backend poll and drops a yielded item without polling again; a stream that
/// registers only when it returns `Pending` (a `Notify` future, `select` of streams) then
/// leaves no one to wake the worker when a signal arrives after a yield whose fetch came
/// back empty, and the job waited for the fallback tick (1.4 % of runs at one run at a time,
/// 100–250 ms each).
struct Wakes {
    listener: Arc<Listener>,
    echo: Option<Pin<Box<Sleep>>>,
    ticks: Interval,
}

impl Stream for Wakes {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        let this = self.get_mut();
        // Register before reading the flag: a signal after the read then wakes this task.
        this.listener.waker.register(cx.waker());
        let mut wake = false;
        if this.listener.signalled.swap(false, Ordering::AcqRel) {
            wake = true;
            // A wake within the window moves the echo after it.
            let at = Instant::now() + WAKE_ECHO;
            match &mut this.echo {
                Some(echo) => echo.as_mut().reset(at),
                None => this.echo = Some(Box::pin(tokio::time::sleep_until(at))),
            }
        }
        if let Some(echo) = &mut this.echo
            && echo.as_mut().poll(cx).is_ready()
        {
            this.echo = None;
            wake = true;
        }
        // Polled until pending, so the next tick is registered too.
        while this.ticks.poll_tick(cx).is_ready() {
            wake = true;
        }
        if wake {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use futures::task::{ArcWake, waker};

    use super::*;

    /// Counts how often the task polling a stream is woken.
    #[derive(Default)]
    struct Wakeups(AtomicUsize);

    impl ArcWake for Wakeups {
        fn wake_by_ref(arc_self: &Arc<Self>) {
            arc_self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A waker of queue `q` on in-process signals.
    async fn started(fallback: Duration) -> (Signals, QueueWaker) {
        let signals = Signals::in_process();
        let queue_waker = QueueWaker::start(&signals, "q", fallback).await.unwrap();
        (signals, queue_waker)
    }

    async fn woken_beyond(count: &Wakeups, seen: usize) -> bool {
        for _ in 0..200 {
            if count.0.load(Ordering::SeqCst) > seen {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false
    }

    /// apalis drops a yielded wake without polling again; the next signal must still wake
    /// the worker, and so must the echo of the first.
    #[tokio::test]
    async fn a_signal_after_a_yield_wakes_the_worker_without_another_poll() {
        let (signals, queue_waker) = started(Duration::from_secs(3600)).await;
        let mut stream = queue_waker.stream();
        let count = Arc::new(Wakeups::default());
        let waker = waker(count.clone());
        let mut cx = Context::from_waker(&waker);
        // The first fallback tick is due at once; then nothing until a signal.
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(stream.poll_next_unpin(&mut cx), Poll::Ready(Some(())));
        assert_eq!(stream.poll_next_unpin(&mut cx), Poll::Pending);

        signals.publish_queue_available("q").await.unwrap();
        assert!(woken_beyond(&count, 0).await, "the signal woke no one");
        assert_eq!(stream.poll_next_unpin(&mut cx), Poll::Ready(Some(())));

        // No poll after that yield, as in apalis: the echo must wake the task on its own...
        let seen = count.0.load(Ordering::SeqCst);
        assert!(woken_beyond(&count, seen).await, "the echo woke no one");
        // ...and so must a signal after it.
        let seen = count.0.load(Ordering::SeqCst);
        signals.publish_queue_available("q").await.unwrap();
        assert!(
            woken_beyond(&count, seen).await,
            "the second signal woke no one"
        );
        assert_eq!(stream.poll_next_unpin(&mut cx), Poll::Ready(Some(())));
    }

    #[tokio::test]
    async fn the_fallback_tick_wakes_the_worker_after_a_yield() {
        let (_signals, queue_waker) = started(Duration::from_millis(20)).await;
        let mut stream = queue_waker.stream();
        let count = Arc::new(Wakeups::default());
        let waker = waker(count.clone());
        let mut cx = Context::from_waker(&waker);
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(stream.poll_next_unpin(&mut cx), Poll::Ready(Some(())));
        assert!(woken_beyond(&count, 0).await, "the tick woke no one");
        assert_eq!(stream.poll_next_unpin(&mut cx), Poll::Ready(Some(())));
    }

    #[tokio::test]
    async fn every_stream_of_a_queue_is_woken() {
        let (signals, queue_waker) = started(Duration::from_secs(3600)).await;
        let (mut first, mut second) = (queue_waker.stream(), queue_waker.stream());
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        tokio::time::sleep(Duration::from_millis(10)).await;
        for stream in [&mut first, &mut second] {
            assert_eq!(stream.poll_next_unpin(&mut cx), Poll::Ready(Some(())));
            assert_eq!(stream.poll_next_unpin(&mut cx), Poll::Pending);
        }
        signals.publish_queue_available("q").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        for stream in [&mut first, &mut second] {
            assert_eq!(stream.poll_next_unpin(&mut cx), Poll::Ready(Some(())));
        }
    }
}
