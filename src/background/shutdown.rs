//! On SIGTERM (beside the request flow): waits the grace period, then stops every generation whose
//! stream is still open, before Pingora shuts its runtimes down.

use super::after_grace;
use crate::stream::stop::{ActiveStreams, StopCause, Stopper};
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::Duration;

/// The background service.
pub struct ShutdownStops {
    /// Streams to stop.
    pub streams: Arc<ActiveStreams>,
    /// How to stop them.
    pub stopper: Arc<Stopper>,
    /// `server.grace_period`.
    pub grace: Duration,
}

#[async_trait]
impl BackgroundService for ShutdownStops {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if !after_grace(&mut shutdown, self.grace).await {
            return;
        }
        let open = self.streams.snapshot();
        if !open.is_empty() {
            tracing::info!(
                message = "Grace period over: stopping open generations.",
                count = open.len()
            );
        }
        let calls = open.iter().map(|t| self.stopper.stop(t, StopCause::Shutdown));
        for r in futures_util::future::join_all(calls).await {
            if let Err(e) = r {
                tracing::warn!(message = "Stop at shutdown failed.", error = %e);
            }
        }
    }
}
