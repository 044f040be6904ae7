//! Keys published by identity providers (JWKS; request step 1 reads them, a background service
//! refreshes them): each source (`[[auth.jwks]]`, or a tenant's key set added through the admin API)
//! is fetched at start, refreshed on schedule honouring `Cache-Control: max-age`, fetched again at
//! once when a token names a `kid` nobody knows (one fetch in flight per source, at most one per
//! 30 s), and its last good key set keeps serving while the provider is down. RS256 and ES256 only.

use super::keys::{Binding, VerifyKey, fingerprint};
use crate::outbound::Outbound;
use arc_swap::ArcSwap;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The fewest seconds between two fetches a token with an unknown `kid` may cause.
pub const FORCED_EVERY: Duration = Duration::from_secs(30);
/// Longest wait for a provider.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest key set read.
const MAX_SET: usize = 1 << 20;
/// How soon a failed fetch is tried again.
const RETRY: Duration = Duration::from_secs(5);
/// Bounds on the refresh interval a provider's `max-age` may set.
const MIN_REFRESH: Duration = Duration::from_secs(30);
const MAX_REFRESH: Duration = Duration::from_secs(24 * 3600);

/// Where a key set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSource {
    /// Unique name (`config:jwks[0]`, `store:acme/idp`).
    pub id: Arc<str>,
    /// The key set's URL (`http://` or `https://`; https is verified).
    pub url: String,
    /// The tenants its keys may sign for.
    pub binding: Binding,
    /// Refresh interval when the provider sends no `max-age`.
    pub refresh: Duration,
}

/// The keys last fetched from one source.
#[derive(Debug)]
pub struct KeySet {
    /// The source as it was when fetched (a changed URL or binding is fetched anew).
    pub source: JwksSource,
    /// The keys.
    pub keys: Vec<Arc<VerifyKey>>,
    /// When the next scheduled fetch is due.
    pub due: Instant,
}

/// Told the outcome of every fetch (`true` = a key set was read).
pub type FetchObserver = Box<dyn Fn(bool) + Send + Sync>;

/// Every source's keys, and what is being fetched.
#[derive(Default)]
pub struct Jwks {
    sets: ArcSwap<HashMap<Arc<str>, Arc<KeySet>>>,
    outbound: Outbound,
    forced: Mutex<HashMap<Arc<str>, Instant>>,
    inflight: Mutex<HashMap<Arc<str>, Shared<BoxFuture<'static, ()>>>>,
    observer: Option<FetchObserver>,
}

impl Jwks {
    /// Key sets whose fetches are reported to `observer`.
    pub fn observed(observer: FetchObserver) -> Self {
        Self {
            observer: Some(observer),
            ..Self::default()
        }
    }

    /// The keys of `source`, as last fetched.
    pub fn keys(&self, source: &str) -> Option<Arc<KeySet>> {
        self.sets.load().get(source).cloned()
    }

    /// Whether `source` should be fetched now (never fetched, or its refresh is due).
    pub fn due(&self, source: &JwksSource, now: Instant) -> bool {
        self.keys(&source.id).is_none_or(|s| now >= s.due)
    }

    /// Fetches `source` (joining a fetch already on its way); on failure the last set stays.
    pub async fn refresh(self: &Arc<Self>, source: &JwksSource) {
        let fetch = {
            let mut inflight = self.inflight.lock();
            if let Some(f) = inflight.get(&source.id) {
                f.clone()
            } else {
                let (me, src) = (self.clone(), source.clone());
                let f = async move {
                    me.fetch_and_store(&src).await;
                    me.inflight.lock().remove(&src.id);
                }
                .boxed()
                .shared();
                inflight.insert(source.id.clone(), f.clone());
                f
            }
        };
        fetch.await;
    }

    /// A fetch caused by an unknown `kid`: at most one per [`FORCED_EVERY`] per source (a fetch
    /// already on its way is joined); false when it was too soon and none was on its way.
    pub async fn refresh_forced(self: &Arc<Self>, source: &JwksSource) -> bool {
        let too_soon = {
            let mut forced = self.forced.lock();
            let now = Instant::now();
            let soon = forced.get(&source.id).is_some_and(|t| now < *t + FORCED_EVERY);
            if !soon {
                forced.insert(source.id.clone(), now);
            }
            soon
        };
        if too_soon {
            let pending = self.inflight.lock().get(&source.id).cloned();
            return match pending {
                Some(fetch) => {
                    fetch.await;
                    true
                }
                None => false,
            };
        }
        self.refresh(source).await;
        true
    }

    /// Drops the sets of sources no longer configured, or configured differently now.
    pub fn retain(&self, sources: &[JwksSource]) {
        let wanted = |set: &Arc<KeySet>| sources.contains(&set.source);
        if self.sets.load().values().all(wanted) {
            return;
        }
        self.sets.rcu(|cur| {
            cur.iter()
                .filter(|(_, set)| wanted(set))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>()
        });
    }

