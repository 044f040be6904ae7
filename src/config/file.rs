//! The raw configuration tree as written in the TOML file (start-up step 1: parse).
//!
//! Every field here mirrors a key of `config/gateway.toml`. Durations and sizes stay strings at this
//! stage; `validate` turns the tree into typed [`crate::config::Settings`] and reports every problem by
//! key path. Unknown keys are collected by `load` and rejected there.

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FileConfig {
    /// Listeners, shutdown and request limits.
    pub server: ServerSection,
    /// The Dify API origin.
    pub upstream: UpstreamSection,
    /// Tenant JWT verification.
    pub auth: AuthSection,
    /// Streaming behaviour.
    pub streams: StreamsSection,
    /// The admin API.
    pub admin: AdminSection,
    /// The app metadata cache.
    pub cache: CacheSection,
    /// Redis shared by the replicas (cache, id ownership, limits, change notices).
    pub redis: RedisSection,
    /// Logging.
    pub telemetry: TelemetrySection,
    /// Tenants and keys managed at runtime through the admin API.
    pub store: StoreSection,
    /// How per-tenant limits are enforced.
    pub limits: LimitsSection,
    /// Tenants, each with its Dify apps.
    pub tenants: Vec<TenantSection>,
}

/// `[server]`
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct ServerSection {
    /// Tenant-facing proxy address, `host:port`.
    pub listen: String,
    /// Admin listener (`/healthz`, `/readyz`, `/metrics`), `host:port`.
    pub admin_listen: String,
    /// Time in-flight requests get to finish after SIGTERM.
    pub grace_period: String,
    /// After SIGTERM, time the gateway keeps accepting (while `/readyz` says draining) before it
    /// stops, so that a load balancer takes it out first.
    pub shutdown_delay: String,
    /// Largest request body accepted; larger ones get 413.
    pub max_request_body: String,
    /// Worker threads of the proxy service.
    pub threads: usize,
    /// Pingora's pid file (one per instance when several run on a host).
    pub pid_file: Option<String>,
    /// Pingora's graceful-upgrade socket.
    pub upgrade_sock: Option<String>,
    /// Proxies in front of the gateway (addresses or CIDR networks) whose `X-Forwarded-For` is kept;
    /// from anyone else it is replaced by the peer's address.
    pub trusted_proxies: Vec<String>,
    /// An idle client connection is closed after this, authenticated or not.
    pub keepalive_timeout: String,
    /// A request head not complete within this is answered 408 and the connection closed.
    pub header_timeout: String,
    /// PEM certificate chain of the tenant listener (with `tls_key_file`: HTTPS, HTTP/1.1 and HTTP/2).
    pub tls_cert_file: Option<String>,
    /// PEM private key of the tenant listener.
    pub tls_key_file: Option<String>,
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            admin_listen: "127.0.0.1:9090".into(),
            grace_period: "30s".into(),
            shutdown_delay: "0s".into(),
            max_request_body: "100MB".into(),
            threads: 2,
            pid_file: None,
            upgrade_sock: None,
            trusted_proxies: Vec::new(),
            keepalive_timeout: "60s".into(),
            header_timeout: "10s".into(),
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

/// `[upstream]`
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct UpstreamSection {
    /// Dify API origin such as `http://127.0.0.1:5001`; requests go to `{url}/v1/...`.
    pub url: String,
    /// Time allowed to open a connection (and finish TLS).
    pub connect_timeout: String,
    /// Longest wait for any read from Dify, the response head of a blocking completion included.
    pub read_timeout: String,
    /// Longest wait for a write to Dify.
    pub write_timeout: String,
    /// Longest silence inside a stream (Dify pings every 10 s while it generates).
    pub stream_idle_timeout: String,
    /// Idle pooled upstream connections are closed after this long.
    pub pool_idle_timeout: String,
    /// Check the upstream's TLS certificate and host name (https only).
    pub verify_tls: bool,
    /// A pool of Dify replicas (exclusive with `url`).
    pub urls: Vec<String>,
    /// Host names are resolved again this often (a Kubernetes headless Service).
    pub resolve_interval: String,
    /// Dify's liveness endpoint for active health checks; "" = none.
    pub health_check_path: String,
    /// How often each replica is checked.
    pub health_check_interval: String,
    /// Requests in flight per replica at most; 0 = no cap.
    pub max_inflight_per_replica: usize,
}

impl Default for UpstreamSection {
    fn default() -> Self {
        Self {
            url: String::new(),
            connect_timeout: "5s".into(),
            read_timeout: "1200s".into(),
            write_timeout: "60s".into(),
            stream_idle_timeout: "60s".into(),
            pool_idle_timeout: "60s".into(),
            verify_tls: true,
            urls: Vec::new(),
            resolve_interval: "10s".into(),
            health_check_path: "/health".into(),
            health_check_interval: "5s".into(),
            max_inflight_per_replica: 0,
        }
    }
}

/// `[auth]`
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct AuthSection {
    /// Claim that names the tenant.
    pub tenant_claim: String,
    /// Claim that names the app (optional in tokens).
    pub app_claim: String,
    /// Required `iss` when set.
    pub issuer: Option<String>,
    /// Required `aud` when set.
    pub audience: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: String,
    /// Verification keys; the JWT header `kid` picks one when present.
    pub keys: Vec<KeySection>,
    /// Identity providers' published key sets.
    pub jwks: Vec<JwksSection>,
    /// Longest `exp - iat` a token may have (then `iat` is required); unset = any.
    pub max_token_lifetime: Option<String>,
    /// Upper bound on cached verified tokens.
    pub token_cache_entries: u64,
}

impl Default for AuthSection {
    fn default() -> Self {
        Self {
            tenant_claim: "tenant".into(),
            app_claim: "app".into(),
            issuer: None,
            audience: None,
            leeway: "30s".into(),
            keys: Vec::new(),
            jwks: Vec::new(),
            max_token_lifetime: None,
            token_cache_entries: 100_000,
        }
    }
}

/// `[[auth.keys]]`
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct KeySection {
    /// Key id, matched to the JWT header `kid`.
    pub id: String,
    /// `HS256`, `RS256` or `ES256`; pinned for this key.
    pub algorithm: String,
    /// Shared secret (HS256).
    pub secret: Option<String>,
    /// File holding the shared secret (HS256).
    pub secret_file: Option<String>,
    /// PEM public key (RS256, ES256).
    pub public_key: Option<String>,
    /// File holding the PEM public key (RS256, ES256).
    pub public_key_file: Option<String>,
    /// The only tenants this key may sign for; unset = every tenant (one trusted issuer).
    pub tenants: Option<Vec<String>>,
}

/// `[[auth.jwks]]`
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct JwksSection {
    /// The key set's URL (`https://` verified; `http://` for internal providers).
    pub url: String,
    /// The only tenants its keys may sign for; unset = every tenant.
    pub tenants: Option<Vec<String>>,
    /// How often the set is fetched when the provider sends no `Cache-Control: max-age`.
    pub refresh: String,
}

impl Default for JwksSection {
    fn default() -> Self {
        Self {
            url: String::new(),
            tenants: None,
            refresh: "5m".into(),
        }
    }
}

/// `[limits]`
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct LimitsSection {
    /// When Redis cannot answer within its timeout: `open` admits, `closed` answers 503, `local`
    /// has each replica enforce its part of each limit on its own.
    pub on_redis_error: String,
    /// How many replicas share the limits (`local` divides each limit by this).
    pub replicas: u64,
    /// How long a completion's lease outlives a replica that stopped renewing it (a crash).
    pub lease_ttl: String,
}

impl Default for LimitsSection {
    fn default() -> Self {
        Self {
            on_redis_error: "local".into(),
            replicas: 1,
            lease_ttl: "30s".into(),
        }
    }
}

/// `[store]`
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct StoreSection {
    /// `sqlite://PATH` (relative to this file's folder) or `postgres://user:pw@host/db`.
    pub url: Option<String>,
    /// 32 random bytes, base64: seals the Dify keys and JWT secrets kept in the store.
    pub encryption_key: Option<String>,
    /// File holding `encryption_key`.
    pub encryption_key_file: Option<String>,
}

impl std::fmt::Debug for StoreSection {
    /// The URL may hold a password and the key is a secret: neither is printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSection")
            .field("url", &self.url.as_ref().map(|_| "[redacted]"))
            .field(
                "encryption_key",
                &self.encryption_key.as_ref().map(|_| "[redacted]"),
            )
            .field("encryption_key_file", &self.encryption_key_file)
            .finish()
    }
}

