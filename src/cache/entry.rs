//! A cached response and its freshness (request step 5): how old it is, whether it may be served
//! as is, served while refreshed, or only when Dify fails; its ETag; and the RFC 9211 `Cache-Status`.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Name the gateway uses in `Cache-Status`.
pub const CACHE_NAME: &str = "dify-gateway";

/// A stored 200 answer of Dify, byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Dify's `Content-Type`.
    pub content_type: String,
    /// Dify's body.
    pub body: String,
    /// When Dify produced it, Unix milliseconds.
    pub stored_at_ms: u64,
    /// Strong validator derived from the body.
    pub etag: String,
    /// Dify's headers a page may read ([`KEPT_HEADERS`]), as Dify sent them.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

/// Dify's response headers kept with a cached body (Dify exposes them to pages through CORS).
pub const KEPT_HEADERS: [&str; 2] = ["x-version", "x-env"];

impl Entry {
    /// An entry for `body` produced at `now_ms`.
    pub fn new(content_type: String, body: String, now_ms: u64) -> Self {
        let etag = format!("\"{}\"", hex::encode(&Sha256::digest(body.as_bytes())[..12]));
        Self {
            content_type,
            body,
            stored_at_ms: now_ms,
            etag,
            headers: Vec::new(),
        }
    }

    /// The entry keeping `headers` too.
    pub fn with_headers(mut self, headers: Vec<(String, String)>) -> Self {
        self.headers = headers;
        self
    }

    /// Age at `now_ms`.
    pub fn age(&self, now_ms: u64) -> Duration {
        Duration::from_millis(now_ms.saturating_sub(self.stored_at_ms))
    }
}

/// Lifetimes of one endpoint's entries.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Fresh for this long.
    pub ttl: Duration,
    /// Then served while refreshed in the background for this long.
    pub stale_while_revalidate: Duration,
    /// Or, when Dify fails, served up to this long past the ttl.
    pub max_stale: Duration,
}

/// What an entry of some age may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Serve it.
    Fresh,
    /// Serve it and refresh in the background.
    Revalidate,
    /// Fetch first; serve it only if Dify fails.
    StaleIfError,
    /// Useless.
    Expired,
}

impl Policy {
    /// How an entry of `age` may be used.
    pub fn freshness(&self, age: Duration) -> Freshness {
        if age < self.ttl {
            Freshness::Fresh
        } else if age < self.ttl + self.stale_while_revalidate {
            Freshness::Revalidate
        } else if age < self.ttl + self.max_stale {
            Freshness::StaleIfError
        } else {
            Freshness::Expired
        }
    }

    /// How long an entry is worth keeping at all.
    pub fn keep(&self) -> Duration {
        self.ttl + self.stale_while_revalidate.max(self.max_stale)
    }
}

/// Whether an `If-None-Match` value matches `etag` (weak comparison, `*`, lists).
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_string();
    if_none_match
        .split(',')
        .any(|t| t.trim() == "*" || strip(t) == strip(etag))
}

/// How a request was answered, as RFC 9211 `Cache-Status` says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Served {
    /// From a fresh entry; `ttl` seconds left.
    Hit { ttl: i64 },
    /// From a stale entry while it is refreshed.
    StaleWhileRevalidate,
    /// Dify failed (`status` 0: no answer); a stale entry was served.
    StaleIfError { status: u16 },
    /// Fetched from Dify; `stored` when the answer was cached.
    Miss { status: u16, stored: bool },
}

impl Served {
    /// The `Cache-Status` header value.
    pub fn header(&self) -> String {
        match self {
            Self::Hit { ttl } => format!("{CACHE_NAME}; hit; ttl={ttl}"),
            Self::StaleWhileRevalidate => format!("{CACHE_NAME}; hit; detail=stale-while-revalidate"),
            Self::StaleIfError { status: 0 } => format!("{CACHE_NAME}; fwd=stale; detail=stale-if-error"),
            Self::StaleIfError { status } => {
                format!("{CACHE_NAME}; fwd=stale; fwd-status={status}; detail=stale-if-error")
            }
            Self::Miss { status, stored: true } => {
                format!("{CACHE_NAME}; fwd=miss; fwd-status={status}; stored")
            }
            Self::Miss {
                status,
                stored: false,
            } => format!("{CACHE_NAME}; fwd=miss; fwd-status={status}"),
        }
    }

    /// Bounded metric label.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Hit { .. } => "hit",
            Self::StaleWhileRevalidate => "stale",
            Self::StaleIfError { .. } => "stale_if_error",
            Self::Miss { .. } => "miss",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_windows() {
        let p = Policy {
            ttl: Duration::from_secs(60),
            stale_while_revalidate: Duration::from_secs(30),
            max_stale: Duration::from_secs(3600),
        };
        let at = |s| p.freshness(Duration::from_secs(s));
        assert_eq!(
            [at(0), at(59), at(60), at(89), at(90), at(3659), at(3660)],
            [
                Freshness::Fresh,
                Freshness::Fresh,
                Freshness::Revalidate,
                Freshness::Revalidate,
                Freshness::StaleIfError,
                Freshness::StaleIfError,
                Freshness::Expired
            ]
        );
        assert_eq!(p.keep(), Duration::from_secs(3660));
    }

    #[test]
    fn etags_and_headers() {
        let e = Entry::new("application/json".into(), "{\"a\": 1}\n".into(), 1000);
        assert!(e.etag.starts_with('"') && e.etag.len() == 26);
        assert!(etag_matches(&e.etag, &e.etag));
        assert!(etag_matches(&format!("\"x\", W/{}", e.etag), &e.etag));
        assert!(etag_matches("*", &e.etag));
        assert!(!etag_matches("\"other\"", &e.etag));
        assert_eq!(e.age(3500), Duration::from_millis(2500));
        assert_eq!(Served::Hit { ttl: 5 }.header(), "dify-gateway; hit; ttl=5");
        assert_eq!(
            Served::StaleIfError { status: 502 }.header(),
            "dify-gateway; fwd=stale; fwd-status=502; detail=stale-if-error"
        );
        assert_eq!(
            Served::Miss {
                status: 200,
                stored: true
            }
            .header(),
            "dify-gateway; fwd=miss; fwd-status=200; stored"
        );
    }
}
