//! Assembles and runs the Pingora server (start-up step 3): Pingora's `ServerConf` is built from our
//! settings, then the proxy, admin and resolver services are added. Ports are bound only here, after
//! the configuration has been validated.

use crate::admin::AdminApp;
use crate::cache::MetadataCache;
use crate::cache::redis::RedisTier;
use crate::cache::sync::RedisSync;
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::otel::Otel;
use crate::ownership::Ownership;
use crate::proxy::Gateway;
use crate::reload::Reloader;
use crate::state::SharedSnapshot;
use crate::stopper::{ActiveStreams, ShutdownStops, Stopper, after_grace};
use crate::upstream::Upstream;
use async_trait::async_trait;
use pingora::server::configuration::ServerConf;
use pingora::server::{Server, ShutdownWatch};
use pingora::services::background::{BackgroundService, background_service};
use pingora::services::listening::Service;
use prometheus::Registry;
use std::sync::Arc;
use std::time::Duration;

/// How often a host-name upstream is re-resolved.
const RESOLVE_EVERY: Duration = Duration::from_secs(30);

/// Time after the grace period that stops of still-open streams get before Pingora shuts down.
const STOP_MARGIN: Duration = Duration::from_secs(3);

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

/// Builds the server with all its services, ready to run.
pub fn build(settings: Settings, config_path: Option<std::path::PathBuf>) -> Result<Server, String> {
    let mut server = Server::new_with_opt_and_conf(None, server_conf(&settings));
    server.bootstrap();
    let registry = Registry::new();
    let metrics = Metrics::register(&registry).map_err(|e| format!("metrics: {e}"))?;
    let upstream = Arc::new(Upstream::new(settings.upstream.clone()));
    let otel = match &settings.telemetry.otlp_endpoint {
        Some(e) => Some(Arc::new(
            Otel::start(e, &settings.telemetry.service_name).map_err(|e| format!("otlp: {e}"))?,
        )),
        None => None,
    };
    let stopper = Arc::new(Stopper::new(upstream.clone(), metrics.clone()));
    let active = Arc::new(ActiveStreams::default());
    let shutdown_stops = ShutdownStops {
        streams: active.clone(),
        stopper: stopper.clone(),
        grace: settings.server.grace_period,
    };
    let redis = settings
        .cache
        .redis_url
        .clone()
        .map(|url| Arc::new(RedisTier::new(url, settings.cache.redis_timeout, metrics.clone())));
    let cache = settings
        .cache
        .enabled
        .then(|| MetadataCache::new(&settings.cache, upstream.clone(), redis.clone(), metrics.clone()));
    let metrics_for_sync = metrics.clone();
    let snapshot = Arc::new(SharedSnapshot::new(settings.snapshot));
    let snapshot_for_reload = snapshot.clone();
    let gateway = Gateway {
        snapshot: snapshot.clone(),
        upstream: upstream.clone(),
        metrics,
        max_request_body: settings.server.max_request_body,
        streams: settings.streams.clone(),
        ownership: Arc::new(Ownership::new(redis.clone())),
        active,
        stopper,
        cache: cache.clone(),
        otel: otel.clone(),
    };
    let mut proxy =
        pingora::proxy::http_proxy_service_with_name(&server.configuration, gateway, "dify-gateway");
    proxy.add_tcp(&settings.server.listen.to_string());
    let admin_app = AdminApp {
        registry,
        upstream: upstream.clone(),
        cache: cache.clone(),
        snapshot,
        token: settings.admin_token,
    };
    let mut admin = Service::new("admin".to_string(), admin_app);
    admin.threads = Some(1);
    admin.add_tcp(&settings.server.admin_listen.to_string());
    server.add_service(proxy);
    server.add_service(admin);
    server.add_service(background_service("shutdown stops", shutdown_stops));
    if let Some(path) = config_path {
        let reloader = Reloader {
            path,
            snapshot: snapshot_for_reload,
            metrics: metrics_for_sync.clone(),
        };
        server.add_service(background_service("config reload", reloader));
    }
    if let Some(otel) = otel {
        let flush = OtelFlush {
            otel,
            grace: settings.server.grace_period,
        };
        server.add_service(background_service("trace flush", flush));
    }
    if let Some(redis) = redis {
        let sync = RedisSync {
            redis,
            cache: cache.clone(),
            metrics: metrics_for_sync,
        };
        server.add_service(background_service("redis sync", sync));
    }
    if upstream.needs_refresh() {
        server.add_service(background_service("upstream resolver", Resolver(upstream)));
    }
    Ok(server)
}

/// Re-resolves a host-name upstream so that a moved Dify is followed without a restart.
struct Resolver(Arc<Upstream>);

#[async_trait]
impl BackgroundService for Resolver {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(RESOLVE_EVERY) => {
                    let up = self.0.clone();
                    let _ = tokio::task::spawn_blocking(move || up.refresh()).await;
                }
            }
        }
    }
}

/// Exports the last spans at shutdown, once the grace period has let requests finish.
struct OtelFlush {
    otel: Arc<Otel>,
    grace: Duration,
}

#[async_trait]
impl BackgroundService for OtelFlush {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if !after_grace(&mut shutdown, self.grace).await {
            return;
        }
        let otel = self.otel.clone();
        let _ = tokio::time::timeout(STOP_MARGIN, tokio::task::spawn_blocking(move || otel.flush())).await;
    }
}
