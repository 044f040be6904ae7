//! The app metadata cache (request step 5, `request_filter`, answered by [`serve`]): `GET /v1/info`,
//! `/parameters`, `/site` and `/meta` are answered from memory (moka), then from Redis shared by the
//! replicas, then from Dify with one request however many callers miss at once. Stale entries are served while they are
//! refreshed, and when Dify fails; only Dify's 200 answers are stored.

pub mod entry;
pub mod fetch;
pub mod key;
pub mod serve;

use crate::clock::now_ms;
use crate::config::CacheSettings;
use crate::redis::RedisTier;
use crate::telemetry::Metrics;
use crate::upstream::{CallError as FetchError, DifyClient, Reply as Fetched};
use bytes::Bytes;
use entry::{Entry, Freshness, Policy, Served};
use fetch::Fetcher;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use key::{AppHash, CacheKey, Cached};
use moka::sync::Cache;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The tiers of `cache_lookups_total`.
pub const TIERS: [&str; 2] = ["l1", "l2"];
/// The outcomes of `cache_lookups_total`.
pub const OUTCOMES: [&str; 5] = ["hit", "stale", "expired", "miss", "bypass"];

/// What a fill from Dify produced, shared by every caller waiting on it.
type Fill = Shared<BoxFuture<'static, Arc<Result<Fetched, FetchError>>>>;

/// The answer for a cached endpoint.
#[derive(Debug)]
pub enum Answer {
    /// Serve this.
    Serve {
        /// Status.
        status: u16,
        /// `Content-Type`.
        content_type: String,
        /// Body.
        body: Bytes,
        /// Validator and age, for cached bodies.
        cached: Option<(String, u64)>,
        /// How it was served.
        served: Served,
        /// Dify's `WWW-Authenticate` on a 401 it gave.
        www_authenticate: Option<String>,
        /// Dify's headers a page may read.
        kept: Vec<(String, String)>,
    },
    /// Dify could not be reached and nothing stale was left.
    Failed(FetchError),
    /// Not cacheable this time: proxy the request as usual.
    Bypass,
}

/// Which entries an invalidation drops.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Scope {
    /// Every entry.
    All,
    /// Every entry of these apps.
    Apps(Vec<String>),
}

/// The two tiers, the fills in flight and the policies.
pub struct MetadataCache {
    l1: Cache<CacheKey, Arc<Entry>>,
    l2: Option<Arc<RedisTier>>,
    fills: Mutex<HashMap<CacheKey, Fill>>,
    /// Bumped by every invalidation; a fill stores only if it is unchanged since the fill began.
    epoch: AtomicU64,
    fetcher: Arc<Fetcher>,
    policies: [Policy; 4],
    max_entry_bytes: usize,
    /// Metric families.
    pub metrics: Metrics,
}

impl MetadataCache {
    /// A cache per `s`, filling through `client`, shared through `l2` when given.
    pub fn new(
        s: &CacheSettings,
        client: Arc<DifyClient>,
        l2: Option<Arc<RedisTier>>,
        metrics: Metrics,
    ) -> Arc<Self> {
        let policies = s.ttl.map(|ttl| Policy {
            ttl,
            stale_while_revalidate: s.stale_while_revalidate,
            max_stale: s.max_stale,
        });
        let keep = policies
            .iter()
            .map(Policy::keep)
            .max()
            .unwrap_or(Duration::from_secs(60));
        // Each entry weighs at least max_bytes / max_entries, so both bounds hold.
        let floor = (s.max_bytes / s.max_entries.max(1)).max(1);
        let l1 = Cache::builder()
            .max_capacity(s.max_bytes)
            .weigher(move |_k: &CacheKey, e: &Arc<Entry>| {
                u32::try_from((e.body.len() as u64 + 256).max(floor)).unwrap_or(u32::MAX)
            })
            .time_to_live(keep)
            .build();
        Arc::new(Self {
            l1,
            l2,
            fills: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            fetcher: Arc::new(Fetcher::new(client, s.fetch_timeout, s.max_entry_bytes)),
            policies,
            max_entry_bytes: s.max_entry_bytes,
            metrics,
        })
    }

