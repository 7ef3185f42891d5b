//! Group commit for hot-path writes.
//!
//! Under load, hundreds of runs a second each want the same few statements (store a task,
//! claim it, finish it). One round trip and one commit per run is what bounds throughput,
//! on SQLite (a single writer, and sqlx hands every statement to a connection thread) as on
//! Postgres (per-statement and per-commit overhead dwarfs the work). A [`Batcher`] queues
//! callers' items; one task takes everything queued so far and writes it with one statement.
//! While that write is in flight, the next batch gathers, so an idle store sees a lone item
//! at once (no timer, no added latency) and a busy one sees large batches.

use std::{future::Future, sync::Arc};

use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use crate::config::StoreKind;

/// The most items one flush writes: bounds statement size and the number of distinct
/// statement texts the connections prepare and cache.
pub const MAX_BATCH: usize = 64;

type Reply<O> = oneshot::Sender<Result<O, Arc<StoreError>>>;

/// A queue of items written in batches by one background task.
pub struct Batcher<I, O> {
    queue: mpsc::UnboundedSender<(I, Reply<O>)>,
}

impl<I, O> Clone for Batcher<I, O> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the writer task. `flush` gets up to [`MAX_BATCH`] items and returns one output
    /// per item, in order; its error goes to every caller of that batch. The task ends when
    /// the last handle is dropped.
    pub fn spawn<F, Fut>(name: &'static str, flush: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<O>, StoreError>> + Send,
    {
        let (queue, mut pending) = mpsc::unbounded_channel::<(I, Reply<O>)>();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let (items, replies): (Vec<I>, Vec<Reply<O>>) = batch.drain(..).unzip();
                let count = items.len();
                match flush(items).await {
                    Ok(outputs) if outputs.len() == count => {
                        for (reply, output) in replies.into_iter().zip(outputs) {
                            let _ = reply.send(Ok(output));
                        }
                    }
                    Ok(outputs) => {
                        let error = Arc::new(StoreError::Batch(format!(
                            "{name}: {} outputs for {count} items",
                            outputs.len()
                        )));
                        for reply in replies {
                            let _ = reply.send(Err(error.clone()));
                        }
                    }
                    Err(error) => {
                        tracing::warn!(batch = name, count, %error, "batched write failed");
                        let error = Arc::new(error);
                        for reply in replies {
                            let _ = reply.send(Err(error.clone()));
                        }
                    }
                }
            }
        });
        Self { queue }
    }

    /// Queues one item and waits until the batch holding it is written.
    pub async fn submit(&self, item: I) -> Result<O, StoreError> {
        let (reply, outcome) = oneshot::channel();
        self.queue
            .send((item, reply))
            .map_err(|_| StoreError::Batch("the batch writer has stopped".into()))?;
        match outcome.await {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(error)) => Err(StoreError::Shared(error)),
            Err(_) => Err(StoreError::Batch("the batch writer has stopped".into())),
        }
    }
}

/// The `n`th (1-based) bind parameter on this backend, in statements built from placeholders.
/// SQLite gets anonymous `?`, bound in the order they appear (so each parameter must appear
/// once, in binding order): for a named one, binding searches the statement's list of names,
/// which over a multi-row statement's hundreds of parameters was quadratic.
pub(crate) fn placeholder(kind: StoreKind, n: usize) -> String {
    match kind {
        StoreKind::Postgres => format!("${n}"),
        StoreKind::Sqlite => "?".to_owned(),
    }
}

/// `rows` comma-separated row expressions of `width` parameters each, numbered in order;
/// `row` formats one row from its placeholders, using each once and in order. Multi-row
/// statements are how batches reach the store in one round trip.
pub(crate) fn rows_sql(
    kind: StoreKind,
    rows: usize,
    width: usize,
    row: impl Fn(&[String]) -> String,
) -> String {
    (0..rows)
        .map(|r| {
            let params: Vec<String> = (1..=width)
                .map(|c| placeholder(kind, r * width + c))
                .collect();
            row(&params)
        })
        .collect::<Vec<_>>()
        .join(", ")
}
