//! Cache keys (request step 5, `request_filter`): the Dify app, identified by a hash of its key (never
//! the key itself), and the cached endpoint. A key that changes makes a new, empty cache space.

use crate::admit::route::Endpoint;
use sha2::{Digest, Sha256};

/// The endpoints whose answers are cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cached {
    /// `GET /v1/info`
    Info,
    /// `GET /v1/parameters`
    Parameters,
    /// `GET /v1/site`
    Site,
    /// `GET /v1/meta`
    Meta,
}

impl Cached {
    /// All cached endpoints, in config order.
    pub const ALL: [Cached; 4] = [Self::Info, Self::Parameters, Self::Site, Self::Meta];

    /// The cached endpoint for `e`, if it is one.
    pub fn of(e: Endpoint) -> Option<Self> {
        match e {
            Endpoint::Info => Some(Self::Info),
            Endpoint::Parameters => Some(Self::Parameters),
            Endpoint::Site => Some(Self::Site),
            Endpoint::Meta => Some(Self::Meta),
            _ => None,
        }
    }

    /// Position in [`Cached::ALL`] and in the ttl table.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Route name (also the metric label).
    pub fn name(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Parameters => "parameters",
            Self::Site => "site",
            Self::Meta => "meta",
        }
    }

    /// API path (Dify ignores the query string of these endpoints, so it is not part of the key).
    pub fn path(self) -> &'static str {
        match self {
            Self::Info => "/v1/info",
            Self::Parameters => "/v1/parameters",
            Self::Site => "/v1/site",
            Self::Meta => "/v1/meta",
        }
    }
}

/// A hash naming a Dify app without revealing its key.
pub type AppHash = [u8; 16];

/// The app hash of `api_key`.
pub fn app_hash(api_key: &str) -> AppHash {
    let d = Sha256::digest(api_key.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&d[..16]);
    out
}

/// One cache entry's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The app.
    pub app: AppHash,
    /// The endpoint.
    pub endpoint: Cached,
}

/// Prefix of every Redis key the gateway writes.
pub const REDIS_PREFIX: &str = "dify-gw:cache:v1:";

impl CacheKey {
    /// The key of `endpoint` for the app with `api_key`.
    pub fn new(api_key: &str, endpoint: Cached) -> Self {
        Self {
            app: app_hash(api_key),
            endpoint,
        }
    }

    /// The Redis key. The app is its hash tag: on a Redis Cluster an app's entries share a slot,
    /// so deleting them is one command on one node.
    pub fn redis_key(&self) -> String {
        format!(
            "{REDIS_PREFIX}{{{}}}:{}",
            hex::encode(self.app),
            self.endpoint.name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_hold_the_app_key() {
        let k = CacheKey::new("app-secret-key", Cached::Parameters);
        assert!(!k.redis_key().contains("secret"));
        assert!(k.redis_key().starts_with(REDIS_PREFIX) && k.redis_key().ends_with(":parameters"));
        assert_ne!(k, CacheKey::new("app-other-key", Cached::Parameters));
        assert_ne!(k, CacheKey::new("app-secret-key", Cached::Info));
    }
}