    async fn fetch_and_store(&self, source: &JwksSource) {
        let fetched = self.fetch_keys(source).await;
        if let Some(observe) = &self.observer {
            observe(fetched.is_ok());
        }
        let set = match fetched {
            Ok((keys, max_age)) => {
                let every = max_age.unwrap_or(source.refresh).clamp(MIN_REFRESH, MAX_REFRESH);
                tracing::info!(message = "Key set fetched.", source = %source.id, keys = keys.len());
                KeySet {
                    source: source.clone(),
                    keys,
                    due: Instant::now() + every,
                }
            }
            Err(e) => {
                // The last good set (or none yet) keeps serving; try again soon.
                tracing::warn!(message = "Key set fetch failed; the last good set stays.", source = %source.id, error = %e);
                // Only a set fetched from this very source (URL and tenants) is kept.
                let kept = self.keys(&source.id).filter(|old| old.source == *source);
                KeySet {
                    source: source.clone(),
                    keys: kept.map(|old| old.keys.clone()).unwrap_or_default(),
                    due: Instant::now() + RETRY,
                }
            }
        };
        let set = Arc::new(set);
        self.sets.rcu(|cur| {
            let mut next = (**cur).clone();
            next.insert(source.id.clone(), set.clone());
            next
        });
    }

    /// Fetches `source` and reads the keys this gateway accepts from it (at least one), with the
    /// provider's `max-age`; nothing is stored (the admin API checks a key set with it).
    pub async fn fetch_keys(
        &self,
        source: &JwksSource,
    ) -> Result<(Vec<Arc<VerifyKey>>, Option<Duration>), String> {
        let (set, max_age) = self.fetch(&source.url).await?;
        let keys = keys_of(&set, source);
        if keys.is_empty() {
            return Err("the key set holds no RS256 or ES256 (P-256) signing key".into());
        }
        Ok((keys, max_age))
    }

    /// GETs and parses a key set; its `max-age`, when the provider sends one.
    async fn fetch(&self, url: &str) -> Result<(JwkSet, Option<Duration>), String> {
        match tokio::time::timeout(FETCH_TIMEOUT, self.fetch_unbounded(url)).await {
            Ok(r) => r,
            Err(_) => Err(format!("no key set within {FETCH_TIMEOUT:?}")),
        }
    }

    async fn fetch_unbounded(&self, url: &str) -> Result<(JwkSet, Option<Duration>), String> {
        let (peer, mut head) = crate::outbound::to_url("GET", url, FETCH_TIMEOUT).await?;
        head.insert_header("accept", "application/json")
            .map_err(|e| e.to_string())?;
        let reply = self
            .outbound
            .send(&peer, head, None, FETCH_TIMEOUT, MAX_SET)
            .await
            .map_err(|e| e.detail)?;
        if reply.status != 200 || reply.truncated {
            return Err(format!("answered {} ({} bytes)", reply.status, reply.body.len()));
        }
        let set: JwkSet = serde_json::from_slice(&reply.body).map_err(|e| format!("not a key set: {e}"))?;
        Ok((set, reply.header("cache-control").and_then(max_age)))
    }
}

/// `max-age` of a `Cache-Control` value.
fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control
        .split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// The signing keys of `set` this gateway accepts (RS256, ES256 on P-256), bound as `source` is.
pub fn keys_of(set: &JwkSet, source: &JwksSource) -> Vec<Arc<VerifyKey>> {
    set.keys
        .iter()
        .filter_map(|jwk| {
            let algorithm = algorithm_of(jwk)?;
            let key = DecodingKey::from_jwk(jwk).ok()?;
            let id = jwk.common.key_id.clone().unwrap_or_default();
            let material = serde_json::to_vec(jwk).ok()?;
            Some(Arc::new(VerifyKey {
                origin: Arc::from(format!("jwks:{}#{id}@{}", source.id, fingerprint(&material))),
                id,
                algorithm,
                binding: source.binding.clone(),
                key,
            }))
        })
        .collect()
}

fn algorithm_of(jwk: &Jwk) -> Option<Algorithm> {
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let declared = jwk.common.key_algorithm;
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) if matches!(declared, None | Some(KeyAlgorithm::RS256)) => {
            Some(Algorithm::RS256)
        }
        AlgorithmParameters::EllipticCurve(p)
            if p.curve == EllipticCurve::P256 && matches!(declared, None | Some(KeyAlgorithm::ES256)) =>
        {
            Some(Algorithm::ES256)
        }
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn takes_signing_keys_it_can_verify_and_skips_the_rest() {
        let set: JwkSet =
            serde_json::from_str(include_str!("../../../tests/fixtures/keys/jwks.json")).unwrap();
        let src = JwksSource {
            id: Arc::from("config:jwks[0]"),
            url: "http://idp/jwks".into(),
            binding: Binding::Any,
            refresh: Duration::from_secs(300),
        };
        let keys = keys_of(&set, &src);
        let ids: Vec<(&str, Algorithm)> = keys.iter().map(|k| (k.id.as_str(), k.algorithm)).collect();
        assert_eq!(ids, [("rsa-1", Algorithm::RS256), ("ec-1", Algorithm::ES256)]);
        assert!(
            keys[0].origin.starts_with("jwks:config:jwks[0]#rsa-1@"),
            "{}",
            keys[0].origin
        );
        assert_eq!(max_age("public, max-age=600"), Some(Duration::from_secs(600)));
        assert_eq!(max_age("no-store"), None);
    }
}