    /// Answers `endpoint` for the app with `api_key`.
    pub async fn answer(self: &Arc<Self>, api_key: &str, endpoint: Cached, request_id: &str) -> Answer {
        let key = CacheKey::new(api_key, endpoint);
        let policy = self.policies[endpoint.index()];
        let now = now_ms();
        // One outcome per tier consulted: l1 hit | stale | expired | miss, then (on an l1 miss) l2.
        let (mut held, mut tier) = (self.l1.get(&key), "l1");
        if held.is_none() {
            self.metrics.cache_lookup(endpoint.name(), "l1", "miss");
            held = self.lookup_l2(&key).await;
            tier = "l2";
        }
        if let Some(e) = &held {
            match policy.freshness(e.age(now)) {
                Freshness::Fresh => {
                    self.metrics.cache_lookup(endpoint.name(), tier, "hit");
                    let left = policy.ttl.saturating_sub(e.age(now)).as_secs() as i64;
                    return serve(e, now, Served::Hit { ttl: left });
                }
                Freshness::Revalidate => {
                    self.metrics.cache_lookup(endpoint.name(), tier, "stale");
                    drop(self.fill(key, api_key, request_id));
                    return serve(e, now, Served::StaleWhileRevalidate);
                }
                Freshness::StaleIfError | Freshness::Expired => {
                    self.metrics.cache_lookup(endpoint.name(), tier, "expired");
                }
            }
        }
        let fetched = self.fill(key, api_key, request_id).await;
        let stale = held.filter(|e| policy.freshness(e.age(now)) != Freshness::Expired);
        match (fetched.as_ref(), stale) {
            (Ok(f), _) if f.truncated => Answer::Bypass,
            (Ok(f), Some(e)) if f.status >= 500 => serve(&e, now, Served::StaleIfError { status: f.status }),
            (Ok(f), _) => Answer::Serve {
                status: f.status,
                content_type: f.header("content-type").unwrap_or_default().to_string(),
                body: f.body.clone(),
                cached: None,
                served: Served::Miss {
                    status: f.status,
                    stored: storable(f, self.max_entry_bytes),
                },
                www_authenticate: f.header("www-authenticate").map(str::to_string),
                kept: kept_headers(f),
            },
            (Err(_), Some(e)) => serve(&e, now, Served::StaleIfError { status: 0 }),
            (Err(err), None) => Answer::Failed(err.clone()),
        }
    }

    /// The Redis tier's entry; counts `miss` or `bypass` (Redis down); a found entry is counted by
    /// the caller once its freshness is known.
    async fn lookup_l2(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        let l2 = self.l2.as_ref()?;
        let name = key.endpoint.name();
        // With the circuit open the call is skipped (or is the breaker's probe): count it apart.
        let up = l2.is_up();
        match l2_get(l2, &key.redis_key()).await {
            Some(e) => {
                let e = Arc::new(e);
                self.l1.insert(*key, e.clone());
                Some(e)
            }
            None => {
                self.metrics
                    .cache_lookup(name, "l2", if up { "miss" } else { "bypass" });
                None
            }
        }
    }

