//! On SIGTERM (beside the request flow): waits the grace period, then stops every generation whose
//! stream is still open, before Pingora shuts its runtimes down.

use super::after_grace;
use crate::stream::stop::{ActiveStreams, StopCause, Stopper};
use async_trait::async_trait;
use futures_util::StreamExt;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::Duration;

/// Stops sent to Dify at once when the grace period ends.
const STOPS_AT_ONCE: usize = 32;

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
        // A bounded number at a time: a thousand open streams must not become a thousand
        // simultaneous connections to Dify replicas that each serve a handful.
        let mut calls = Vec::with_capacity(open.len());
        for t in &open {
            calls.push(self.stopper.stop(t, StopCause::Shutdown));
        }
        let mut done = futures_util::stream::iter(calls).buffer_unordered(STOPS_AT_ONCE);
        while let Some(r) = done.next().await {
            if let Err(e) = r {
                tracing::warn!(message = "Stop at shutdown failed.", error = %e);
            }
        }
    }
}
