//! Stops Dify's generation when nobody will read it (after the request flow, `logging`, and at
//! shutdown): a client that drops a stream before its end, or streams still open when the grace
//! period after SIGTERM runs out. Dify keeps generating (and billing) to a closed socket unless
//! `POST /v1/completion-messages/{task_id}/stop` is called with the same app key and `user`.

use crate::metrics::Metrics;
use crate::secret::Secret;
use crate::upstream::Upstream;
use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Longest time one stop call may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a stop was sent; `label()` is the bounded `cause` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// The client called stop itself (forwarded).
    Client,
    /// The client went away before the stream ended.
    Disconnect,
    /// The grace period after SIGTERM ran out.
    Shutdown,
    /// Dify's stream fell silent for longer than `upstream.stream_idle_timeout`.
    IdleTimeout,
}

impl StopCause {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Disconnect => "disconnect",
            Self::Shutdown => "shutdown",
            Self::IdleTimeout => "idle_timeout",
        }
    }
}

/// Everything needed to stop one generation.
#[derive(Debug, Clone)]
pub struct StopTarget {
    /// Dify's task id.
    pub task_id: String,
    /// The app key the generation was started with.
    pub api_key: Secret,
    /// `user` as Dify saw it.
    pub user: String,
}

/// Sends stops to Dify.
pub struct Stopper {
    upstream: Arc<Upstream>,
    connector: Connector,
    metrics: Metrics,
}

impl Stopper {
    /// A stopper towards `upstream`.
    pub fn new(upstream: Arc<Upstream>, metrics: Metrics) -> Self {
        Self {
            upstream,
            connector: Connector::new(None),
            metrics,
        }
    }

    /// Calls Dify's stop for `t`; returns Dify's status. Counted by `cause`.
    pub async fn stop(&self, t: &StopTarget, cause: StopCause) -> Result<u16, String> {
        self.metrics.stop(cause.label());
        match tokio::time::timeout(STOP_TIMEOUT, self.send(t)).await {
            Ok(r) => r,
            Err(_) => Err("stop timed out".into()),
        }
    }

    async fn send(&self, t: &StopTarget) -> Result<u16, String> {
        let peer = self.upstream.peer().ok_or("upstream not resolved")?;
        let s = self.upstream.settings();
        let body = Bytes::from(serde_json::json!({ "user": t.user }).to_string());
        let path = format!("{}/v1/completion-messages/{}/stop", s.base_path, t.task_id);
        let mut req = RequestHeader::build("POST", path.as_bytes(), None).map_err(|e| e.to_string())?;
        let headers = [
            ("host", s.authority.clone()),
            ("authorization", format!("Bearer {}", t.api_key.expose())),
            ("content-type", "application/json".to_string()),
            ("content-length", body.len().to_string()),
        ];
        for (k, v) in headers {
            req.insert_header(k, v).map_err(|e| e.to_string())?;
        }
        let (mut session, _) = self
            .connector
            .get_http_session(&peer)
            .await
            .map_err(|e| e.to_string())?;
        session
            .write_request_header(Box::new(req))
            .await
            .map_err(|e| e.to_string())?;
        session
            .write_request_body(body, true)
            .await
            .map_err(|e| e.to_string())?;
        session.finish_request_body().await.map_err(|e| e.to_string())?;
        session.read_response_header().await.map_err(|e| e.to_string())?;
        let status = session.response_header().map(|h| h.status.as_u16()).unwrap_or(0);
        while let Ok(Some(_)) = session.read_response_body().await {}
        self.connector.release_http_session(session, &peer, None).await;
        Ok(status)
    }

    /// Stops `t` in the background (from `logging`, which must not wait for it).
    pub fn stop_in_background(self: &Arc<Self>, t: StopTarget, cause: StopCause) {
        let me = self.clone();
        tokio::spawn(async move {
            if let Err(e) = me.stop(&t, cause).await {
                tracing::warn!(message = "Stopping an abandoned generation failed.", error = %e);
            }
        });
    }
}

/// Streams open right now whose generation is still running, so that shutdown can stop them.
#[derive(Default)]
pub struct ActiveStreams {
    next: AtomicU64,
    open: Mutex<HashMap<u64, StopTarget>>,
}

impl ActiveStreams {
    /// Registers a stream; returns its handle for [`ActiveStreams::remove`].
    pub fn insert(&self, t: StopTarget) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.open.lock().insert(id, t);
        id
    }

    /// Forgets a stream that ended.
    pub fn remove(&self, id: u64) {
        self.open.lock().remove(&id);
    }

    /// Streams still open.
    pub fn snapshot(&self) -> Vec<StopTarget> {
        self.open.lock().values().cloned().collect()
    }
}

/// Waits for the shutdown signal, then for `grace`; false when the signal can no longer come.
pub async fn after_grace(shutdown: &mut ShutdownWatch, grace: Duration) -> bool {
    if shutdown.changed().await.is_err() {
        return false;
    }
    tokio::time::sleep(grace).await;
    true
}

/// On SIGTERM: waits the grace period, then stops every generation whose stream is still open,
/// before Pingora shuts its runtimes down.
pub struct ShutdownStops {
    /// Streams to stop.
    pub streams: Arc<ActiveStreams>,
    /// How to stop them.
    pub stopper: Arc<Stopper>,
    /// `server.grace_period`.
    pub grace: Duration,
}

#[async_trait]
impl BackgroundService for ShutdownStops {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if !after_grace(&mut shutdown, self.grace).await {
            return;
        }
        let open = self.streams.snapshot();
        if !open.is_empty() {
            tracing::info!(
                message = "Grace period over: stopping open generations.",
                count = open.len()
            );
        }
        let calls = open.iter().map(|t| self.stopper.stop(t, StopCause::Shutdown));
        for r in futures_util::future::join_all(calls).await {
            if let Err(e) = r {
                tracing::warn!(message = "Stop at shutdown failed.", error = %e);
            }
        }
    }
}
