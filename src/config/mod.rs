//! Configuration: one TOML tree, loaded and validated once at start-up, before any port is bound.
//!
//! `file` is the raw serde tree, `load` reads it with `${ENV}` expansion, `validate` compiles it into
//! [`Settings`] (typed, with secrets redacted and keys parsed) and reports every problem by key path.

pub mod cidr;
pub mod file;
pub mod load;
pub mod units;
pub mod validate;

use crate::secret::Secret;
use crate::store::StoreSettings;
use crate::tenancy::Declared;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub use load::{EnvSource, ProcessEnv};

/// Exit code for a configuration that cannot be used (`EX_USAGE`).
pub const EXIT_BAD_CONFIG: i32 = 64;

/// Everything the gateway needs to run, compiled from the file.
#[derive(Debug)]
pub struct Settings {
    /// Listeners and process settings.
    pub server: ServerSettings,
    /// The Dify origin.
    pub upstream: UpstreamSettings,
    /// Streaming behaviour.
    pub streams: StreamSettings,
    /// The metadata cache.
    pub cache: CacheSettings,
    /// Redis shared by the replicas, when configured.
    pub redis: Option<RedisSettings>,
    /// Bearer token of the admin API (`None`: the admin API is off).
    pub admin_token: Option<Secret>,
    /// Bearer token `/metrics` requires, when set.
    pub metrics_token: Option<Secret>,
    /// Logging.
    pub telemetry: TelemetrySettings,
    /// First HS256 key of every tenant (id, secret), used by `token` and `demo` to sign
    /// development tokens.
    pub signing_key: Option<(String, Secret)>,
    /// Upper bound on cached verified tokens.
    pub token_cache_entries: u64,
    /// Tenants and keys managed at runtime, when configured.
    pub store: Option<StoreSettings>,
    /// How limits are enforced.
    pub limits: LimitSettings,
    /// Tenants, apps, JWT keys and key sets of the file: the part a reload replaces.
    pub declared: Declared,
    /// Settings that are valid but likely mistakes, by key path.
    pub warnings: Vec<String>,
}

/// `[server]`, typed.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Tenant-facing proxy address.
    pub listen: SocketAddr,
    /// Admin listener address.
    pub admin_listen: SocketAddr,
    /// Time in-flight requests get after SIGTERM.
    pub grace_period: Duration,
    /// Time the gateway keeps accepting after SIGTERM, `/readyz` saying draining.
    pub shutdown_delay: Duration,
    /// Largest request body accepted.
    pub max_request_body: u64,
    /// Proxy worker threads.
    pub threads: usize,
    /// Pingora pid file.
    pub pid_file: String,
    /// Pingora upgrade socket.
    pub upgrade_sock: String,
    /// Peers whose `X-Forwarded-For` is kept (load balancers in front of the gateway).
    pub trusted_proxies: Vec<cidr::Cidr>,
    /// Idle client connections close after this.
    pub keepalive_timeout: Duration,
    /// Request heads must complete within this (else 408).
    pub header_timeout: Duration,
    /// `(certificate chain, key)` files of HTTPS on the tenant listener.
    pub tls: Option<(String, String)>,
}

/// One Dify origin of `upstream.url` / `upstream.urls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `https` origin.
    pub tls: bool,
    /// Host name or IP literal (no brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// `Host` header value sent to Dify.
    pub authority: String,
    /// Path prefix before `/v1` (empty or starting with `/`, no trailing `/`).
    pub base_path: String,
}

impl Origin {
    /// Whether the host is a name (resolved, and re-resolved every `resolve_interval`).
    pub fn is_name(&self) -> bool {
        self.host.parse::<std::net::IpAddr>().is_err()
    }
}

/// `[upstream]`, typed.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// The origins of the pool (`url`, or each of `urls`); a name may stand for several replicas.
    pub origins: Vec<Origin>,
    /// Connect (and TLS handshake) timeout; also the longest wait for a replica below its cap.
    pub connect_timeout: Duration,
    /// Per-read timeout, response head included.
    pub read_timeout: Duration,
    /// Per-write timeout.
    pub write_timeout: Duration,
    /// Per-read timeout of streaming requests.
    pub stream_idle_timeout: Duration,
    /// Idle pooled connections close after this.
    pub pool_idle_timeout: Duration,
    /// Verify TLS certificates and host names.
    pub verify_tls: bool,
    /// How often host names are resolved again.
    pub resolve_interval: Duration,
    /// Path of the active health check (`None`: no active checks).
    pub health_check_path: Option<String>,
    /// How often every replica is checked.
    pub health_check_interval: Duration,
    /// Requests in flight per replica at most (0: no cap).
    pub max_inflight_per_replica: usize,
}

