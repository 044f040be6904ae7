//! Keeps Redis and the replicas in step (beside the request flow, a background service): connects the
//! Redis tier on a runtime that lives as long as the process, listens for cache invalidations from
//! other replicas over pub/sub (reconnecting as needed) and keeps the `redis_up` gauge current.

use crate::cache::{MetadataCache, Scope};
use crate::redis::{CHANNEL, RedisTier};
use crate::telemetry::Metrics;
use async_trait::async_trait;
use futures_util::StreamExt;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::Duration;

/// Delay before a lost pub/sub connection is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// The background service.
pub struct RedisSync {
    /// The shared tier.
    pub redis: Arc<RedisTier>,
    /// The cache whose entries other replicas invalidate (`None` when the cache is off).
    pub cache: Option<Arc<MetadataCache>>,
    /// For the `redis_up` gauge.
    pub metrics: Metrics,
}

#[async_trait]
impl BackgroundService for RedisSync {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if let Err(e) = self.redis.connect() {
            tracing::warn!(message = "Redis is not usable; running in process only.", error = %e);
            return;
        }
        self.redis.warm().await;
        let watch = async {
            let mut warned = false;
            for attempt in 0.. {
                self.metrics.redis_up.set(i64::from(self.redis.is_up()));
                match self.listen(attempt, &mut warned).await {
                    // Once per outage, not once per retry.
                    Err(e) if !warned => {
                        tracing::warn!(message = "Redis is not reachable; running in process until it is.", error = %e);
                        warned = true;
                    }
                    Err(e) => tracing::debug!(message = "Invalidation channel lost.", error = %e),
                    Ok(()) => {}
                }
                // No pub/sub connection: Redis is not usable, whatever the breaker says.
                self.metrics.redis_up.set(0);
                tokio::time::sleep(RETRY).await;
            }
        };
        tokio::select! {
            _ = shutdown.changed() => {}
            () = watch => {}
        }
    }
}

impl RedisSync {
    /// Subscribes and applies invalidations until the connection drops.
    async fn listen(&self, attempt: usize, warned: &mut bool) -> Result<(), String> {
        let mut pubsub = tokio::time::timeout(Duration::from_secs(2), self.redis.pubsub(attempt))
            .await
            .map_err(|_| "pub/sub connect timed out".to_string())?
            .map_err(|e| e.to_string())?;
        tokio::time::timeout(Duration::from_secs(2), pubsub.subscribe(CHANNEL))
            .await
            .map_err(|_| "subscribe timed out".to_string())?
            .map_err(|e| e.to_string())?;
        if std::mem::take(warned) {
            tracing::info!(message = "Redis is reachable again.");
        }
        self.metrics.redis_up.set(i64::from(self.redis.is_up()));
        let mut messages = pubsub.on_message();
        while let Some(msg) = messages.next().await {
            let (Some(cache), Ok(sealed)) = (&self.cache, msg.get_payload::<Vec<u8>>()) else {
                continue;
            };
            let Some(text) = self.redis.open("subscribe", CHANNEL, &sealed) else {
                continue;
            };
            match serde_json::from_slice::<Scope>(&text) {
                Ok(scope) => cache.drop_local(&scope),
                Err(e) => tracing::warn!(message = "Unreadable invalidation message.", error = %e),
            }
        }
        Err("pub/sub stream ended".into())
    }
}