/// `[admin]`
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AdminSection {
    /// Bearer token for `/admin/*` on the admin listener; without one the admin API is off.
    pub token: Option<String>,
    /// Bearer token `/metrics` requires (its series name tenants and their spend); unset = open, for
    /// an admin listener only the monitoring network reaches.
    pub metrics_token: Option<String>,
}

/// `[cache]`
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct CacheSection {
    /// Turn the metadata cache off entirely.
    pub enabled: bool,
    /// Redis shared by the replicas: the same setting as `redis.url` (kept for older configs).
    pub redis_url: Option<String>,
    /// Default lifetime of a cached metadata response.
    pub ttl: String,
    /// Per-endpoint lifetimes (`info`, `parameters`, `site`, `meta`) overriding `ttl`.
    pub endpoint_ttl: std::collections::BTreeMap<String, String>,
    /// Past its ttl, an entry is still served while it is refreshed in the background for this long.
    pub stale_while_revalidate: String,
    /// Past its ttl, an entry may be served this long when Dify fails or times out.
    pub max_stale: String,
    /// Hard limit on any one Redis call.
    pub redis_timeout: String,
    /// In-process entries kept at most.
    pub max_entries: u64,
    /// In-process bytes kept at most.
    pub max_bytes: String,
    /// Largest response body cached.
    pub max_entry_bytes: String,
    /// Longest wait for Dify when filling the cache.
    pub fetch_timeout: String,
}

