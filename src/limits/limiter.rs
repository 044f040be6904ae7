//! Decides on each request's limits (request step 1b) and ends its lease (`logging`): on Redis when
//! configured, in process otherwise; when Redis fails, as `limits.on_redis_error` says. Keeps the
//! replica's Redis leases for renewal and records every decision (`limit_decisions_total`) and what
//! is left (`limit_remaining`).

use super::headers;
use super::local::Local;
use super::script::{RedisLimits, Scripts};
use super::{Ask, LimitKind, Limits, Remaining, Share, Spent, Usage, Verdict};
use crate::admit::snapshot::{App, Tenant};
use crate::clock::now_ms as unix_now_ms;
use crate::config::{LimitSettings, OnRedisError};
use crate::redis::RedisTier;
use crate::respond::LocalAnswer;
use crate::telemetry::Metrics;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// Where an admitted request's lease is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// On Redis (renewed until released).
    Redis,
    /// In process.
    Local,
    /// Nowhere: admitted while Redis failed, with `on_redis_error = "open"`.
    Nowhere,
}

/// An admitted request's claim on its tenant's limits, released when it ends.
#[derive(Debug, Clone)]
pub struct Grant {
    /// Tenant id.
    pub tenant: String,
    /// Lease id (completions).
    pub lease: String,
    /// The shared app it holds a share of.
    pub share: Option<String>,
    /// A completion (leased).
    pub completion: bool,
    /// Tokens it reserved (charged when Dify produced output but reported no usage).
    pub reserve: u64,
    /// Where.
    pub held: Held,
    /// `RateLimit` for the answer.
    pub header: Option<String>,
}

/// The decision on a request.
#[derive(Debug)]
pub enum Decision {
    /// No limit applies.
    Unlimited,
    /// Go on, holding this.
    Admitted(Grant),
    /// Answer this (429, or 503 when the limits cannot be checked).
    Refused(LocalAnswer),
}

struct Lease {
    tenant: String,
    share: Option<String>,
    since: std::time::Instant,
}

/// A release Redis did not take, tried again by the upkeep service.
struct Unreleased {
    tenant: String,
    lease: String,
    share: Option<String>,
    spent: Spent,
}

/// Most releases kept for a retry (the oldest go first; their leases expire by themselves).
const MAX_UNRELEASED: usize = 10_000;

/// The limiter.
pub struct Limiter {
    redis: Option<Arc<RedisTier>>,
    scripts: Scripts,
    settings: LimitSettings,
    local: Local,
    leases: Mutex<HashMap<String, Lease>>,
    unreleased: Mutex<std::collections::VecDeque<Unreleased>>,
    metrics: Metrics,
}

/// The app's share id: a hash of its Dify key (never the key).
fn share_id(app: &App) -> String {
    hex::encode(&Sha256::digest(app.api_key.expose().as_bytes())[..8])
}

impl Limiter {
    /// A limiter on `redis` (or in process without).
    pub fn new(redis: Option<Arc<RedisTier>>, settings: LimitSettings, metrics: Metrics) -> Self {
        Self {
            redis,
            scripts: Scripts::default(),
            settings,
            local: Local::default(),
            leases: Mutex::new(HashMap::new()),
            unreleased: Mutex::new(std::collections::VecDeque::new()),
            metrics,
        }
    }

