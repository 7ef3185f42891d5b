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
    name: &'static str,
    queue: mpsc::UnboundedSender<(I, Reply<O>)>,
}

impl<I, O> Clone for Batcher<I, O> {
    fn clone(&self) -> Self {
        Self {
            name: self.name,
            queue: self.queue.clone(),
        }
    }
}

impl<I: Clone + Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the writer task. `flush` gets up to [`MAX_BATCH`] items and returns one output
    /// per item, in order; it must write all of them or none. When the store refuses a batch
    /// because of a value in it ([`refuses_a_value`]), its items are written again one at a
    /// time, so only the item holding that value fails, with its own error; any other error
    /// goes to every caller of the batch. The task ends when the last handle is dropped.
    pub fn spawn<F, Fut>(name: &'static str, mut flush: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<O>, StoreError>> + Send,
    {
        let (queue, mut pending) = mpsc::unbounded_channel::<(I, Reply<O>)>();
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while pending.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let (items, replies): (Vec<I>, Vec<Reply<O>>) = batch.drain(..).unzip();
                // Kept for a retry one by one; a lone item has nothing to be isolated from.
                let retry = (items.len() > 1).then(|| items.clone());
                match (write(name, &mut flush, items).await, retry) {
                    (Err(error), Some(items)) if refuses_a_value(&error) => {
                        tracing::warn!(batch = name, count = items.len(), %error,
                            "the store refused a value in a batched write; writing its items one at a time");
                        write_one_by_one(name, &mut flush, items, replies).await;
                    }
                    (outcome, _) => answer(name, outcome, replies),
                }
            }
        });
        Self { name, queue }
    }

    /// Queues one item and waits until the batch holding it is written.
    pub async fn submit(&self, item: I) -> Result<O, StoreError> {
        let (reply, outcome) = oneshot::channel();
        self.queue
            .send((item, reply))
            .map_err(|_| StoreError::BatchWriterStopped(self.name))?;
        match outcome.await {
            Ok(Ok(output)) => Ok(output),
            Ok(Err(error)) => Err(StoreError::Shared(error)),
            Err(_) => Err(StoreError::BatchWriterStopped(self.name)),
        }
    }
}

/// One flush, checked to give one output per item.
async fn write<I, O, F, Fut>(
    name: &'static str,
    flush: &mut F,
    items: Vec<I>,
) -> Result<Vec<O>, StoreError>
where
    F: Fn(Vec<I>) -> Fut,
    Fut: Future<Output = Result<Vec<O>, StoreError>>,
{
    let count = items.len();
    let outputs = flush(items).await?;
    if outputs.len() != count {
        return Err(StoreError::BatchShape {
            name,
            outputs: outputs.len(),
            items: count,
        });
    }
    Ok(outputs)
}

/// Sends every caller of a batch its output, or the batch's error.
fn answer<O>(name: &str, outcome: Result<Vec<O>, StoreError>, replies: Vec<Reply<O>>) {
    match outcome {
        Ok(outputs) => {
            for (reply, output) in replies.into_iter().zip(outputs) {
                let _ = reply.send(Ok(output));
            }
        }
        Err(error) => {
            tracing::warn!(batch = name, count = replies.len(), %error, "batched write failed");
            let error = Arc::new(error);
            for reply in replies {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }
}

/// Writes a refused batch's items one at a time. Once a write fails for another reason than
/// a refused value (the store went away), the items left get that error at once instead of
/// each waiting for the same failure.
async fn write_one_by_one<I, O, F, Fut>(
    name: &'static str,
    flush: &mut F,
    items: Vec<I>,
    replies: Vec<Reply<O>>,
) where
    F: Fn(Vec<I>) -> Fut,
    Fut: Future<Output = Result<Vec<O>, StoreError>>,
{
    let mut pairs = items.into_iter().zip(replies);
    for (item, reply) in pairs.by_ref() {
        match write(name, flush, vec![item]).await {
            Ok(mut output) => {
                let _ = reply.send(Ok(output.remove(0)));
            }
            Err(error) if refuses_a_value(&error) => {
                tracing::warn!(batch = name, %error, "the store refused an item of a batched write");
                let _ = reply.send(Err(Arc::new(error)));
            }
            Err(error) => {
                let rest: Vec<Reply<O>> = pairs.map(|(_, reply)| reply).collect();
                answer(
                    name,
                    Err(error),
                    std::iter::once(reply).chain(rest).collect(),
                );
                return;
            }
        }
    }
}

/// Whether the store refused the statement because of a value in it (a row it cannot store),
/// as opposed to failing as a whole (connection lost, server shutting down, pool exhausted):
/// Postgres' data exceptions (SQLSTATE class 22, e.g. text it cannot encode), integrity
/// constraint violations (23) and program limits (54, e.g. a value too large); SQLite's
/// `TOOBIG`, `CONSTRAINT` and `MISMATCH`.
pub fn refuses_a_value(error: &StoreError) -> bool {
    let database = match error {
        StoreError::Sqlx(sqlx::Error::Database(database)) => database,
        StoreError::Shared(inner) => return refuses_a_value(inner),
        _ => return false,
    };
    let Some(code) = database.code() else {
        return false;
    };
    if database
        .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
        .is_some()
    {
        return ["22", "23", "54"]
            .iter()
            .any(|class| code.starts_with(class));
    }
    // SQLite reports extended result codes; the primary code is the low byte.
    const SQLITE_TOOBIG: i32 = 18;
    const SQLITE_CONSTRAINT: i32 = 19;
    const SQLITE_MISMATCH: i32 = 20;
    code.parse::<i32>().is_ok_and(|code| {
        matches!(
            code & 0xff,
            SQLITE_TOOBIG | SQLITE_CONSTRAINT | SQLITE_MISMATCH
        )
    })
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
