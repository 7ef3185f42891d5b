//! Building and running the application: connect the backends, bind the listener, start the
//! in-process workers when this process should run them, serve until shutdown.

use std::{future::Future, net::SocketAddr, sync::Arc};

use axum::serve::ListenerExt;
use shared::{auth::secret, backends::Backends, config::Config};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{routes, state::AppState};

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Connects everything and binds the listener (port 0 picks a free port).
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        use anyhow::Context;
        let jwt_secret = secret::load_or_create(&config)?;
        let backends = Backends::connect(&config).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {} (LLMOPS_LISTEN)", config.listen))?;
        let state = AppState::new(backends, Arc::new(config), jwt_secret);
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves: stops accepting, finishes in-flight requests, then lets
    /// in-process workers finish or hand back their jobs.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.local_addr();
        let stop = CancellationToken::new();
        let workers = self.spawn_workers(stop.clone());
        let router = routes::app(self.state.clone());
        tracing::info!(
            %addr,
            store = ?self.state.db.kind(),
            queue = if self.state.config.redis_url.is_some() { "redis" } else { "sqlite" },
            workers = workers.is_some(),
            "llmops-api listening; docs at http://{addr}/api/docs"
        );
        let http_stop = stop.clone();
        // Without TCP_NODELAY every Server-Sent Event after the first waits for the client's
        // delayed ACK (about 40 ms on Linux), so streamed answers would arrive in bursts.
        let listener = self.listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = shutdown => {},
                _ = http_stop.cancelled() => {},
            }
        })
        .await?;
        stop.cancel();
        if let Some(workers) = workers {
            workers.await??;
        }
        tracing::info!("llmops-api stopped");
        Ok(())
    }

    fn spawn_workers(&self, stop: CancellationToken) -> Option<JoinHandle<anyhow::Result<()>>> {
        if !self.state.config.api_runs_workers() {
            return None;
        }
        let state = llmops_worker::WorkerState::new(
            self.state.db.clone(),
            self.state.signals.clone(),
            self.state.config.clone(),
        );
        let backend = self.state.queues.backend().clone();
        let settings = self.state.queues.settings().clone();
        Some(tokio::spawn(async move {
            llmops_worker::run_workers(
                state,
                backend,
                settings,
                async move { stop.cancelled().await },
            )
            .await
        }))
    }
}
