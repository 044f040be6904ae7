//! Assembles the Pingora server (start-up step 3): Pingora's `ServerConf` is built from our settings,
//! the process-lifetime parts are created once, then the proxy, admin and background services are
//! added. Ports are bound only when the server runs, after the configuration has been validated.

use crate::admin::AdminApp;
use crate::admit::auth::Authenticator;
use crate::admit::auth::jwks::Jwks;
use crate::admit::refusal_reasons;
use crate::admit::route::Endpoint;
use crate::background::STOP_MARGIN;
use crate::background::drain::{Drain, Requests};
use crate::background::jwks_refresh::JwksRefresh;
use crate::background::limits::LimitUpkeep;
use crate::background::redis_sync::RedisSync;
use crate::background::reload;
use crate::background::reload::Reloader;
use crate::background::resolve::Resolver;
use crate::background::shutdown::ShutdownStops;
use crate::background::store_sync::StoreSync;
use crate::background::trace_flush::TraceFlush;
use crate::cache::MetadataCache;
use crate::cache::key::Cached;
use crate::config::{ServerSettings, Settings, Source, StreamSettings};
use crate::limits::Limiter;
use crate::listen::hygiene::Hygiene;
use crate::listen::shutdown::{Draining, Signals};
use crate::listen::tls::{Certs, Resolver as CertResolver};
use crate::ownership::Ownership;
use crate::proxy::Gateway;
use crate::redis::RedisTier;
use crate::respond::UpstreamFailure;
use crate::scope::pingora::BodyLimits;
use crate::secret::Secret;
use crate::store::StoreHandle;
use crate::store::model::{ACTIONS, StoreData};
use crate::stream::EventKind;
use crate::stream::Streams;
use crate::stream::stop::StopCause;
use crate::stream::stop::{ActiveStreams, Stopper};
use crate::telemetry::Known;
use crate::telemetry::Metrics;
use crate::telemetry::trace::Otel;
use crate::tenancy::Tenancy;
use crate::upstream::{DifyClient, Upstream};
use crate::{cache, redis};
use pingora::listeners::{DEFAULT_L4_WRITE_BUFFER_SIZE, L4BufferSettings, ListenerConfig};
use pingora::proxy::HttpProxy;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server};
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use prometheus::Registry;
use std::sync::Arc;

/// Pingora's server settings, derived from ours.
pub fn server_conf(s: &Settings) -> ServerConf {
    ServerConf {
        threads: s.server.threads,
        grace_period_seconds: Some((s.server.grace_period + STOP_MARGIN).as_secs()),
        graceful_shutdown_timeout_seconds: Some(5),
        pid_file: s.server.pid_file.clone(),
        upgrade_sock: s.server.upgrade_sock.clone(),
        ..ServerConf::default()
    }
}

/// The process-lifetime parts shared by the services.
struct Parts {
    registry: Registry,
    metrics: Metrics,
    upstream: Arc<Upstream>,
    redis: Option<Arc<RedisTier>>,
    cache: Option<Arc<MetadataCache>>,
    otel: Option<Arc<Otel>>,
    stopper: Arc<Stopper>,
    active: Arc<ActiveStreams>,
    tenancy: Arc<Tenancy>,
    auth: Arc<Authenticator>,
    limiter: Arc<Limiter>,
    store: Option<Arc<StoreHandle>>,
    requests: Arc<Requests>,
}

/// The store as start-up left it: opened and read, or (when the configuration file's tenants can
/// serve alone) not reached yet, for the store service to retry.
pub struct StoreStart {
    /// The store.
    pub handle: Arc<StoreHandle>,
    /// What it held at start-up, when it could be read.
    pub data: Option<StoreData>,
}

