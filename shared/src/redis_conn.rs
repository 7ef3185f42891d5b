//! Redis connections that heal themselves.
//!
//! A [`ConnectionManager`] reconnects after its connection breaks, but only once a command has
//! failed on the broken one: after a Redis restart the first command of every connection
//! fails (`broken pipe`) and starts the reconnect. [`retry_once`] sends such a command again,
//! on the new connection, before it counts as a failure. Everything we send through it is
//! safe to send twice: pushes carry fixed job ids (a second push is a no-op), signals are
//! hints, pings and scripts are idempotent.

use std::{future::Future, time::Duration};

use redis::{
    RedisError, RedisResult,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

/// Reconnect attempts per broken connection before a command fails. Few and short: while
/// Redis is down, a caller learns it within about a second (and, say, stores a run to be
/// queued later) instead of waiting out a long backoff.
const RECONNECT_ATTEMPTS: usize = 2;
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);

/// A connection manager with the reconnect policy above.
pub async fn connect(url: &str) -> RedisResult<ConnectionManager> {
    let client = redis::Client::open(url)?;
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(RECONNECT_ATTEMPTS)
        .set_max_delay(RECONNECT_MAX_DELAY);
    ConnectionManager::new_with_config(client, config).await
}

/// Whether the error says the connection (not the command) failed: worth one retry.
pub fn is_connection_error(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.is_unrecoverable_error()
}

/// Runs `op`, and once more when it failed on a broken connection (the manager has started
/// reconnecting by then, and the second try waits for it).
pub async fn retry_once<T, E, F, Fut>(mut op: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: RetryableError,
{
    match op().await {
        Err(error) if error.is_connection_error() => {
            tracing::debug!(%error, "redis connection broken; retrying on a new one");
            op().await
        }
        done => done,
    }
}

/// An error that may say the Redis connection broke.
pub trait RetryableError: std::fmt::Display {
    fn is_connection_error(&self) -> bool;
}

impl RetryableError for RedisError {
    fn is_connection_error(&self) -> bool {
        is_connection_error(self)
    }
}

impl RetryableError for apalis_redis::Error {
    fn is_connection_error(&self) -> bool {
        match self {
            apalis_redis::Error::Database(e) => is_connection_error(e),
            _ => false,
        }
    }
}
