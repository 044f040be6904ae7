//! Authentication of tenant calls (request step 1, `request_filter`): reads `Authorization: Bearer`
//! and yields the caller's [`Identity`] from a gateway API key (`dgw-...`) or a tenant JWT (static
//! keys, or identity providers' key sets), then applies revocations. Verified JWTs are cached until
//! `exp` (by the token itself up to 512 bytes, by its SHA-256 beyond); a cached one stands only while
//! its key does, and revocation is checked after the cache. Failures become 401 and never reach Dify.

pub mod apikey;
pub mod bearer;
pub mod error;
pub mod header;
pub mod jwks;
pub mod jwt;
pub mod keys;
pub mod mint;
#[cfg(test)]
mod tests;

pub use bearer::bearer_token;
pub use error::AuthError;
pub use keys::{Binding, JwtPolicy, KeyRing, VerifyKey};

use super::snapshot::Snapshot;
use apikey::API_KEY_PREFIX;
use jwks::Jwks;
use moka::sync::Cache;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Who a call speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The tenant.
    pub tenant: String,
    /// The app it names (a JWT's app claim, or the app an API key is bound to).
    pub app: Option<String>,
    /// When it stops being valid, Unix seconds.
    pub exp: u64,
    /// What proved it.
    pub via: Via,
}

/// What proved an identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A JWT verified with the key of this origin.
    Jwt {
        /// The key's origin ([`VerifyKey::origin`]).
        origin: Arc<str>,
        /// `jti`.
        jti: Option<String>,
        /// `iat`.
        iat: Option<u64>,
    },
    /// A gateway API key.
    ApiKey {
        /// The key's id.
        id: String,
        /// When it was created, Unix seconds.
        created_at: u64,
    },
}

/// A verified token: who it speaks for, and under which claim checks it was verified.
#[derive(Clone)]
struct Verified {
    id: Arc<Identity>,
    policy: Arc<JwtPolicy>,
}

/// Tokens up to this long are cached by their text (no hash to compute: most tokens are); longer
/// ones by their SHA-256, so that an entry never holds more than this much of a token.
const MAX_TOKEN_KEY: usize = 512;

/// A verified-token cache key.
#[derive(Clone, PartialEq, Eq, Hash)]
enum TokenKey {
    /// The token itself.
    Text(Box<str>),
    /// The SHA-256 of a longer token.
    Digest([u8; 32]),
}

impl TokenKey {
    fn of(token: &str) -> Self {
        if token.len() <= MAX_TOKEN_KEY {
            Self::Text(token.into())
        } else {
            Self::Digest(Sha256::digest(token.as_bytes()).into())
        }
    }
}

struct UntilExp;

impl moka::Expiry<TokenKey, Verified> for UntilExp {
    fn expire_after_create(&self, _k: &TokenKey, v: &Verified, _at: Instant) -> Option<Duration> {
        Some(Duration::from_secs(
            v.id.exp.saturating_sub(crate::clock::unix_now()),
        ))
    }
}

/// Process-lifetime parts of authentication: the verified-token cache and the providers' key sets.
pub struct Authenticator {
    cache: Cache<TokenKey, Verified>,
    /// Identity providers' key sets.
    pub jwks: Arc<Jwks>,
}

impl Authenticator {
    /// An authenticator caching at most `cache_entries` verified tokens.
    pub fn new(cache_entries: u64) -> Self {
        Self::with_jwks(cache_entries, Jwks::default())
    }

    /// [`Authenticator::new`] with `jwks` as the providers' key sets.
    pub fn with_jwks(cache_entries: u64, jwks: Jwks) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(cache_entries)
                .expire_after(UntilExp)
                .build(),
            jwks: Arc::new(jwks),
        }
    }

    /// Authenticates a call from its `Authorization` header value at `now` (Unix seconds).
    pub async fn authenticate(
        &self,
        header: Option<&[u8]>,
        snap: &Snapshot,
        now: u64,
    ) -> Result<Arc<Identity>, AuthError> {
        let token = bearer_token(header)?;
        let id = if token.starts_with(API_KEY_PREFIX) {
            apikey::identify(token, snap, now)?
        } else {
            self.jwt(token, snap, now).await?
        };
        snap.revocations.check(&id)?;
        Ok(id)
    }

    async fn jwt(&self, token: &str, snap: &Snapshot, now: u64) -> Result<Arc<Identity>, AuthError> {
        // Most tokens are their own key: a SHA-256 of each cost ~10,000 instructions per call.
        let cache_key = TokenKey::of(token);
        if let Some(hit) = self.cache.get(&cache_key) {
            // Verified under today's claim checks, with a key still in force: it stands.
            if now < hit.id.exp && Arc::ptr_eq(&hit.policy, &snap.policy) && self.still_stands(&hit.id, snap)
            {
                return Ok(hit.id);
            }
            self.cache.invalidate(&cache_key);
        }
        let header = header::peek(token)?;
        let alg = jwt::algorithm(&header)?;
        let kid = header.kid.as_deref();
        let found = match jwt::verify(token, alg, self.candidates(snap, kid).iter(), &snap.policy) {
            Err(AuthError::UnknownKeyId) if !snap.jwks.is_empty() => {
                // A kid nobody knows: the providers may have rotated their keys.
                let fetches = snap.jwks.iter().map(|s| self.jwks.refresh_forced(s));
                futures_util::future::join_all(fetches).await;
                jwt::verify(token, alg, self.candidates(snap, kid).iter(), &snap.policy)
            }
            other => other,
        };
        let (claims, key) = found?;
        let id = Arc::new(Identity {
            tenant: claims.tenant,
            app: claims.app,
            exp: claims.exp,
            via: Via::Jwt {
                origin: key.origin.clone(),
                jti: claims.jti,
                iat: claims.iat,
            },
        });
        if now < id.exp {
            let verified = Verified {
                id: id.clone(),
                policy: snap.policy.clone(),
            };
            self.cache.insert(cache_key, verified);
        }
        Ok(id)
    }

    /// The keys a token with `kid` may be verified with: the static ones, then the key sets'.
    fn candidates(&self, snap: &Snapshot, kid: Option<&str>) -> Vec<Arc<VerifyKey>> {
        let mut out: Vec<Arc<VerifyKey>> = snap.keys.candidates(kid).cloned().collect();
        for source in &snap.jwks {
            if let Some(set) = self.jwks.keys(&source.id).filter(|set| set.source == *source) {
                out.extend(
                    set.keys
                        .iter()
                        .filter(|k| kid.is_none_or(|id| k.id == id))
                        .cloned(),
                );
            }
        }
        out
    }

    /// A cached verification stands while its key is in force, may still sign for the tenant, and
    /// the lifetime policy still allows the token.
    fn still_stands(&self, id: &Identity, snap: &Snapshot) -> bool {
        let Via::Jwt { origin, iat, .. } = &id.via else {
            return false;
        };
        let key = snap.keys.by_origin(origin).cloned().or_else(|| {
            let (source_id, _kid) = origin.strip_prefix("jwks:")?.split_once('#')?;
            let source = snap.jwks.iter().find(|s| &*s.id == source_id)?;
            let set = self.jwks.keys(&source.id).filter(|set| set.source == *source)?;
            set.keys.iter().find(|k| &k.origin == origin).cloned()
        });
        let claims = jwt::Claims {
            tenant: id.tenant.clone(),
            app: None,
            exp: id.exp,
            iat: *iat,
            jti: None,
        };
        key.is_some_and(|k| jwt::check(&claims, &k, &snap.policy).is_ok())
    }
}
