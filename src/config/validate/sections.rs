//! Validation of `[streams]`, `[cache]` and `[telemetry]` (start-up step 2), and the warnings about
//! valid settings that are probably mistakes.

use super::problems::Problems;
use crate::config::file::FileConfig;
use crate::config::{
    CacheSettings, LimitSettings, LogFormat, OnRedisError, RedisSettings, RedisTarget, StreamSettings,
    TelemetrySettings, UpstreamSettings, units,
};
use crate::secret::Secret;
use std::path::Path;
use std::time::Duration;

pub(super) fn streams(p: &mut Problems, raw: &FileConfig) -> StreamSettings {
    let s = &raw.streams;
    let mut size = |key: &str, text: &str| match units::size(text) {
        Ok(n) if n >= 1024 => usize::try_from(n).unwrap_or(usize::MAX),
        Ok(_) => {
            p.add(format!("streams.{key}"), "must be at least 1KB");
            0
        }
        Err(e) => {
            p.add(format!("streams.{key}"), e);
            0
        }
    };
    StreamSettings {
        stop_on_disconnect: s.stop_on_disconnect,
        max_event_bytes: size("max_event_bytes", &s.max_event_bytes),
        max_json_body: size("max_json_body", &s.max_json_body),
        max_blocking_body: size("max_blocking_body", &s.max_blocking_body),
    }
}

/// Valid settings that are probably mistakes.
pub(super) fn warnings(u: &UpstreamSettings) -> Vec<String> {
    let mut out = Vec::new();
    if u.stream_idle_timeout < Duration::from_secs(15) {
        out.push(format!(
            "upstream.stream_idle_timeout: {:?} is close to Dify's 10 s ping interval; streams waiting for a \
             slow first token may be cut",
            u.stream_idle_timeout
        ));
    }
    out
}

/// The cached endpoints, in the order of [`CacheSettings::ttl`].
pub const CACHED_ENDPOINTS: [&str; 4] = ["info", "parameters", "site", "meta"];

pub(super) fn cache(p: &mut Problems, raw: &FileConfig) -> CacheSettings {
    let c = &raw.cache;
    let ttl = p.duration("cache.ttl", &c.ttl);
    for name in c.endpoint_ttl.keys() {
        if !CACHED_ENDPOINTS.contains(&name.as_str()) {
            p.add(
                format!("cache.endpoint_ttl.{name}"),
                "is not one of info, parameters, site, meta",
            );
        }
    }
    let ttls = CACHED_ENDPOINTS.map(|e| match c.endpoint_ttl.get(e) {
        Some(t) => p.duration(&format!("cache.endpoint_ttl.{e}"), t),
        None => ttl,
    });
    let size = |p: &mut Problems, key: &str, text: &str| {
        units::size(text).unwrap_or_else(|e| {
            p.add(format!("cache.{key}"), e);
            0
        })
    };
    let max_bytes = size(p, "max_bytes", &c.max_bytes);
    let max_entry_bytes =
        usize::try_from(size(p, "max_entry_bytes", &c.max_entry_bytes)).unwrap_or(usize::MAX);
    let window = |p: &mut Problems, key: &str, text: &str| {
        units::duration(text).unwrap_or_else(|e| {
            p.add(format!("cache.{key}"), e);
            Duration::ZERO
        })
    };
    CacheSettings {
        enabled: c.enabled,
        ttl: ttls,
        stale_while_revalidate: window(p, "stale_while_revalidate", &c.stale_while_revalidate),
        max_stale: window(p, "max_stale", &c.max_stale),
        redis_timeout: p.duration("cache.redis_timeout", &c.redis_timeout),
        max_entries: c.max_entries,
        max_bytes,
        max_entry_bytes,
        fetch_timeout: p.duration("cache.fetch_timeout", &c.fetch_timeout),
    }
}

pub(super) fn telemetry(p: &mut Problems, raw: &FileConfig) -> TelemetrySettings {
    let log_format = match raw.telemetry.log_format.as_str() {
        "json" => LogFormat::Json,
        "text" => LogFormat::Text,
        other => {
            p.add(
                "telemetry.log_format",
                format!("`{other}` is not one of json, text"),
            );
            LogFormat::Text
        }
    };
    let otlp_endpoint = raw.telemetry.otlp_endpoint.clone().filter(|e| !e.is_empty());
    if let Some(e) = &otlp_endpoint
        && !(e.starts_with("http://") || e.starts_with("https://"))
    {
        p.add(
            "telemetry.otlp_endpoint",
            format!("`{e}` must start with http:// or https://"),
        );
    }
    TelemetrySettings {
        log_format,
        log_level: raw.telemetry.log_level.clone(),
        otlp_endpoint,
        service_name: raw.telemetry.service_name.clone(),
    }
}