fn parts(settings: Settings, store: Option<StoreStart>) -> Result<(Parts, Rest), String> {
    let Settings {
        server,
        upstream,
        streams,
        cache: c,
        redis,
        admin_token,
        metrics_token,
        telemetry,
        declared,
        token_cache_entries,
        limits,
        ..
    } = settings;
    let registry = Registry::new();
    let metrics = Metrics::register(&registry).map_err(|e| format!("metrics: {e}"))?;
    precreate(&metrics);
    let (store, stored) = match store {
        Some(s) => {
            metrics
                .expose_store(&registry)
                .map_err(|e| format!("metrics: {e}"))?;
            metrics.store_up.set(i64::from(s.handle.is_up()));
            (Some(s.handle), s.data)
        }
        None => (None, None),
    };
    let m = metrics.clone();
    let on_publish = Box::new(move |snap: &crate::admit::snapshot::Snapshot| {
        for t in snap.tenants.values() {
            for a in &t.apps {
                m.precreate_app(&t.id, &a.name);
            }
            crate::limits::limiter::precreate(&m, t);
        }
    });
    let tenancy = Arc::new(Tenancy::new(declared, stored, on_publish));
    let m = metrics.clone();
    let jwks = Jwks::observed(Box::new(move |ok| m.jwks_fetch(if ok { "ok" } else { "failed" })));
    let auth = Arc::new(Authenticator::with_jwks(token_cache_entries, jwks));
    let upstream = Arc::new(Upstream::new(upstream, Box::new(metrics.clone())));
    let client = Arc::new(DifyClient::new(upstream.clone()));
    let otel = match &telemetry.otlp_endpoint {
        Some(e) => Some(Arc::new(
            Otel::start(e, &telemetry.service_name).map_err(|e| format!("otlp: {e}"))?,
        )),
        None => None,
    };
    let redis = redis.map(|r| Arc::new(RedisTier::new(&r, metrics.clone())));
    let limiter = Arc::new(Limiter::new(redis.clone(), limits, metrics.clone()));
    let cache = c
        .enabled
        .then(|| MetadataCache::new(&c, client.clone(), redis.clone(), metrics.clone()));
    let parts = Parts {
        stopper: Arc::new(Stopper::new(client, metrics.clone())),
        active: Arc::new(ActiveStreams::default()),
        tenancy,
        auth,
        limiter,
        store,
        requests: Arc::new(Requests::default()),
        registry,
        metrics,
        upstream,
        redis,
        cache,
        otel,
    };
    Ok((
        parts,
        Rest {
            server,
            streams,
            admin_token,
            metrics_token,
        },
    ))
}

/// The settings left once the parts are made.
struct Rest {
    server: ServerSettings,
    streams: StreamSettings,
    admin_token: Option<Secret>,
    metrics_token: Option<Secret>,
}

/// Creates every series a dashboard or alert reads, at zero, from the label values each step knows.
fn precreate(metrics: &Metrics) {
    let endpoints: Vec<_> = Endpoint::ALL
        .iter()
        .map(|e| (e.name(), e.method(), e.streams()))
        .collect();
    let reasons = refusal_reasons();
    let failures = UpstreamFailure::ALL.map(UpstreamFailure::label);
    let causes = StopCause::ALL.map(StopCause::label);
    let kinds = EventKind::ALL.map(EventKind::label);
    let cached = Cached::ALL.map(Cached::name);
    metrics.precreate(&Known {
        endpoints: &endpoints,
        auth_reasons: &reasons,
        upstream_failures: &failures,
        stop_causes: &causes,
        sse_kinds: &kinds,
        cache: (&cached, &cache::TIERS, &cache::OUTCOMES),
        redis: (&redis::OPS, &redis::FAILURES),
        reloads: &reload::OUTCOMES,
        admin_actions: &ACTIONS,
        jwks_outcomes: &["ok", "failed"],
    });
}

/// Builds the server with all its services, and the signal watch to run it with.
pub fn build(
    settings: Settings,
    source: Option<Source>,
    store: Option<StoreStart>,
) -> Result<(Server, RunArgs), String> {
    let draining = Arc::new(Draining::default());
    let signals = Signals {
        draining: draining.clone(),
        delay: settings.server.shutdown_delay,
    };
    let mut server = Server::new_with_opt_and_conf(None, server_conf(&settings));
    server.bootstrap();
    let (p, rest) = parts(settings, store)?;
    let ownership = Arc::new(Ownership::new(p.redis.clone()));
    let gateway = Gateway {
        snapshot: p.tenancy.shared().clone(),
        auth: p.auth.clone(),
        limiter: p.limiter.clone(),
        upstream: p.upstream.clone(),
        metrics: p.metrics.clone(),
        limits: BodyLimits {
            max_request_body: rest.server.max_request_body,
            max_json_body: rest.streams.max_json_body,
        },
        trusted_proxies: rest.server.trusted_proxies.clone(),
        ownership: ownership.clone(),
        streams: Streams {
            settings: rest.streams.clone(),
            active: p.active.clone(),
            stopper: p.stopper.clone(),
            ownership,
            metrics: p.metrics.clone(),
        },
        cache: p.cache.clone(),
        otel: p.otel.clone(),
        requests: p.requests.clone(),
    };
    let (proxy, certs) = tenant_listener(&server, gateway, &rest.server)?;
    let admin_app = AdminApp {
        registry: p.registry.clone(),
        upstream: p.upstream.clone(),
        cache: p.cache.clone(),
        tenancy: p.tenancy.clone(),
        store: p.store.clone(),
        jwks: p.auth.jwks.clone(),
        limiter: p.limiter.clone(),
        metrics: p.metrics.clone(),
        token: rest.admin_token.clone(),
        metrics_token: rest.metrics_token.clone(),
        draining,
        tenant_listener: crate::admin::health::Listening::new(rest.server.listen),
    };
    let mut admin = Service::new("admin".to_string(), admin_app);
    admin.threads = Some(1);
    admin.add_tcp(&rest.server.admin_listen.to_string());
    server.add_service(proxy);
    server.add_service(admin);
    add_background(&mut server, &rest, &p, source, certs);
    Ok((
        server,
        RunArgs {
            shutdown_signal: Box::new(signals),
        },
    ))
}

