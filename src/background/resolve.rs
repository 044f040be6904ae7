//! Re-resolves a host-name upstream (beside the request flow) so that a moved Dify is followed
//! without a restart.

use crate::upstream::Upstream;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::Duration;

/// How often a host-name upstream is re-resolved.
const RESOLVE_EVERY: Duration = Duration::from_secs(30);

/// The background service.
pub struct Resolver(pub Arc<Upstream>);

#[async_trait]
impl BackgroundService for Resolver {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(RESOLVE_EVERY) => {
                    let up = self.0.clone();
                    let _ = tokio::task::spawn_blocking(move || up.refresh()).await;
                }
            }
        }
    }
}
