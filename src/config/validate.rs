//! Compiles the raw [`FileConfig`] into [`Settings`] (start-up step 2), collecting every problem as
//! `key.path: message` instead of stopping at the first.

use super::file::{AppSection, AuthSection, FileConfig, KeySection, ServerSection, UpstreamSection};
use super::{
    CacheSettings, LogFormat, ServerSettings, Settings, StreamSettings, TelemetrySettings, UpstreamSettings,
    units,
};
use crate::auth::{JwtPolicy, JwtVerifier, VerifyKey};
use crate::secret::Secret;
use crate::state::{App, Snapshot, Tenant};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
const MIN_HS_SECRET: usize = 32;

/// Collects problems by key path.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, path: impl std::fmt::Display, msg: impl std::fmt::Display) {
        self.0.push(format!("{path}: {msg}"));
    }

    fn duration(&mut self, path: &str, text: &str) -> Duration {
        match units::duration(text) {
            Ok(d) if d.is_zero() => {
                self.add(path, "must be greater than zero");
                d
            }
            Ok(d) => d,
            Err(e) => {
                self.add(path, e);
                Duration::ZERO
            }
        }
    }

    fn addr(&mut self, path: &str, text: &str) -> SocketAddr {
        text.parse().unwrap_or_else(|_| {
            self.add(path, format!("`{text}` is not an ip:port address"));
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }
}

/// Validates the whole tree. `base` resolves relative `*_file` paths.
pub fn validate(raw: FileConfig, base: &Path) -> Result<Settings, Vec<String>> {
    let mut p = Problems::default();
    let server = server(&mut p, &raw.server);
    let upstream = upstream(&mut p, &raw.upstream);
    let telemetry = telemetry(&mut p, &raw);
    let streams = streams(&mut p, &raw);
    let cache = cache(&mut p, &raw);
    let admin_token = match raw.admin.token.as_deref() {
        Some(t) if t.len() < 16 => {
            p.add("admin.token", "must be at least 16 characters");
            None
        }
        Some(t) => Some(Secret::new(t)),
        None => None,
    };
    let (keys, policy, signing_key) = auth(&mut p, &raw.auth, base);
    let tenants = tenants(&mut p, &raw, base);
    if !p.0.is_empty() {
        return Err(p.0);
    }
    let verifier = JwtVerifier::new(keys, policy, raw.auth.token_cache_entries);
    let warnings = warnings(&upstream);
    Ok(Settings {
        warnings,
        server,
        upstream,
        streams,
        cache,
        admin_token,
        telemetry,
        signing_key,
        snapshot: Snapshot::new(tenants, verifier),
    })
}

fn server(p: &mut Problems, s: &ServerSection) -> ServerSettings {
    let listen = p.addr("server.listen", &s.listen);
    let admin_listen = p.addr("server.admin_listen", &s.admin_listen);
    if listen == admin_listen && listen.port() != 0 {
        p.add("server.admin_listen", "must differ from server.listen");
    }
    let max_request_body = units::size(&s.max_request_body).unwrap_or_else(|e| {
        p.add("server.max_request_body", e);
        0
    });
    if s.threads == 0 {
        p.add("server.threads", "must be at least 1");
    }
    let port = listen.port();
    ServerSettings {
        listen,
        admin_listen,
        grace_period: units::duration(&s.grace_period).unwrap_or_else(|e| {
            p.add("server.grace_period", e);
            Duration::ZERO
        }),
        max_request_body,
        threads: s.threads,
        pid_file: s
            .pid_file
            .clone()
            .unwrap_or_else(|| format!("/tmp/dify-gateway-{port}.pid")),
        upgrade_sock: s
            .upgrade_sock
            .clone()
            .unwrap_or_else(|| format!("/tmp/dify-gateway-{port}.upgrade.sock")),
    }
}

fn upstream(p: &mut Problems, u: &UpstreamSection) -> UpstreamSettings {
    let (tls, host, port, base_path) = parse_origin(&u.url).unwrap_or_else(|e| {
        p.add("upstream.url", e);
        (false, String::new(), 0, String::new())
    });
    let default_port = if tls { 443 } else { 80 };
    let bracketed = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let authority = if port == default_port {
        bracketed
    } else {
        format!("{bracketed}:{port}")
    };
    UpstreamSettings {
        tls,
        host,
        port,
        authority,
        base_path,
        connect_timeout: p.duration("upstream.connect_timeout", &u.connect_timeout),
        read_timeout: p.duration("upstream.read_timeout", &u.read_timeout),
        write_timeout: p.duration("upstream.write_timeout", &u.write_timeout),
        stream_idle_timeout: p.duration("upstream.stream_idle_timeout", &u.stream_idle_timeout),
        pool_idle_timeout: p.duration("upstream.pool_idle_timeout", &u.pool_idle_timeout),
        verify_tls: u.verify_tls,
    }
}

/// Splits `http(s)://host[:port][/base]` into its parts.
pub fn parse_origin(url: &str) -> Result<(bool, String, u16, String), String> {
    if url.is_empty() {
        return Err("is required (the Dify API origin, e.g. \"http://127.0.0.1:5001\")".into());
    }
    let uri: http::Uri = url.parse().map_err(|e| format!("`{url}` is not a URL ({e})"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("`{url}` must start with http:// or https://")),
    };
    let auth = uri.authority().ok_or_else(|| format!("`{url}` has no host"))?;
    if auth.as_str().contains('@') {
        return Err("must not contain credentials".into());
    }
    if uri.query().is_some() {
        return Err("must not contain a query".into());
    }
    let host = auth
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = auth.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let mut base = uri.path().trim_end_matches('/').to_string();
    if base.ends_with("/v1") {
        return Err("give the origin without /v1; the gateway adds the API path".into());
    }
    if base == "/" {
        base.clear();
    }
    Ok((tls, host, port, base))
}

fn streams(p: &mut Problems, raw: &FileConfig) -> StreamSettings {
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
fn warnings(u: &UpstreamSettings) -> Vec<String> {
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

fn cache(p: &mut Problems, raw: &FileConfig) -> CacheSettings {
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
    let redis_url = c.redis_url.as_deref().filter(|u| !u.is_empty()).map(|u| {
        if !(u.starts_with("redis://") || u.starts_with("rediss://") || u.starts_with("unix://")) {
            p.add(
                "cache.redis_url",
                "must start with redis://, rediss:// or unix://",
            );
        }
        Secret::new(u)
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
        redis_url,
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

fn telemetry(p: &mut Problems, raw: &FileConfig) -> TelemetrySettings {
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

type AuthParts = (Vec<VerifyKey>, JwtPolicy, Option<(String, Secret)>);

fn auth(p: &mut Problems, a: &AuthSection, base: &Path) -> AuthParts {
    for (key, val) in [
        ("auth.tenant_claim", &a.tenant_claim),
        ("auth.app_claim", &a.app_claim),
    ] {
        if val.is_empty() {
            p.add(key, "must not be empty");
        }
    }
    if a.token_cache_entries == 0 {
        p.add("auth.token_cache_entries", "must be at least 1");
    }
    let policy = JwtPolicy {
        tenant_claim: a.tenant_claim.clone(),
        app_claim: a.app_claim.clone(),
        issuer: a.issuer.clone().filter(|s| !s.is_empty()),
        audience: a.audience.clone().filter(|s| !s.is_empty()),
        leeway: units::duration(&a.leeway).unwrap_or_else(|e| {
            p.add("auth.leeway", e);
            Duration::ZERO
        }),
    };
    if a.keys.is_empty() {
        p.add("auth.keys", "at least one key is required");
    }
    let mut ids = HashSet::new();
    let mut keys = Vec::new();
    let mut signing = None;
    for (i, k) in a.keys.iter().enumerate() {
        let path = format!("auth.keys[{i}]");
        if k.id.is_empty() {
            p.add(format!("{path}.id"), "must not be empty");
        } else if !ids.insert(k.id.clone()) {
            p.add(format!("{path}.id"), format!("`{}` is used by another key", k.id));
        }
        if let Some((alg, dk, secret)) = key(p, &path, k, base) {
            if alg == Algorithm::HS256 && signing.is_none() {
                signing = secret.map(|s| (k.id.clone(), s));
            }
            keys.push(VerifyKey::new(k.id.clone(), alg, dk, &policy));
        }
    }
    (keys, policy, signing)
}

fn key(
    p: &mut Problems,
    path: &str,
    k: &KeySection,
    base: &Path,
) -> Option<(Algorithm, DecodingKey, Option<Secret>)> {
    let alg = match k.algorithm.as_str() {
        "HS256" => Algorithm::HS256,
        "RS256" => Algorithm::RS256,
        "ES256" => Algorithm::ES256,
        other => {
            p.add(
                format!("{path}.algorithm"),
                format!("`{other}` is not one of HS256, RS256, ES256"),
            );
            return None;
        }
    };
    if alg == Algorithm::HS256 {
        if k.public_key.is_some() || k.public_key_file.is_some() {
            p.add(
                format!("{path}.public_key"),
                "is for RS256/ES256 keys; HS256 takes secret",
            );
        }
        let secret = one_of(
            p,
            path,
            ("secret", &k.secret),
            ("secret_file", &k.secret_file),
            base,
        )?;
        if secret.len() < MIN_HS_SECRET {
            p.add(
                format!("{path}.secret"),
                format!("must be at least {MIN_HS_SECRET} bytes"),
            );
            return None;
        }
        let dk = DecodingKey::from_secret(secret.as_bytes());
        return Some((alg, dk, Some(Secret::new(secret))));
    }
    if k.secret.is_some() || k.secret_file.is_some() {
        p.add(
            format!("{path}.secret"),
            "is for HS256 keys; RS256/ES256 take public_key",
        );
    }
    let pem = one_of(
        p,
        path,
        ("public_key", &k.public_key),
        ("public_key_file", &k.public_key_file),
        base,
    )?;
    let parsed = if alg == Algorithm::RS256 {
        DecodingKey::from_rsa_pem(pem.as_bytes())
    } else {
        DecodingKey::from_ec_pem(pem.as_bytes())
    };
    match parsed {
        Ok(dk) => Some((alg, dk, None)),
        Err(e) => {
            p.add(
                format!("{path}.public_key"),
                format!("is not a PEM {} public key ({e})", k.algorithm),
            );
            None
        }
    }
}

/// Exactly one of an inline value and a file holding it.
fn one_of(
    p: &mut Problems,
    path: &str,
    inline: (&str, &Option<String>),
    file: (&str, &Option<String>),
    base: &Path,
) -> Option<String> {
    match (inline.1, file.1) {
        (Some(v), None) if !v.is_empty() => Some(v.clone()),
        (Some(_), None) => {
            p.add(format!("{path}.{}", inline.0), "must not be empty");
            None
        }
        (None, Some(f)) => match std::fs::read_to_string(base.join(f)) {
            Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
            Ok(_) => {
                p.add(format!("{path}.{}", file.0), format!("`{f}` is empty"));
                None
            }
            Err(e) => {
                p.add(format!("{path}.{}", file.0), format!("cannot read `{f}`: {e}"));
                None
            }
        },
        (Some(_), Some(_)) => {
            p.add(path, format!("set either {} or {}, not both", inline.0, file.0));
            None
        }
        (None, None) => {
            p.add(path, format!("{} or {} is required", inline.0, file.0));
            None
        }
    }
}

fn tenants(p: &mut Problems, raw: &FileConfig, base: &Path) -> HashMap<String, Arc<Tenant>> {
    if raw.tenants.is_empty() {
        p.add("tenants", "at least one tenant is required");
    }
    // Keys first: whether an app is shared by several tenants decides its app-wide endpoints.
    let keys: Vec<Vec<Option<String>>> = raw
        .tenants
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let keys = t.apps.iter().enumerate();
            keys.map(|(j, a)| app_key(p, &format!("tenants[{i}].apps[{j}]"), a, base))
                .collect()
        })
        .collect();
    let mut owners: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (t, ks) in raw.tenants.iter().zip(&keys) {
        for k in ks.iter().flatten() {
            owners.entry(k.as_str()).or_default().insert(t.id.as_str());
        }
    }
    let mut out = HashMap::new();
    for (i, (t, ks)) in raw.tenants.iter().zip(&keys).enumerate() {
        let path = format!("tenants[{i}]");
        if t.id.is_empty() {
            p.add(format!("{path}.id"), "must not be empty");
        } else if t.id.contains(':') {
            // Scoped users are `tenant:user`: a `:` in a tenant id would let two tenants' users collide.
            p.add(format!("{path}.id"), "must not contain `:`");
        } else if out.contains_key(&t.id) {
            p.add(
                format!("{path}.id"),
                format!("`{}` is used by another tenant", t.id),
            );
        }
        if t.apps.is_empty() {
            p.add(format!("{path}.apps"), "at least one app is required");
        }
        let mut names = HashSet::new();
        let mut apps = Vec::new();
        for (j, (a, key)) in t.apps.iter().zip(ks).enumerate() {
            if a.name.is_empty() {
                p.add(format!("{path}.apps[{j}].name"), "must not be empty");
            } else if !names.insert(a.name.clone()) {
                let msg = format!("`{}` is used by another app of this tenant", a.name);
                p.add(format!("{path}.apps[{j}].name"), msg);
            }
            if let Some(key) = key {
                let shared = owners.get(key.as_str()).is_some_and(|o| o.len() > 1);
                apps.push(Arc::new(App {
                    name: a.name.clone(),
                    api_key: Secret::new(key.clone()),
                    scope_users: a.scope_users,
                    app_wide: a.app_wide_endpoints.unwrap_or(!shared),
                }));
            }
        }
        out.insert(
            t.id.clone(),
            Arc::new(Tenant {
                id: t.id.clone(),
                apps,
            }),
        );
    }
    out
}

fn app_key(p: &mut Problems, path: &str, a: &AppSection, base: &Path) -> Option<String> {
    let key = one_of(
        p,
        path,
        ("api_key", &a.api_key),
        ("api_key_file", &a.api_key_file),
        base,
    )?;
    if key
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || !b.is_ascii())
    {
        p.add(
            format!("{path}.api_key"),
            "must be printable ASCII without spaces",
        );
        return None;
    }
    Some(key)
}
