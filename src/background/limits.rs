//! Keeps the limits' leases alive and their gauges true (beside the request flow, a background
//! service): every third of `limits.lease_ttl` this replica renews the leases of its completions in
//! flight on Redis (so a lease outlives a crashed replica by at most the lease lifetime), and every
//! 15 s it reads what each limited tenant uses to set `limit_remaining`. Releases Redis did not take
//! are tried again here. During a graceful stop it keeps renewing until the last lease is released.

use crate::admit::snapshot::SharedSnapshot;
use crate::limits::Limiter;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often `limit_remaining` is read from where the limits are kept.
const GAUGES_EVERY: Duration = Duration::from_secs(15);

/// The background service.
pub struct LimitUpkeep {
    /// The limiter.
    pub limiter: Arc<Limiter>,
    /// Which tenants have limits.
    pub snapshot: Arc<SharedSnapshot>,
}

#[async_trait]
impl BackgroundService for LimitUpkeep {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut gauges_due = Instant::now();
        loop {
            self.limiter.renew().await;
            if Instant::now() >= gauges_due {
                let snap = self.snapshot.load();
                self.limiter
                    .refresh_gauges(snap.tenants.values().map(|t| &**t))
                    .await;
                gauges_due = Instant::now() + GAUGES_EVERY;
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                () = tokio::time::sleep(self.limiter.renew_every()) => {}
            }
        }
        // Shutting down: streams may run out their grace period; their leases stay renewed.
        while self.limiter.held() > 0 {
            tokio::time::sleep(self.limiter.renew_every()).await;
            self.limiter.renew().await;
        }
    }
}
