//! Public API of the Dify (1.14.1) completion-app simulator: configuration, the server handle and its records.
#![forbid(unsafe_code)]

mod annotations;
mod app_meta;
mod auth;
mod completion;
mod feedback;
mod files;
mod generator;
mod json;
mod previews;
mod pydantic;
mod pyrepr;
mod routes;
mod state;
mod tts;
mod usage;
mod validate;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use state::Shared;

/// One simulated completion app, reachable with `Authorization: Bearer <key>`.
#[derive(Clone, Debug)]
pub struct SimApp {
    pub key: String,
    pub name: String,
    /// App has text-to-speech with `autoPlay: "enabled"`: streams carry `tts_message` events.
    pub tts_autoplay: bool,
}

impl SimApp {
    /// A completion app without TTS autoplay.
    pub fn new(key: impl Into<String>, name: impl Into<String>) -> Self {
        SimApp {
            key: key.into(),
            name: name.into(),
            tts_autoplay: false,
        }
    }
}

/// Simulator behaviour; every timing/count knob can be overridden per request with `x-sim-*` headers.
#[derive(Clone, Debug)]
pub struct SimConfig {
    pub apps: Vec<SimApp>,
    /// Interval of the bare `event: ping` SSE frames while generating (Dify: 10 s).
    pub ping_interval: Duration,
    /// Latency before the first event / the blocking answer starts being generated.
    pub first_event_delay: Duration,
    /// Delay between two `message` events.
    pub event_interval: Duration,
    /// Number of `message` events per answer.
    pub events: usize,
    /// Inject an `error` event (HTTP 400 `completion_request_error` in blocking mode) after N message events.
    pub error_after: Option<usize>,
    /// Per-app concurrent generation limit (Dify `APP_MAX_ACTIVE_REQUESTS`); `None` = unlimited.
    pub concurrency_limit: Option<usize>,
    /// Answer the limit with `429 too_many_requests` (1.16 docs) instead of 1.14.1's `400 invalid_param`.
    pub concurrency_limit_as_429: bool,
    /// Latency of `/info`, `/parameters`, `/site` and `/meta` (Dify reads them from its database).
    pub metadata_delay: Duration,
    /// Dify's `SECRET_KEY`, which signs file links.
    pub secret_key: String,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            apps: vec![SimApp::new("app-demo-writer", "Tea writer")],
            ping_interval: Duration::from_secs(10),
            first_event_delay: Duration::ZERO,
            event_interval: Duration::from_millis(20),
            events: 12,
            error_after: None,
            concurrency_limit: None,
            concurrency_limit_as_429: false,
            metadata_delay: Duration::ZERO,
            secret_key: "sim-secret-key-signing-file-links".into(),
        }
    }
}

/// A request as the simulator received it (recorded before any validation).
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// Path plus `?query` when there is one.
    pub path: String,
    /// Header names are lower-case, in arrival order.
    pub headers: Vec<(String, String)>,
    pub authorization: Option<String>,
    pub body: bytes::Bytes,
    /// `user` from a JSON object body or a multipart text part, `str()`-ed like Dify does.
    pub user: Option<String>,
}

impl RecordedRequest {
    /// First value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How a generation task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskOutcome {
    Running,
    Completed,
    Stopped,
    Errored,
}

/// One generation task (streaming or blocking completion).
#[derive(Clone, Debug)]
pub struct TaskRecord {
    pub task_id: String,
    pub message_id: String,
    pub key: String,
    pub user: String,
    pub streaming: bool,
    pub outcome: TaskOutcome,
    /// Number of `message` (text delta) events generated so far.
    pub events_sent: usize,
}

/// One `POST /v1/completion-messages/{task_id}/stop` call that passed auth and the `user` check.
#[derive(Clone, Debug)]
pub struct StopCall {
    pub task_id: String,
    pub key: String,
    pub user: String,
    /// The task was running and owned by the same app key + user, so the stop flag was set.
    pub applied: bool,
}