    fn on_redis(&self) -> Option<RedisLimits<'_>> {
        Some(RedisLimits {
            redis: self.redis.as_deref()?,
            scripts: &self.scripts,
            ttl: self.settings.lease_ttl,
        })
    }

    /// Decides on a request of `tenant` through `app`.
    pub async fn admit(&self, tenant: &Tenant, app: &App, completion: bool) -> Decision {
        let share_app = app.fair_share.filter(|_| completion).map(|f| (share_id(app), f));
        if tenant.limits.is_empty() && share_app.is_none() {
            return Decision::Unlimited;
        }
        let lease = if completion {
            uuid::Uuid::new_v4().simple().to_string()
        } else {
            String::new()
        };
        let ask = Ask {
            tenant: &tenant.id,
            limits: &tenant.limits,
            completion,
            reserve: if completion {
                app.max_tokens_per_request.unwrap_or(0)
            } else {
                0
            },
            lease: &lease,
            share: share_app.as_ref().map(|(app, fraction)| Share {
                app,
                fraction: *fraction,
            }),
        };
        let mut kinds =
            LimitKind::configured(&tenant.limits, share_app.as_ref().is_some_and(|(_, f)| *f < 1.0));
        if !completion {
            kinds.retain(|k| *k == LimitKind::Requests);
        }
        let part = tenant.limits.divided(self.settings.replicas);
        let (verdict, held) = match self.on_redis() {
            None => (Some(self.local.admit(&ask, unix_now_ms())), Held::Local),
            Some(r) => match r.admit(&ask).await {
                Some(v) => (Some(v), Held::Redis),
                None => {
                    // Redis may still have run the script after the wait ended: give the lease back.
                    if completion {
                        let share = ask.share.map(|s| s.app.to_string());
                        self.keep_unreleased(&tenant.id, &lease, share, Spent::default());
                    }
                    self.redis_failed(&Ask { limits: &part, ..ask }, &kinds)
                }
            },
        };
        // What was enforced (a replica's part while Redis fails and the policy is local).
        let enforced = if held == Held::Local && self.redis.is_some() {
            &part
        } else {
            &tenant.limits
        };
        let Some(verdict) = verdict else {
            return match held {
                Held::Nowhere => Decision::Admitted(self.grant(&ask, held, None)),
                _ => Decision::Refused(headers::unavailable()),
            };
        };
        self.record(&tenant.id, &kinds, &verdict);
        match verdict {
            Verdict::Refused { kind, retry_after } => {
                Decision::Refused(headers::refusal(kind, retry_after, enforced))
            }
            Verdict::Admitted(rem) => {
                let header = headers::tightest(enforced, &rem, unix_now_ms());
                if held == Held::Redis && completion {
                    let lease_of = Lease {
                        tenant: tenant.id.clone(),
                        share: ask.share.map(|s| s.app.to_string()),
                        since: std::time::Instant::now(),
                    };
                    self.leases.lock().insert(lease.clone(), lease_of);
                }
                Decision::Admitted(self.grant(&ask, held, header))
            }
        }
    }

    /// What `on_redis_error` makes of a request Redis could not decide on (`ask` carries this
    /// replica's part of the limits): a verdict and where its lease is, or no verdict (open: admit
    /// unheld; closed: 503).
    fn redis_failed(&self, ask: &Ask<'_>, kinds: &[LimitKind]) -> (Option<Verdict>, Held) {
        for k in kinds {
            self.metrics.limit_decision(ask.tenant, k.label(), "redis_error");
        }
        match self.settings.on_redis_error {
            OnRedisError::Open => (None, Held::Nowhere),
            OnRedisError::Closed => (None, Held::Redis),
            OnRedisError::Local => (Some(self.local.admit(ask, unix_now_ms())), Held::Local),
        }
    }

    /// Keeps a release for the upkeep service to try again.
    fn keep_unreleased(&self, tenant: &str, lease: &str, share: Option<String>, spent: Spent) {
        let mut queue = self.unreleased.lock();
        if queue.len() >= MAX_UNRELEASED {
            queue.pop_front();
        }
        queue.push_back(Unreleased {
            tenant: tenant.to_string(),
            lease: lease.to_string(),
            share,
            spent,
        });
    }

    fn grant(&self, ask: &Ask<'_>, held: Held, header: Option<String>) -> Grant {
        Grant {
            tenant: ask.tenant.to_string(),
            lease: ask.lease.to_string(),
            share: ask.share.map(|s| s.app.to_string()),
            completion: ask.completion,
            reserve: ask.reserve,
            held,
            header,
        }
    }

    fn record(&self, tenant: &str, kinds: &[LimitKind], verdict: &Verdict) {
        match verdict {
            Verdict::Refused { kind, .. } => self.metrics.limit_decision(tenant, kind.label(), "refused"),
            Verdict::Admitted(rem) => {
                for k in kinds {
                    self.metrics.limit_decision(tenant, k.label(), "admitted");
                }
                self.remaining(tenant, rem);
            }
        }
    }

    fn remaining(&self, tenant: &str, rem: &Remaining) {
        for (k, r) in rem.by_kind() {
            if let Some(r) = r {
                self.metrics.limit_remaining(tenant, k.label(), r);
            }
        }
    }

    /// Ends `grant`: its lease goes and what the completion `spent` counts.
    pub async fn release(&self, grant: &Grant, spent: Spent) {
        if !grant.completion {
            return;
        }
        let share = grant.share.as_deref();
        match grant.held {
            Held::Local => self
                .local
                .release(&grant.tenant, &grant.lease, share, spent, unix_now_ms()),
            Held::Redis => {
                self.leases.lock().remove(&grant.lease);
                let done = match self.on_redis() {
                    Some(r) => r.release(&grant.tenant, &grant.lease, share, spent).await,
                    None => false,
                };
                if !done {
                    tracing::warn!(message = "A lease could not be released on Redis; trying again.", tenant = %grant.tenant, tokens = spent.tokens);
                    self.keep_unreleased(&grant.tenant, &grant.lease, grant.share.clone(), spent);
                }
            }
            Held::Nowhere => {}
        }
    }

    /// Renews this replica's leases on Redis (every third of their lifetime) and tries again the
    /// releases Redis did not take. A lease older than any completion can be (its release was
    /// lost) is left to expire.
    pub async fn renew(&self) {
        let Some(r) = self.on_redis() else { return };
        let pending: Vec<Unreleased> = self.unreleased.lock().drain(..).collect();
        for u in pending {
            if !r.release(&u.tenant, &u.lease, u.share.as_deref(), u.spent).await {
                let mut queue = self.unreleased.lock();
                if queue.len() < MAX_UNRELEASED {
                    queue.push_back(u);
                }
            }
        }
        let lost = std::time::Duration::from_millis(super::state::LOST_AFTER_MS);
        self.leases.lock().retain(|_, l| l.since.elapsed() < lost);
        let (mut by_tenant, mut by_app): (HashMap<String, Vec<String>>, HashMap<String, Vec<String>>) =
            Default::default();
        for (id, l) in self.leases.lock().iter() {
            by_tenant.entry(l.tenant.clone()).or_default().push(id.clone());
            if let Some(app) = &l.share {
                let member = super::script::share_member(&l.tenant, id);
                by_app.entry(app.clone()).or_default().push(member);
            }
        }
        let ttl = self.settings.lease_ttl.as_millis().to_string();
        for (tenant, ids) in by_tenant {
            r.renew(&tenant, ids).await;
        }
        for (app, members) in by_app {
            r.end_shares(&app, &ttl, members).await;
        }
    }

    /// What `tenant` uses now; `None` when Redis does not answer.
    pub async fn usage(&self, tenant: &str, limits: &Limits) -> Option<Usage> {
        match self.on_redis() {
            Some(r) => r.usage(tenant, limits.requests_per_minute).await,
            None => Some(
                self.local
                    .usage(tenant, limits.requests_per_minute, unix_now_ms()),
            ),
        }
    }

    /// Sets `limit_remaining` of every limited tenant of `tenants` from what it uses now.
    pub async fn refresh_gauges<'a>(&self, tenants: impl Iterator<Item = &'a Tenant>) {
        for t in tenants.filter(|t| !t.limits.is_empty()) {
            let Some(u) = self.usage(&t.id, &t.limits).await else {
                return;
            };
            let l = &t.limits;
            let pairs = [
                (
                    LimitKind::Requests,
                    l.requests_per_minute
                        .map(|q| q as f64 - u.requests_per_minute as f64),
                ),
                (
                    LimitKind::Concurrency,
                    l.concurrent_requests
                        .map(|q| q as f64 - u.concurrent_requests as f64),
                ),
                (
                    LimitKind::TokensPerMinute,
                    l.tokens_per_minute.map(|q| q as f64 - u.tokens_per_minute as f64),
                ),
                (
                    LimitKind::TokensPerDay,
                    l.tokens_per_day.map(|q| q as f64 - u.tokens_per_day as f64),
                ),
                (
                    LimitKind::CostPerMonth,
                    l.cost_per_month.map(|q| q - u.cost_per_month),
                ),
            ];
            for (k, r) in pairs {
                if let Some(r) = r {
                    self.metrics.limit_remaining(&t.id, k.label(), r.max(0.0));
                }
            }
        }
    }

    /// Leases on Redis this replica holds, and releases it still owes.
    pub fn held(&self) -> usize {
        self.leases.lock().len() + self.unreleased.lock().len()
    }

    /// How often leases are renewed.
    pub fn renew_every(&self) -> std::time::Duration {
        self.settings.lease_ttl / 3
    }
}

/// Creates the limit series of `tenant` (every configured limit, and its share of shared apps).
pub fn precreate(metrics: &Metrics, tenant: &Tenant) {
    let share = tenant.apps.iter().any(|a| a.fair_share.is_some_and(|f| f < 1.0));
    let l = &tenant.limits;
    for kind in LimitKind::configured(l, share) {
        let quota = match kind {
            LimitKind::Requests => l.requests_per_minute.map(|q| q as f64),
            LimitKind::Concurrency => l.concurrent_requests.map(|q| q as f64),
            LimitKind::TokensPerMinute => l.tokens_per_minute.map(|q| q as f64),
            LimitKind::TokensPerDay => l.tokens_per_day.map(|q| q as f64),
            LimitKind::CostPerMonth => l.cost_per_month,
            LimitKind::Share => None,
        };
        metrics.precreate_limit(&tenant.id, kind.label(), quota);
    }
}