    /// Starts (or joins) the one fill of `key` from Dify; stores a 200 answer in both tiers.
    fn fill(self: &Arc<Self>, key: CacheKey, api_key: &str, request_id: &str) -> Fill {
        let mut fills = self.fills.lock();
        if let Some(f) = fills.get(&key) {
            return f.clone();
        }
        let me = self.clone();
        let (api_key, request_id) = (api_key.to_string(), request_id.to_string());
        let epoch = self.epoch.load(Ordering::SeqCst);
        let task = tokio::spawn(async move {
            let r = me.fetcher.get(key.endpoint.path(), &api_key, &request_id).await;
            if let Ok(f) = &r
                && storable(f, me.max_entry_bytes)
                && me.epoch.load(Ordering::SeqCst) == epoch
                && let Ok(body) = String::from_utf8(f.body.to_vec())
            {
                let ctype = f.header("content-type").unwrap_or_default().to_string();
                let entry = Arc::new(Entry::new(ctype, body, now_ms()).with_headers(kept_headers(f)));
                me.l1.insert(key, entry.clone());
                if let Some(l2) = &me.l2 {
                    let keep = me.policies[key.endpoint.index()].keep();
                    if let Ok(value) = serde_json::to_vec(entry.as_ref()) {
                        l2.set(&key.redis_key(), &value, keep).await;
                    }
                }
            }
            me.fills.lock().remove(&key);
            r
        });
        let fill = async move {
            Arc::new(task.await.unwrap_or_else(|e| {
                Err(FetchError::new(
                    crate::respond::UpstreamFailure::Broken,
                    format!("fill task: {e}"),
                ))
            }))
        }
        .boxed()
        .shared();
        fills.insert(key, fill.clone());
        fill
    }

    /// Drops entries in this replica's memory only (what a pub/sub message asks). Fills already on
    /// their way started before the invalidation: they answer their callers but store nothing.
    pub fn drop_local(&self, scope: &Scope) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        match scope {
            Scope::All => self.l1.invalidate_all(),
            Scope::Apps(apps) => {
                for app in apps.iter().filter_map(|a| decode_app(a)) {
                    for endpoint in Cached::ALL {
                        self.l1.invalidate(&CacheKey { app, endpoint });
                    }
                }
            }
        }
    }

    /// Drops entries everywhere: here, in Redis, and (through pub/sub) in every other replica.
    /// `Err` when Redis did not confirm every step (other replicas may then keep entries until their
    /// ttl).
    pub async fn invalidate(&self, scope: Scope) -> Result<(), String> {
        self.drop_local(&scope);
        let Some(l2) = &self.l2 else { return Ok(()) };
        let deleted = match &scope {
            Scope::All => l2.delete_prefix(key::REDIS_PREFIX).await,
            Scope::Apps(apps) => {
                let keys = apps
                    .iter()
                    .filter_map(|a| decode_app(a))
                    .flat_map(|app| Cached::ALL.map(|endpoint| CacheKey { app, endpoint }.redis_key()))
                    .collect();
                l2.delete(keys).await
            }
        };
        let published = match serde_json::to_vec(&scope) {
            Ok(msg) => l2.publish(&msg).await,
            Err(_) => false,
        };
        match (deleted, published) {
            (true, true) => Ok(()),
            (false, _) => Err("Redis did not delete the shared entries".into()),
            (true, false) => Err("Redis did not pass the invalidation to the other replicas".into()),
        }
    }
}

/// The entry stored in Redis at `key`; `None` on a miss, an unreadable value or any failure.
async fn l2_get(l2: &RedisTier, key: &str) -> Option<Entry> {
    serde_json::from_slice(&l2.get(key).await?).ok()
}

fn storable(f: &Fetched, max: usize) -> bool {
    f.status == 200 && !f.truncated && f.body.len() <= max
}

fn serve(e: &Entry, now: u64, served: Served) -> Answer {
    Answer::Serve {
        status: 200,
        content_type: e.content_type.clone(),
        body: Bytes::from(e.body.clone()),
        cached: Some((e.etag.clone(), e.age(now).as_secs())),
        served,
        www_authenticate: None,
        kept: e.headers.clone(),
    }
}

/// Dify's headers of `f` that are kept with a cached answer.
fn kept_headers(f: &Fetched) -> Vec<(String, String)> {
    entry::KEPT_HEADERS
        .iter()
        .filter_map(|h| Some((h.to_string(), f.header(h)?.to_string())))
        .collect()
}

/// The hex form of an app hash, as invalidation messages carry it.
pub fn encode_app(app: &AppHash) -> String {
    hex::encode(app)
}

fn decode_app(text: &str) -> Option<AppHash> {
    hex::decode(text).ok()?.try_into().ok()
}