/// One successful `POST /v1/files/upload`.
#[derive(Clone, Debug)]
pub struct UploadRecord {
    pub file_id: String,
    pub key: String,
    /// The uploading end user (`DEFAULT-USER` when the form had no `user`).
    pub user: String,
    pub name: String,
    pub size: usize,
    pub mime_type: String,
}

/// A running simulator bound to a local address.
pub struct Simulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl Simulator {
    /// Binds `addr` (use 127.0.0.1:0 for an OS-assigned port) and serves on the current tokio runtime (spawned task).
    pub async fn start(addr: SocketAddr, cfg: SimConfig) -> std::io::Result<Simulator> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(cfg, addr));
        let router = routes::router(shared.clone());
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            let signal = async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            // Small writes go out at once, as a tuned upstream's do (no Nagle delay against the
            // client's delayed ACK).
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, router).with_graceful_shutdown(signal).await;
        });
        Ok(Simulator {
            addr,
            shared,
            shutdown: tx,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT` (no trailing slash, no `/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Request body bytes received so far, counted as they arrive (a body still being sent counts).
    pub fn body_bytes(&self) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.shared.body_bytes.clone()
    }

    /// Makes `GET /health` answer 200 (healthy) or 503.
    pub fn set_healthy(&self, healthy: bool) {
        self.shared
            .healthy
            .store(healthy, std::sync::atomic::Ordering::Release);
    }

    /// Sets Dify's `FILES_URL` (the origin of the signed file links it hands out), e.g. the gateway's.
    pub fn set_files_url(&self, url: &str) {
        *self.shared.files_url.lock() = Some(url.trim_end_matches('/').to_string());
    }

    /// Stores a file as a tool would produce it; the path and query of its signed link.
    pub fn add_tool_file(&self, data: &[u8], mime_type: &str, extension: &str) -> String {
        previews::add_tool_file(&self.shared, data, mime_type, extension)
    }

    /// A signed `image-preview` link (absolute, on `FILES_URL`) of an uploaded file.
    pub fn image_preview_url(&self, file_id: &str) -> String {
        previews::signed_url(&self.shared, file_id, true)
    }

    /// Every request received, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.db.lock().requests.clone()
    }

    /// Forgets recorded requests, tasks and stop calls (app data such as messages stays).
    pub fn clear(&self) {
        let mut db = self.shared.db.lock();
        db.requests.clear();
        db.stop_calls.clear();
        db.tasks.retain(|t| t.outcome == TaskOutcome::Running);
        db.reindex_tasks();
    }

    /// Generation tasks in creation order, with their current outcome.
    pub fn tasks(&self) -> Vec<TaskRecord> {
        self.shared.db.lock().tasks.clone()
    }

    /// Every stop request in arrival order.
    pub fn stop_calls(&self) -> Vec<StopCall> {
        self.shared.db.lock().stop_calls.clone()
    }

    /// Every successful file upload in arrival order.
    pub fn uploads(&self) -> Vec<UploadRecord> {
        self.shared.db.lock().uploads.clone()
    }

    /// The app UUID the simulator assigned to an app key (used in feedback lists and limit messages).
    pub fn app_id(&self, key: &str) -> Option<String> {
        self.shared.app(key).map(|a| a.app_id.clone())
    }

    /// The stored answer of a message (any app), once known.
    pub fn message_answer(&self, message_id: &str) -> Option<String> {
        let db = self.shared.db.lock();
        db.messages.get(message_id).map(|m| m.answer.clone())
    }

    /// Current number of in-flight generations (concurrency slots held) for an app key.
    pub fn active_requests(&self, key: &str) -> usize {
        self.shared.db.lock().active.get(key).copied().unwrap_or(0)
    }

    /// Polls until the task is no longer running (or the timeout passes) and returns its record.
    pub async fn wait_for_task(&self, task_id: &str, timeout: Duration) -> Option<TaskRecord> {
        let deadline = Instant::now() + timeout;
        loop {
            let rec = self.tasks().into_iter().find(|t| t.task_id == task_id);
            let done = rec.as_ref().is_some_and(|t| t.outcome != TaskOutcome::Running);
            if done || Instant::now() >= deadline {
                return rec;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops accepting connections and closes the server (in-flight responses finish gracefully).
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}
