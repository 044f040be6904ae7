//! Stops Dify's generation when nobody will read it (after the request flow, `logging`, and at
//! shutdown): a client that drops a stream before its end, a stream Dify left silent too long, or
//! streams still open when the grace period after SIGTERM runs out. Dify keeps generating (and
//! billing) to a closed socket unless `POST /v1/completion-messages/{task_id}/stop` is called with
//! the same app key and `user`.

use crate::secret::Secret;
use crate::telemetry::Metrics;
use crate::upstream::{Call, DifyClient};
use bytes::Bytes;
use parking_lot::Mutex;
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
    /// Every cause, for metric pre-creation.
    pub const ALL: [StopCause; 4] = [Self::Client, Self::Disconnect, Self::Shutdown, Self::IdleTimeout];

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
    /// The id of the request that started the generation (sent with the stop).
    pub request_id: String,
}

/// Sends stops to Dify.
pub struct Stopper {
    client: Arc<DifyClient>,
    metrics: Metrics,
    pending: AtomicU64,
}

impl Stopper {
    /// A stopper calling Dify through `client`.
    pub fn new(client: Arc<DifyClient>, metrics: Metrics) -> Self {
        Self {
            client,
            metrics,
            pending: AtomicU64::new(0),
        }
    }

    /// Stops sent in the background that have not finished yet.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Acquire)
    }

    /// Calls Dify's stop for `t`; returns Dify's status. Counted by `cause`.
    pub async fn stop(&self, t: &StopTarget, cause: StopCause) -> Result<u16, String> {
        self.metrics.stop(cause.label());
        let path = format!("/v1/completion-messages/{}/stop", t.task_id);
        let call = Call {
            method: "POST",
            path: &path,
            api_key: t.api_key.expose(),
            json: Some(Bytes::from(serde_json::json!({ "user": t.user }).to_string())),
            request_id: &t.request_id,
            timeout: STOP_TIMEOUT,
            max_body: 64 * 1024,
        };
        self.client
            .call(&call)
            .await
            .map(|r| r.status)
            .map_err(|e| e.detail)
    }

    /// Stops `t` in the background (from `logging`, which must not wait for it).
    pub fn stop_in_background(self: &Arc<Self>, t: StopTarget, cause: StopCause) {
        let me = self.clone();
        me.pending.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(async move {
            if let Err(e) = me.stop(&t, cause).await {
                tracing::warn!(message = "Stopping an abandoned generation failed.", error = %e);
            }
            me.pending.fetch_sub(1, Ordering::AcqRel);
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
