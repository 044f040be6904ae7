//! Configuration reload on SIGHUP (beside the request flow, a background service): the file is read
//! and validated again; if it is sound, its tenants, apps and JWT keys replace the snapshot at once
//! (requests in flight keep the one they loaded); if not, the old snapshot stays and every problem
//! is logged. Listeners, the upstream, the cache and the rest need a restart.

use crate::admit::snapshot::SharedSnapshot;
use crate::config::{ProcessEnv, Source};
use crate::telemetry::Metrics;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};

/// The outcomes of `config_reloads_total`.
pub const OUTCOMES: [&str; 2] = ["applied", "rejected"];

/// The background service.
pub struct Reloader {
    /// The config file and what it is loaded for.
    pub source: Source,
    /// The snapshot a reload replaces.
    pub snapshot: Arc<SharedSnapshot>,
    /// `config_reloads_total`.
    pub metrics: Metrics,
}

impl Reloader {
    /// Reads and applies the file once; returns whether it was applied.
    pub fn reload(&self) -> bool {
        match self.source.load(&ProcessEnv) {
            Ok(settings) => {
                for t in settings.snapshot.tenants.values() {
                    for a in &t.apps {
                        self.metrics.precreate_app(&t.id, &a.name);
                    }
                }
                self.snapshot.store(settings.snapshot);
                self.metrics.config_reload("applied");
                tracing::info!(message = "Configuration reloaded: tenants, apps and keys replaced.");
                true
            }
            Err(problems) => {
                self.metrics.config_reload("rejected");
                tracing::warn!(message = "Configuration reload rejected; the old one stays.", problems = ?problems);
                false
            }
        }
    }
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!(message = "Cannot listen for SIGHUP; reload is off.");
            return;
        };
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    self.reload();
                }
            }
        }
    }
}
