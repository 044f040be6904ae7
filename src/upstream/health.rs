//! Active health checks of the Dify replicas (beside the request flow; the background service calls
//! [`Upstream::check_all`]): `GET {base}{health_check_path}` on each replica, healthy while it answers
//! 2xx within the check's time limit. A replica that accepts connections but answers 5xx leaves the
//! pool; one that passes again returns (ending a passive ejection too). One log line per change.

use super::{Replica, Upstream};
use crate::outbound::Outbound;
use std::sync::Arc;
use std::time::Duration;

impl Upstream {
    /// Checks one replica: whether it answered `path` with 2xx within `limit`.
    async fn check(&self, out: &Outbound, replica: &Replica, path: &str, limit: Duration) -> bool {
        let origin = self.origin_of(replica);
        let mut peer = self.peer_of(replica, false);
        peer.options.connection_timeout = Some(limit);
        let target = format!("{}{path}", origin.base_path);
        let Ok(mut head) = pingora::http::RequestHeader::build("GET", target.as_bytes(), None) else {
            return false;
        };
        if head.insert_header("host", origin.authority.as_str()).is_err() {
            return false;
        }
        matches!(out.send(&peer, head, None, limit, 64 * 1024).await, Ok(r) if (200..300).contains(&r.status))
    }

    /// Checks every replica once (concurrently) and records the outcomes.
    pub async fn check_all(&self, out: &Outbound) {
        let Some(path) = self.settings().health_check_path.clone() else {
            return;
        };
        let limit = self.settings().health_check_interval.min(Duration::from_secs(2));
        let replicas: Vec<Arc<Replica>> = self.pool().replicas().iter().cloned().collect();
        let checks = replicas.iter().map(|r| self.check(out, r, &path, limit));
        let outcomes = futures_util::future::join_all(checks).await;
        for (r, healthy) in replicas.iter().zip(outcomes) {
            if self.pool().set_health(r, healthy) {
                if healthy {
                    tracing::info!(message = "Dify replica passes its health check: back in the pool.", upstream = %r.label);
                } else {
                    tracing::warn!(message = "Dify replica fails its health check: out of the pool.", upstream = %r.label);
                }
            }
        }
        if !self.pool().any_healthy() && !replicas.is_empty() {
            tracing::debug!(message = "No Dify replica is healthy.");
        }
    }
}
