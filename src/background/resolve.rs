//! Keeps the pool of Dify replicas current (beside the request flow): host names are resolved again
//! every `upstream.resolve_interval` (a Kubernetes headless Service's pods come and go), and every
//! replica is health-checked every `upstream.health_check_interval`.

use crate::upstream::Upstream;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;

/// The background service.
pub struct Resolver(pub Arc<Upstream>);

#[async_trait]
impl BackgroundService for Resolver {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let s = self.0.settings();
        let (resolve_every, check_every) = (s.resolve_interval, s.health_check_interval);
        let names = self.0.needs_refresh();
        let out = crate::outbound::Outbound::default();
        let now = tokio::time::Instant::now();
        let (mut next_check, mut next_resolve) = (now, now + resolve_every);
        loop {
            let now = tokio::time::Instant::now();
            if now >= next_check {
                self.0.check_all(&out).await;
                next_check = tokio::time::Instant::now() + check_every;
            }
            if names && tokio::time::Instant::now() >= next_resolve {
                let up = self.0.clone();
                let _ = tokio::task::spawn_blocking(move || up.refresh()).await;
                next_resolve = tokio::time::Instant::now() + resolve_every;
            }
            // Each on its own clock: a short resolve_interval is not held to the checks' pace.
            let wake = if names {
                next_check.min(next_resolve)
            } else {
                next_check
            };
            tokio::select! {
                _ = shutdown.changed() => return,
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }
}
