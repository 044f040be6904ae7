//! Keeps the identity providers' key sets fresh (beside the request flow, a background service):
//! every second it looks which sources of the snapshot are due (never fetched, past their
//! `max-age` or refresh interval, or failed a while ago) and fetches those; sets of sources no
//! longer configured are dropped.

use crate::admit::auth::jwks::Jwks;
use crate::admit::snapshot::SharedSnapshot;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the sources are looked at.
const TICK: Duration = Duration::from_secs(1);

/// The background service.
pub struct JwksRefresh {
    /// The key sets.
    pub jwks: Arc<Jwks>,
    /// Which sources are configured.
    pub snapshot: Arc<SharedSnapshot>,
}

#[async_trait]
impl BackgroundService for JwksRefresh {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            let snap = self.snapshot.load();
            self.jwks.retain(&snap.jwks);
            let now = Instant::now();
            let due = snap.jwks.iter().filter(|s| self.jwks.due(s, now));
            let fetches = due.map(|s| self.jwks.refresh(s));
            futures_util::future::join_all(fetches).await;
            tokio::select! {
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(TICK) => {}
            }
        }
    }
}
