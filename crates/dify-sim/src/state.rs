//! Shared in-memory "database" of the simulator: apps, end users, tasks, messages, feedback, annotations, files.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::Notify;

use crate::{RecordedRequest, SimConfig, StopCall, TaskOutcome, TaskRecord, UploadRecord};

/// The end user Dify uses when an optional `user` is absent.
pub(crate) const DEFAULT_USER: &str = "DEFAULT-USER";

pub(crate) fn new_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A configured app with its simulated database identity.
#[derive(Clone, Debug)]
pub(crate) struct AppEntry {
    pub key: String,
    pub name: String,
    pub tts_autoplay: bool,
    pub app_id: String,
}

/// Stop flag of a running generation; `notify` wakes the generator early.
#[derive(Default)]
pub(crate) struct StopHandle {
    flag: AtomicBool,
    pub notify: Notify,
}

impl StopHandle {
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    pub fn set(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }
}

pub(crate) struct RunningTask {
    pub key: String,
    pub user: String,
    pub stop: Arc<StopHandle>,
}

#[derive(Clone, Debug)]
pub(crate) struct MessageRec {
    pub key: String,
    pub user: String,
    pub end_user_id: String,
    pub conversation_id: String,
    pub answer: String,
}

#[derive(Clone, Debug)]
pub(crate) struct FeedbackRec {
    pub id: String,
    pub key: String,
    pub conversation_id: String,
    pub message_id: String,
    pub end_user_id: String,
    pub rating: String,
    pub content: Option<String>,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
    pub updated: bool,
}

#[derive(Clone, Debug)]
pub(crate) struct AnnotationRec {
    pub id: String,
    pub key: String,
    pub question: String,
    pub answer: String,
    pub created_at: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct JobRec {
    pub action: String,
    pub polls: usize,
}

/// Annotation-reply setting of an app (shown by /parameters once enabled).
#[derive(Clone, Debug)]
pub(crate) struct AnnotationSetting {
    pub id: String,
    pub score_threshold: Value,
    pub provider: String,
    pub model: String,
}

#[derive(Default)]
pub(crate) struct Db {
    pub requests: Vec<RecordedRequest>,
    pub tasks: Vec<TaskRecord>,
    pub task_index: HashMap<String, usize>,
    pub running: HashMap<String, RunningTask>,
    pub stop_calls: Vec<StopCall>,
    pub messages: HashMap<String, MessageRec>,
    pub end_users: HashMap<(String, String), String>,
    pub feedbacks: Vec<FeedbackRec>,
    pub annotations: Vec<AnnotationRec>,
    pub jobs: HashMap<String, JobRec>,
    pub uploads: Vec<UploadRecord>,
    /// Uploaded files by id (served by the signed file links).
    pub files: HashMap<String, crate::previews::StoredFile>,
    /// Files tools produced, by id.
    pub tool_files: HashMap<String, crate::previews::StoredFile>,
    pub active: HashMap<String, usize>,
    pub annotation_settings: HashMap<String, AnnotationSetting>,
}

impl Db {
    pub fn reindex_tasks(&mut self) {
        self.task_index = self
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.task_id.clone(), i))
            .collect();
    }

    pub fn task_mut(&mut self, task_id: &str) -> Option<&mut TaskRecord> {
        let idx = *self.task_index.get(task_id)?;
        self.tasks.get_mut(idx)
    }
}

pub(crate) struct Shared {
    pub cfg: SimConfig,
    pub apps: Vec<AppEntry>,
    pub tenant_id: String,
    pub addr: SocketAddr,
    pub db: Mutex<Db>,
    /// Request body bytes received so far, counted as they arrive (before a body is complete).
    pub body_bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// `GET /health` answers 200 (else 503).
    pub healthy: std::sync::atomic::AtomicBool,
    /// Dify's `FILES_URL`: the origin signed file links point at (default: the simulator's own).
    pub files_url: Mutex<Option<String>>,
}