impl Default for CacheSection {
    fn default() -> Self {
        Self {
            enabled: true,
            redis_url: None,
            ttl: "60s".into(),
            endpoint_ttl: Default::default(),
            stale_while_revalidate: "30s".into(),
            max_stale: "1h".into(),
            redis_timeout: "50ms".into(),
            max_entries: 10_000,
            max_bytes: "64MB".into(),
            max_entry_bytes: "1MB".into(),
            fetch_timeout: "30s".into(),
        }
    }
}

/// `[redis]`
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RedisSection {
    /// `redis://`, `rediss://` (TLS) or `unix://` URL (may hold a password); `cache.redis_url` is the
    /// same setting.
    pub url: Option<String>,
    /// Secret (at least 32 bytes) that authenticates every value the gateway writes to Redis, so
    /// that a value written by anyone else is never believed. Required with Redis.
    pub hmac_key: Option<String>,
    /// The nodes of a Redis Cluster (any reachable subset; the rest is discovered), instead of `url`.
    pub cluster_urls: Vec<String>,
    /// PEM file of the CA that signed Redis's certificate (`rediss://`), when it is not in the
    /// system's trust store.
    pub ca_file: Option<String>,
}

/// `[streams]`
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct StreamsSection {
    /// Call Dify's stop when a client drops a stream before its end.
    pub stop_on_disconnect: bool,
    /// Largest single SSE event the observer reads whole (larger ones are passed on, partly read).
    pub max_event_bytes: String,
    /// Largest JSON request body whose `user` is rewritten (completion, stop, feedback, TTS).
    pub max_json_body: String,
    /// Largest blocking completion body read for its usage.
    pub max_blocking_body: String,
}

impl Default for StreamsSection {
    fn default() -> Self {
        Self {
            stop_on_disconnect: true,
            max_event_bytes: "256KB".into(),
            max_json_body: "10MB".into(),
            max_blocking_body: "4MB".into(),
        }
    }
}

/// `[telemetry]`
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct TelemetrySection {
    /// `json` or `text`.
    pub log_format: String,
    /// Log filter in `RUST_LOG` syntax; the `RUST_LOG` variable overrides it.
    pub log_level: String,
    /// OTLP/gRPC collector for traces, e.g. `http://127.0.0.1:4317`; unset = no traces.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
}

impl Default for TelemetrySection {
    fn default() -> Self {
        Self {
            log_format: "text".into(),
            log_level: "info".into(),
            otlp_endpoint: None,
            service_name: "dify-gateway".into(),
        }
    }
}

/// `[[tenants]]`
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct TenantSection {
    /// Tenant id as it appears in the tenant claim.
    pub id: String,
    /// Refuse the tenant's calls (403) without removing it.
    pub disabled: bool,
    /// Its limits (`[tenants.limits]`).
    pub limits: crate::admit::limits::Limits,
    /// The tenant's Dify apps; the first is the default.
    pub apps: Vec<AppSection>,
}

/// `[[tenants.apps]]`
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct AppSection {
    /// App name as used in the app claim or `X-Dify-App`.
    pub name: String,
    /// The Dify app API key (`app-...`).
    pub api_key: Option<String>,
    /// File holding the Dify app API key.
    pub api_key_file: Option<String>,
    /// Prefix Dify's `user` with the tenant id (`acme:bob`), so tenants sharing an app stay apart.
    pub scope_users: bool,
    /// Allow the endpoints that act on the whole Dify app (annotations, annotation reply, the app's
    /// feedback list). Default: allowed unless another tenant shares the app's key.
    pub app_wide_endpoints: Option<bool>,
    /// What one completion reserves against the tenant's token limits until Dify reports usage.
    pub max_tokens_per_request: Option<u64>,
    /// The share (0–1] of the app's concurrency this tenant may take when several share the key.
    pub max_share: Option<f64>,
}

impl Default for AppSection {
    fn default() -> Self {
        Self {
            name: String::new(),
            api_key: None,
            api_key_file: None,
            scope_users: true,
            app_wide_endpoints: None,
            max_tokens_per_request: None,
            max_share: None,
        }
    }
}
