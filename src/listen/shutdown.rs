//! How the tenant listener ends (after the last request step, on a signal): SIGTERM first marks the
//! gateway as draining (`/readyz` answers 503) and keeps accepting for `server.shutdown_delay`, so
//! that a load balancer stops sending new connections before the listener closes (connections still
//! queued when a listening socket closes are reset); then Pingora's graceful stop lets requests
//! finish within the grace period. SIGINT stops at once, SIGQUIT hands over to a new process.

use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

/// Whether the gateway is on its way out (set on SIGTERM, read by `/readyz`).
#[derive(Debug, Default)]
pub struct Draining(AtomicBool);

impl Draining {
    /// True once SIGTERM came.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// The signal watch Pingora's main loop waits on.
pub struct Signals {
    /// Set on SIGTERM.
    pub draining: Arc<Draining>,
    /// `server.shutdown_delay`.
    pub delay: Duration,
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let (Ok(mut quit), Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::quit()),
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!(message = "Cannot watch signals; stopping.");
            return ShutdownSignal::FastShutdown;
        };
        tokio::select! {
            _ = quit.recv() => return ShutdownSignal::GracefulUpgrade,
            _ = int.recv() => return ShutdownSignal::FastShutdown,
            _ = term.recv() => {}
        }
        self.draining.set();
        if !self.delay.is_zero() {
            tracing::info!(
                message = "SIGTERM: draining; still accepting until the delay ends.",
                delay_ms = self.delay.as_millis() as u64
            );
            tokio::select! {
                () = tokio::time::sleep(self.delay) => {}
                _ = int.recv() => return ShutdownSignal::FastShutdown,
            }
        }
        ShutdownSignal::GracefulTerminate
    }
}
