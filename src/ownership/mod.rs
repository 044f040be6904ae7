//! Who owns what Dify hands out (checked in request steps 3 and 7 by [`guard`], recorded in the response
//! steps by [`record`]): task ids (for stop), message ids (text-to-audio looks them up by id alone),
//! annotation ids (update and delete look them up by id alone) and annotation-reply job ids (their
//! status is looked up by id alone). Dify does not scope these by app,
//! so the gateway refuses ids it has not seen belong to the caller's tenant and app.
//!
//! Kept in process (a bounded [`ledger`] per kind) and, when Redis is configured, in Redis too, so that a stop or a
//! text-to-audio call reaching another replica finds the owner: tasks 30 minutes (Dify forgets a
//! task's owner after 1800 s), messages 7 days, annotations 30 days.

pub mod guard;
pub mod ledger;
pub mod record;

use crate::redis::RedisTier;
use ledger::Ledger;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a task id is remembered.
pub const TASK_TTL: Duration = Duration::from_secs(30 * 60);
/// How long a message id is remembered.
pub const MESSAGE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long an annotation id is remembered.
pub const ANNOTATION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long an annotation-reply job id is remembered (Dify keeps a job's status 600 s after it ends;
/// a re-index may take hours).
pub const JOB_TTL: Duration = Duration::from_secs(24 * 3600);
/// Entries kept in process per kind.
const CAPACITY: usize = 200_000;

/// The tenant, app and Dify `user` an id belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// The kinds of id recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Task ids.
    Task,
    /// Message ids.
    Message,
    /// Annotation ids.
    Annotation,
    /// Annotation-reply job ids.
    Job,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::Message => "message",
            Self::Annotation => "annotation",
            Self::Job => "job",
        }
    }

    fn ttl(self) -> Duration {
        match self {
            Self::Task => TASK_TTL,
            Self::Message => MESSAGE_TTL,
            Self::Annotation => ANNOTATION_TTL,
            Self::Job => JOB_TTL,
        }
    }
}

/// The three ownership maps, in process and optionally in Redis.
pub struct Ownership {
    maps: [Ledger; 4],
    redis: Option<Arc<RedisTier>>,
}

impl Default for Ownership {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Ownership {
    /// Ownership maps, shared through `redis` when given.
    pub fn new(redis: Option<Arc<RedisTier>>) -> Self {
        let cache = |k: Kind| Ledger::new(k.ttl(), CAPACITY);
        Self {
            maps: [
                cache(Kind::Task),
                cache(Kind::Message),
                cache(Kind::Annotation),
                cache(Kind::Job),
            ],
            redis,
        }
    }

    fn map(&self, kind: Kind) -> &Ledger {
        &self.maps[kind as usize]
    }

    fn redis_key(kind: Kind, id: &str) -> String {
        format!("dify-gw:own:v1:{}:{id}", kind.name())
    }

    /// Records `id` as `owner`'s (in Redis in the background: callers may be synchronous).
    pub fn record(&self, kind: Kind, id: &str, owner: Arc<Owner>) {
        self.map(kind).insert(id, owner.clone(), Instant::now());
        let Some(redis) = self.redis.clone() else { return };
        if let Ok(value) = serde_json::to_vec(owner.as_ref()) {
            let key = Self::redis_key(kind, id);
            tokio::spawn(async move { redis.set(&key, &value, kind.ttl()).await });
        }
    }

    /// The owner of `id`: this process first, then Redis.
    pub async fn owner(&self, kind: Kind, id: &str) -> Option<Arc<Owner>> {
        if let Some(o) = self.map(kind).get(id, Instant::now()) {
            return Some(o);
        }
        let raw = self.redis.as_ref()?.get(&Self::redis_key(kind, id)).await?;
        let owner: Arc<Owner> = Arc::new(serde_json::from_slice(&raw).ok()?);
        self.map(kind).insert(id, owner.clone(), Instant::now());
        Some(owner)
    }

    /// Forgets `id` (a deleted annotation).
    pub async fn forget(&self, kind: Kind, id: &str) {
        self.map(kind).remove(id);
        if let Some(redis) = &self.redis {
            redis.delete(vec![Self::redis_key(kind, id)]).await;
        }
    }
}
