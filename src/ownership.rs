//! Who owns what Dify hands out (recorded in the response steps, checked in `request_filter` and
//! `request_body_filter`): task ids (for stop), message ids (text-to-audio looks them up by id alone)
//! and annotation ids (update and delete look them up by id alone). Dify does not scope these by app,
//! so the gateway refuses ids it has not seen belong to the caller's tenant and app.
//!
//! Kept in process, bounded, each for a stated time: tasks 30 minutes (Dify forgets a task's owner
//! after 1800 s), messages 7 days, annotations 30 days.

use moka::sync::Cache;
use std::sync::Arc;
use std::time::Duration;

/// How long a task id is remembered.
pub const TASK_TTL: Duration = Duration::from_secs(30 * 60);
/// How long a message id is remembered.
pub const MESSAGE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long an annotation id is remembered.
pub const ANNOTATION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// Entries kept per kind.
const CAPACITY: u64 = 200_000;

/// The tenant, app and Dify `user` an id belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Tenant id.
    pub tenant: String,
    /// App name within the tenant.
    pub app: String,
    /// `user` as Dify saw it, when known.
    pub user: Option<String>,
}

impl Owner {
    /// Whether `tenant`/`app` is this owner.
    pub fn is(&self, tenant: &str, app: &str) -> bool {
        self.tenant == tenant && self.app == app
    }
}

/// The three ownership maps.
pub struct Ownership {
    tasks: Cache<String, Arc<Owner>>,
    messages: Cache<String, Arc<Owner>>,
    annotations: Cache<String, Arc<Owner>>,
}

impl Default for Ownership {
    fn default() -> Self {
        let cache = |ttl| Cache::builder().max_capacity(CAPACITY).time_to_live(ttl).build();
        Self {
            tasks: cache(TASK_TTL),
            messages: cache(MESSAGE_TTL),
            annotations: cache(ANNOTATION_TTL),
        }
    }
}

impl Ownership {
    /// Records a task id.
    pub fn record_task(&self, id: &str, owner: Arc<Owner>) {
        self.tasks.insert(id.to_string(), owner);
    }

    /// The owner of a task id.
    pub fn task(&self, id: &str) -> Option<Arc<Owner>> {
        self.tasks.get(id)
    }

    /// Records a message id.
    pub fn record_message(&self, id: &str, owner: Arc<Owner>) {
        self.messages.insert(id.to_string(), owner);
    }

    /// The owner of a message id.
    pub fn message(&self, id: &str) -> Option<Arc<Owner>> {
        self.messages.get(id)
    }

    /// Records an annotation id.
    pub fn record_annotation(&self, id: &str, owner: Arc<Owner>) {
        self.annotations.insert(id.to_string(), owner);
    }

    /// The owner of an annotation id.
    pub fn annotation(&self, id: &str) -> Option<Arc<Owner>> {
        self.annotations.get(id)
    }

    /// Forgets a deleted annotation.
    pub fn forget_annotation(&self, id: &str) {
        self.annotations.invalidate(id);
    }
}