/// The tenant-facing service.
type TenantService = Service<Hygiene<HttpProxy<Gateway>>>;

/// The tenant-facing service: the proxy behind connection hygiene, on TCP or TLS (HTTP/2 by ALPN,
/// the certificate re-read on SIGHUP through the returned [`Certs`]).
fn tenant_listener(
    server: &Server,
    gateway: Gateway,
    s: &ServerSettings,
) -> Result<(TenantService, Option<Arc<Certs>>), String> {
    let mut proxy = pingora::proxy::http_proxy(&server.configuration, gateway);
    let mut options = pingora::apps::HttpServerOptions::default();
    options.h2_idle_timeout = Some(s.keepalive_timeout);
    proxy.server_options = Some(options);
    let hygiene = Hygiene {
        inner: Arc::new(proxy),
        keepalive: s.keepalive_timeout,
        header: s.header_timeout,
    };
    let mut service = Service::new("dify-gateway".to_string(), hygiene);
    // No 64 KiB read buffer per connection under Pingora's own request buffer: reads go straight
    // into it (one copy less, and 64 KiB less per held stream; docs/benchmarks.md).
    let endpoint = ListenerConfig::tcp(s.listen.to_string())
        .l4_buffer(L4BufferSettings::new(0, DEFAULT_L4_WRITE_BUFFER_SIZE));
    let Some((cert, key)) = &s.tls else {
        service.add_listener(endpoint);
        return Ok((service, None));
    };
    let certs = Arc::new(Certs::load(cert, key)?);
    let mut tls = pingora::listeners::tls::TlsSettings::intermediate(cert, key).map_err(|e| e.to_string())?;
    tls.set_cert_resolver(Arc::new(CertResolver(certs.clone())));
    tls.enable_h2();
    service.add_listener(endpoint.tls(tls));
    Ok((service, Some(certs)))
}

/// The services beside the request flow.
fn add_background(
    server: &mut Server,
    rest: &Rest,
    p: &Parts,
    source: Option<Source>,
    certs: Option<Arc<Certs>>,
) {
    let grace = rest.server.grace_period;
    let stops = ShutdownStops {
        streams: p.active.clone(),
        stopper: p.stopper.clone(),
        grace,
    };
    server.add_service(background_service("shutdown stops", stops));
    let drain = Drain {
        requests: p.requests.clone(),
        stopper: p.stopper.clone(),
        otel: p.otel.clone(),
    };
    server.add_service(background_service("drain", drain));
    if let Some(source) = source {
        let reloader = Reloader {
            source,
            certs,
            tenancy: p.tenancy.clone(),
            metrics: p.metrics.clone(),
        };
        server.add_service(background_service("config reload", reloader));
    }
    if let Some(handle) = &p.store {
        let sync = StoreSync {
            handle: handle.clone(),
            tenancy: p.tenancy.clone(),
            metrics: p.metrics.clone(),
        };
        server.add_service(background_service("store sync", sync));
    }
    let upkeep = LimitUpkeep {
        limiter: p.limiter.clone(),
        snapshot: p.tenancy.shared().clone(),
    };
    server.add_service(background_service("limits", upkeep));
    let jwks = JwksRefresh {
        jwks: p.auth.jwks.clone(),
        snapshot: p.tenancy.shared().clone(),
    };
    server.add_service(background_service("key sets", jwks));
    if let Some(otel) = &p.otel {
        let flush = TraceFlush {
            otel: otel.clone(),
            grace,
        };
        server.add_service(background_service("trace flush", flush));
    }
    if let Some(redis) = &p.redis {
        let sync = RedisSync {
            redis: redis.clone(),
            cache: p.cache.clone(),
            metrics: p.metrics.clone(),
        };
        server.add_service(background_service("redis sync", sync));
    }
    server.add_service(background_service("upstream pool", Resolver(p.upstream.clone())));
}