impl UpstreamSettings {
    /// The first origin (the one `upstream.url` names).
    pub fn origin(&self) -> &Origin {
        static NONE: std::sync::OnceLock<Origin> = std::sync::OnceLock::new();
        self.origins.first().unwrap_or_else(|| {
            NONE.get_or_init(|| Origin {
                tls: false,
                host: String::new(),
                port: 0,
                authority: String::new(),
                base_path: String::new(),
            })
        })
    }
}

/// `[streams]`, typed.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    /// Stop Dify's generation when a client drops a stream early.
    pub stop_on_disconnect: bool,
    /// Largest SSE event read whole.
    pub max_event_bytes: usize,
    /// Largest JSON body rewritten.
    pub max_json_body: usize,
    /// Largest blocking completion body read for usage.
    pub max_blocking_body: usize,
}

/// `[cache]`, typed.
#[derive(Debug, Clone)]
pub struct CacheSettings {
    /// Cache on or off.
    pub enabled: bool,
    /// Lifetime per cached endpoint, in the order info, parameters, site, meta.
    pub ttl: [Duration; 4],
    /// Stale-while-revalidate window past the ttl.
    pub stale_while_revalidate: Duration,
    /// Stale-if-error window past the ttl.
    pub max_stale: Duration,
    /// Hard limit on a Redis call.
    pub redis_timeout: Duration,
    /// In-process entries at most.
    pub max_entries: u64,
    /// In-process bytes at most.
    pub max_bytes: u64,
    /// Largest body cached.
    pub max_entry_bytes: usize,
    /// Longest wait for Dify when filling.
    pub fetch_timeout: Duration,
}

/// `[redis]`, typed.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// One server, or a cluster.
    pub target: RedisTarget,
    /// The CA certificate (PEM) that Redis's TLS certificate must chain to, beside the system's.
    pub ca_pem: Option<Vec<u8>>,
    /// Key of the HMAC that authenticates every value written.
    pub hmac_key: Secret,
    /// Hard limit on a Redis call (`cache.redis_timeout`).
    pub timeout: Duration,
}

/// Where Redis is.
#[derive(Debug, Clone)]
pub enum RedisTarget {
    /// One server (or a proxy in front of several): its URL, which may hold a password.
    Server(Secret),
    /// A Redis Cluster: some of its nodes' URLs (the rest is discovered).
    Cluster(Vec<Secret>),
}

/// What the limits do when Redis cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRedisError {
    /// Admit (limits are off while Redis is).
    Open,
    /// Refuse with 503 `service_unavailable` and `Retry-After`.
    Closed,
    /// Enforce each limit ÷ `replicas` in process.
    Local,
}

impl OnRedisError {
    /// The config value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Closed => "closed",
            Self::Local => "local",
        }
    }
}

/// `[limits]`, typed.
#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    /// Redis outage policy.
    pub on_redis_error: OnRedisError,
    /// Replicas sharing the limits.
    pub replicas: u64,
    /// Lease lifetime without renewal.
    pub lease_ttl: Duration,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// Human-readable lines.
    Text,
}

/// `[telemetry]`, typed.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// Line format.
    pub log_format: LogFormat,
    /// Default filter directive.
    pub log_level: String,
    /// OTLP/gRPC endpoint of the trace collector.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of exported spans.
    pub service_name: String,
}

/// What the configuration is loaded for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Purpose {
    /// Serving tenants (and `check`, `token`): the published development secret is refused.
    #[default]
    Serve,
    /// `dify-gateway demo` on loopback: the reference config's development secret is allowed.
    Demo,
}

/// Where the configuration came from and what for: a SIGHUP reload reads it the same way.
#[derive(Debug, Clone)]
pub struct Source {
    /// The file.
    pub path: std::path::PathBuf,
    /// What it is loaded for.
    pub purpose: Purpose,
}

impl Source {
    /// Loads and validates the file again.
    pub fn load(&self, env: &dyn EnvSource) -> Result<Settings, Vec<String>> {
        load_for(&self.path, env, self.purpose)
    }
}

/// Loads and validates `path` with variables from `env`: every problem is returned by key path.
pub fn load(path: &Path, env: &dyn EnvSource) -> Result<Settings, Vec<String>> {
    load_for(path, env, Purpose::Serve)
}

/// [`load`] for `purpose`.
pub fn load_for(path: &Path, env: &dyn EnvSource, purpose: Purpose) -> Result<Settings, Vec<String>> {
    let (raw, mut problems) = load::load_file(path, env)?;
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    match validate::validate(raw, base, purpose) {
        Ok(settings) if problems.is_empty() => Ok(settings),
        Ok(_) => Err(problems),
        Err(more) => {
            // A value whose variable was unset is reported once, not again as invalid.
            let seen: Vec<String> = problems
                .iter()
                .filter_map(|p| p.split(": ").next())
                .map(String::from)
                .collect();
            problems.extend(
                more.into_iter()
                    .filter(|m| !seen.iter().any(|s| m.starts_with(&format!("{s}: ")))),
            );
            Err(problems)
        }
    }
}