impl Shared {
    /// The origin signed file links point at.
    pub fn files_url(&self) -> String {
        self.files_url
            .lock()
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.addr))
    }

    pub fn new(cfg: SimConfig, addr: SocketAddr) -> Self {
        let apps = cfg
            .apps
            .iter()
            .map(|a| AppEntry {
                key: a.key.clone(),
                name: a.name.clone(),
                tts_autoplay: a.tts_autoplay,
                app_id: new_uuid(),
            })
            .collect();
        Shared {
            cfg,
            apps,
            tenant_id: new_uuid(),
            addr,
            db: Mutex::new(Db::default()),
            body_bytes: Default::default(),
            files_url: Mutex::new(None),
            healthy: std::sync::atomic::AtomicBool::new(true),
        }
    }

    pub fn app(&self, key: &str) -> Option<&AppEntry> {
        self.apps.iter().find(|a| a.key == key)
    }

    /// The EndUser UUID for (app, user), created on first sight like Dify does.
    pub fn end_user_id(&self, key: &str, user: &str) -> String {
        let mut db = self.db.lock();
        db.end_users
            .entry((key.to_string(), user.to_string()))
            .or_insert_with(new_uuid)
            .clone()
    }

    pub fn record_request(&self, rec: RecordedRequest) {
        self.db.lock().requests.push(rec);
    }

    /// Registers a new running task and its (still empty) message; returns the stop handle.
    pub fn register_task(&self, rec: TaskRecord, msg: MessageRec) -> Arc<StopHandle> {
        let stop = Arc::new(StopHandle::default());
        let mut db = self.db.lock();
        let running = RunningTask {
            key: rec.key.clone(),
            user: rec.user.clone(),
            stop: stop.clone(),
        };
        db.running.insert(rec.task_id.clone(), running);
        db.messages.insert(rec.message_id.clone(), msg);
        let idx = db.tasks.len();
        db.task_index.insert(rec.task_id.clone(), idx);
        db.tasks.push(rec);
        stop
    }

    pub fn task_progress(&self, task_id: &str, events_sent: usize) {
        if let Some(t) = self.db.lock().task_mut(task_id) {
            t.events_sent = events_sent;
        }
    }

    /// Marks the task finished, stores the answer and forgets the owner key (stop no longer applies).
    pub fn finish_task(&self, task_id: &str, message_id: &str, outcome: TaskOutcome, answer: String) {
        let mut db = self.db.lock();
        db.running.remove(task_id);
        if let Some(t) = db.task_mut(task_id) {
            t.outcome = outcome;
        }
        if let Some(m) = db.messages.get_mut(message_id) {
            m.answer = answer;
        }
    }

    /// Applies a stop request when the task runs and belongs to the same app key + user.
    pub fn stop_task(&self, task_id: &str, key: &str, user: &str) -> bool {
        let mut db = self.db.lock();
        let applied = match db.running.get(task_id) {
            Some(t) if t.key == key && t.user == user => {
                t.stop.set();
                true
            }
            _ => false,
        };
        db.stop_calls.push(StopCall {
            task_id: task_id.to_string(),
            key: key.to_string(),
            user: user.to_string(),
            applied,
        });
        applied
    }

    /// Takes a concurrency slot for the app, or `Err(limit)` when the limit is reached.
    pub fn try_acquire(self: &Arc<Self>, key: &str) -> Result<SlotGuard, usize> {
        let mut db = self.db.lock();
        let active = db.active.entry(key.to_string()).or_insert(0);
        if let Some(limit) = self.cfg.concurrency_limit.filter(|l| *l > 0)
            && *active >= limit
        {
            return Err(limit);
        }
        *active += 1;
        Ok(SlotGuard {
            shared: self.clone(),
            key: key.to_string(),
        })
    }
}

/// A held concurrency slot; released when dropped (end of blocking request or of the SSE body).
pub(crate) struct SlotGuard {
    shared: Arc<Shared>,
    key: String,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut db = self.shared.db.lock();
        if let Some(n) = db.active.get_mut(&self.key) {
            *n = n.saturating_sub(1);
        }
    }
}
