//! Keeps the replicas' caches in step (beside the request flow, a background service): connects the
//! Redis tier on a runtime that lives as long as the process, listens for invalidations from other
//! replicas over pub/sub (reconnecting as needed) and keeps the `redis_up` gauge current.

use super::{MetadataCache, Scope};
use async_trait::async_trait;
use futures_util::StreamExt;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::Duration;

/// Delay before a lost pub/sub connection is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// The background service.
pub struct CacheSync(pub Arc<MetadataCache>);

#[async_trait]
impl BackgroundService for CacheSync {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(l2) = self.0.redis().cloned() else { return };
        if let Err(e) = l2.connect() {
            tracing::warn!(message = "Redis is not usable; the cache runs in process only.", error = %e);
            return;
        }
        let gauge = self.0.metrics.redis_up.clone();
        let watch = async {
            loop {
                gauge.set(i64::from(l2.is_up()));
                if let Err(e) = self.listen().await {
                    tracing::debug!(message = "Invalidation channel lost.", error = %e);
                }
                gauge.set(i64::from(l2.is_up()));
                tokio::time::sleep(RETRY).await;
            }
        };
        tokio::select! {
            _ = shutdown.changed() => {}
            () = watch => {}
        }
    }
}

impl CacheSync {
    /// Subscribes and applies invalidations until the connection drops.
    async fn listen(&self) -> Result<(), String> {
        let l2 = self.0.redis().ok_or("no redis")?;
        let client = l2.client().map_err(|e| e.to_string())?;
        let mut pubsub = tokio::time::timeout(Duration::from_secs(2), client.get_async_pubsub())
            .await
            .map_err(|_| "pub/sub connect timed out".to_string())?
            .map_err(|e| e.to_string())?;
        pubsub
            .subscribe(super::redis::CHANNEL)
            .await
            .map_err(|e| e.to_string())?;
        self.0.metrics.redis_up.set(i64::from(l2.is_up()));
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            let Ok(text) = msg.get_payload::<String>() else {
                continue;
            };
            match serde_json::from_str::<Scope>(&text) {
                Ok(scope) => self.0.drop_local(&scope),
                Err(e) => tracing::warn!(message = "Unreadable invalidation message.", error = %e),
            }
        }
        Err("pub/sub stream ended".into())
    }
}