/// `[redis]` (or the older `cache.redis_url`): one server or a cluster, with URLs the build can
/// serve, and the HMAC key.
pub(super) fn redis(
    p: &mut Problems,
    raw: &FileConfig,
    base: &Path,
    timeout: Duration,
) -> Option<RedisSettings> {
    let nonempty = |u: &Option<String>| u.clone().filter(|u| !u.is_empty());
    let single = match (nonempty(&raw.redis.url), nonempty(&raw.cache.redis_url)) {
        (Some(a), Some(b)) if a != b => {
            p.add("cache.redis_url", "differs from redis.url; set only redis.url");
            return None;
        }
        (Some(u), _) => Some((u, "redis.url")),
        (None, Some(u)) => Some((u, "cache.redis_url")),
        (None, None) => None,
    };
    let cluster = &raw.redis.cluster_urls;
    let target = match (single, cluster.is_empty()) {
        (None, true) => return None,
        (Some(_), false) => {
            p.add(
                "redis.cluster_urls",
                "set either redis.url or redis.cluster_urls, not both",
            );
            return None;
        }
        (Some((url, path)), true) => {
            redis_url(p, path, &url, true);
            RedisTarget::Server(Secret::new(url))
        }
        (None, false) => {
            for (i, url) in cluster.iter().enumerate() {
                redis_url(p, &format!("redis.cluster_urls[{i}]"), url, false);
            }
            let tls = cluster.iter().filter(|u| u.starts_with("rediss://")).count();
            if tls != 0 && tls != cluster.len() {
                p.add(
                    "redis.cluster_urls",
                    "mixes redis:// and rediss://; a cluster is all TLS or none",
                );
            }
            RedisTarget::Cluster(cluster.iter().cloned().map(Secret::new).collect())
        }
    };
    let ca_pem = raw
        .redis
        .ca_file
        .as_ref()
        .and_then(|f| match std::fs::read(base.join(f)) {
            Ok(pem) if pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") => Some(pem),
            Ok(_) => {
                p.add("redis.ca_file", format!("`{f}` holds no PEM certificate"));
                None
            }
            Err(e) => {
                p.add("redis.ca_file", format!("cannot read `{f}`: {e}"));
                None
            }
        });
    let hmac_key = match nonempty(&raw.redis.hmac_key) {
        Some(k) if k.len() >= 32 => Some(Secret::new(k)),
        Some(_) => {
            p.add("redis.hmac_key", "must be at least 32 bytes");
            None
        }
        None => {
            let msg = "is required with Redis: every value the gateway keeps there is authenticated with it";
            p.add("redis.hmac_key", msg);
            None
        }
    }?;
    Some(RedisSettings {
        target,
        ca_pem,
        hmac_key,
        timeout,
    })
}

/// A URL this build can connect to: `redis://`, `rediss://` (TLS), and for one server `unix://`.
fn redis_url(p: &mut Problems, path: &str, url: &str, unix_ok: bool) {
    let schemes: &[&str] = if unix_ok {
        &["redis://", "rediss://", "unix://"]
    } else {
        &["redis://", "rediss://"]
    };
    if !schemes.iter().any(|s| url.starts_with(s)) {
        p.add(path, format!("must start with {}", schemes.join(" or ")));
    } else if let Err(e) = redis::IntoConnectionInfo::into_connection_info(url) {
        p.add(
            path,
            format!(
                "is not a usable Redis URL: {}",
                e.detail().unwrap_or("unreadable")
            ),
        );
    }
}

pub(super) fn limits(p: &mut Problems, raw: &FileConfig) -> LimitSettings {
    let l = &raw.limits;
    let on_redis_error = match l.on_redis_error.as_str() {
        "open" => OnRedisError::Open,
        "closed" => OnRedisError::Closed,
        "local" => OnRedisError::Local,
        other => {
            p.add(
                "limits.on_redis_error",
                format!("`{other}` is not one of open, closed, local"),
            );
            OnRedisError::Local
        }
    };
    if l.replicas == 0 {
        p.add("limits.replicas", "must be at least 1");
    }
    let lease_ttl = p.duration("limits.lease_ttl", &l.lease_ttl);
    if !lease_ttl.is_zero() && lease_ttl < Duration::from_secs(3) {
        p.add(
            "limits.lease_ttl",
            "must be at least 3s (leases are renewed every third of it)",
        );
    }
    LimitSettings {
        on_redis_error,
        replicas: l.replicas.max(1),
        lease_ttl,
    }
}
