//! Configuration reload on SIGHUP (beside the request flow, a background service): the file is read
//! and validated again; if it is sound, its tenants, apps, JWT keys and key sets replace what the
//! file declared before (the store's tenants stay), and the snapshot is rebuilt at once (requests
//! in flight keep the one they loaded); if not, the old one stays and every problem is logged.
//! The tenant listener's TLS certificate is read again too. Listeners, the upstream, the store, the
//! cache and the rest need a restart.

use crate::config::{ProcessEnv, Source};
use crate::telemetry::Metrics;
use crate::tenancy::Tenancy;
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
    /// What a reload replaces.
    pub tenancy: Arc<Tenancy>,
    /// The tenant listener's certificate, read again on each reload.
    pub certs: Option<Arc<crate::listen::tls::Certs>>,
    /// `config_reloads_total`.
    pub metrics: Metrics,
}

impl Reloader {
    /// Reads and applies the file (and the TLS certificate) once; returns whether the file was
    /// applied.
    pub fn reload(&self) -> bool {
        if let Some(certs) = &self.certs {
            match certs.reload() {
                Ok(()) => tracing::info!(message = "TLS certificate reloaded."),
                Err(e) => {
                    tracing::warn!(message = "TLS certificate reload failed; the old one stays.", error = %e)
                }
            }
        }
        match self.source.load(&ProcessEnv) {
            Ok(settings) => {
                self.tenancy.set_declared(settings.declared);
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
