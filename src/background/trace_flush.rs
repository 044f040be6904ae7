//! Exports the last spans at shutdown (beside the request flow), once the grace period has let
//! requests finish.

use super::{STOP_MARGIN, after_grace};
use crate::telemetry::trace::Otel;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::Duration;

/// The background service.
pub struct TraceFlush {
    /// The exporter.
    pub otel: Arc<Otel>,
    /// `server.grace_period`.
    pub grace: Duration,
}

#[async_trait]
impl BackgroundService for TraceFlush {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if !after_grace(&mut shutdown, self.grace).await {
            return;
        }
        let otel = self.otel.clone();
        let _ = tokio::time::timeout(STOP_MARGIN, tokio::task::spawn_blocking(move || otel.flush())).await;
    }
}
