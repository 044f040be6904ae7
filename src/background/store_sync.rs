//! Keeps the snapshot in step with the store (beside the request flow, a background service): opens
//! the store when start-up could not, then re-reads it whenever the watcher reports a change made
//! by any replica, and says (log line, `store_up`) when the database stops or starts answering.
//! While it does not answer, the last snapshot keeps serving.

use crate::store::{Health, Store, StoreHandle};
use crate::telemetry::Metrics;
use crate::tenancy::Tenancy;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::Duration;

/// Longest wait between two attempts to open a store that did not answer at start-up.
const MAX_RETRY: Duration = Duration::from_secs(30);
/// How soon a failed read of the store is tried again.
const READ_RETRY: Duration = Duration::from_secs(1);

/// The background service.
pub struct StoreSync {
    /// The store.
    pub handle: Arc<StoreHandle>,
    /// What a read of the store updates.
    pub tenancy: Arc<Tenancy>,
    /// `store_up`.
    pub metrics: Metrics,
}

impl StoreSync {
    /// Opens the store, retrying with a growing pause; `None` when shut down first.
    async fn open(&self, shutdown: &mut ShutdownWatch) -> Option<Arc<Store>> {
        if let Some(store) = self.handle.get() {
            return Some(store.clone());
        }
        let mut pause = Duration::from_secs(1);
        loop {
            match self.handle.open().await {
                Ok(store) => {
                    tracing::info!(message = "Store opened; its tenants are served from now on.");
                    return Some(store.clone());
                }
                Err(e) => {
                    tracing::warn!(message = "Store still unreachable; serving the configuration file's tenants.", error = %e, retry_in = ?pause);
                }
            }
            tokio::select! {
                _ = shutdown.changed() => return None,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(MAX_RETRY);
        }
    }

    /// Acts on what the watcher saw; returns whether the store still has to be read.
    async fn seen(&self, store: &Store, h: Health) -> bool {
        if self.handle.set_up(h.up) {
            self.metrics.store_up.set(i64::from(h.up));
            if h.up {
                tracing::info!(message = "Store answers again.");
            } else {
                tracing::warn!(
                    message = "Store unreachable: serving the last snapshot; admin changes answer 503 until it is back."
                );
            }
        }
        if !h.up {
            return true;
        }
        self.read(store).await
    }

    /// Reads the store into the snapshot; returns whether that failed (and must be tried again).
    async fn read(&self, store: &Store) -> bool {
        match self.tenancy.refresh(store).await {
            Ok(changed) => {
                if changed {
                    tracing::info!(message = "Store changed; snapshot rebuilt.");
                }
                false
            }
            Err(e) => {
                tracing::warn!(message = "Store read failed; the last snapshot stays, retrying.", error = %e);
                true
            }
        }
    }
}

#[async_trait]
impl BackgroundService for StoreSync {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(store) = self.open(&mut shutdown).await else {
            return;
        };
        self.metrics.store_up.set(1);
        let mut health = store.watch();
        // A change noticed but not read yet (the read failed): tried again until it succeeds.
        let mut unread = false;
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                changed = health.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let h = *health.borrow_and_update();
                    unread = self.seen(&store, h).await;
                }
                () = tokio::time::sleep(READ_RETRY), if unread && self.handle.is_up() => {
                    unread = self.read(&store).await;
                }
            }
        }
    }
}
