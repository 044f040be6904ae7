//! Ends the process as soon as a graceful stop has nothing left to wait for (beside the request flow):
//! after SIGTERM, once no request is in flight and no stop is on its way to Dify, the last spans are
//! exported and the process exits, instead of sitting out the whole grace period with nothing to do.

use crate::stream::stop::Stopper;
use crate::telemetry::trace::Otel;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// How often the drain looks at what is left.
const POLL: Duration = Duration::from_millis(50);

/// Counts the requests in flight; each request holds one [`InFlight`] from `new_ctx` to its end.
#[derive(Debug, Default)]
pub struct Requests(AtomicUsize);

impl Requests {
    /// Requests in flight now.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// One request in flight; dropping it (when the request's context goes) ends it.
#[derive(Debug)]
pub struct InFlight(Arc<Requests>);

impl InFlight {
    /// Counts a new request.
    pub fn enter(requests: &Arc<Requests>) -> Self {
        requests.0.fetch_add(1, Ordering::AcqRel);
        Self(requests.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The background service.
pub struct Drain {
    /// Requests in flight.
    pub requests: Arc<Requests>,
    /// Its pending stops are waited for.
    pub stopper: Arc<Stopper>,
    /// Flushed before exiting.
    pub otel: Option<Arc<Otel>>,
}

#[async_trait]
impl BackgroundService for Drain {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if shutdown.changed().await.is_err() {
            return;
        }
        while self.requests.count() > 0 || self.stopper.pending() > 0 {
            tokio::time::sleep(POLL).await;
        }
        tracing::info!(message = "Nothing left in flight: exiting before the end of the grace period.");
        if let Some(otel) = self.otel.clone() {
            let flush = tokio::task::spawn_blocking(move || otel.flush());
            let _ = tokio::time::timeout(super::STOP_MARGIN, flush).await;
        }
        std::process::exit(0);
    }
}
