//! Liveness, readiness and metrics on the admin listener: `/healthz` answers while the process runs,
//! `/readyz` while Dify accepts connections (and the store's tenants are read) and no SIGTERM came,
//! `/metrics` serves the gateway's registry.

use super::{AdminApp, error, json};
use http::Response;
use prometheus::{Encoder, TextEncoder};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long `/readyz` waits for a TCP connection to Dify.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether the tenant listener accepts connections; once it has, it is not asked again.
#[derive(Debug)]
pub struct Listening {
    addr: SocketAddr,
    seen: AtomicBool,
}

impl Listening {
    /// The tenant listener on `listen` (an unspecified address is reached on loopback).
    pub fn new(listen: SocketAddr) -> Self {
        let ip = match listen.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        Self {
            addr: SocketAddr::new(ip, listen.port()),
            seen: AtomicBool::new(false),
        }
    }

    async fn accepts(&self) -> bool {
        if self.seen.load(Ordering::Acquire) {
            return true;
        }
        let probe = tokio::time::timeout(READY_PROBE_TIMEOUT, tokio::net::TcpStream::connect(self.addr));
        let up = matches!(probe.await, Ok(Ok(_)));
        self.seen.store(up, Ordering::Release);
        up
    }
}

impl AdminApp {
    /// `/readyz`: 200 while a Dify replica is healthy (without health checks: accepts a connection)
    /// and, with a store, its tenants have been read;
    /// else 503. The body says which part is missing; a store that stops answering after it was
    /// read is reported but keeps the gateway ready (it serves the last snapshot).
    pub(super) async fn ready(&self) -> Response<Vec<u8>> {
        let reachable = self.upstream.ready(READY_PROBE_TIMEOUT).await;
        let (store, store_ready) = match &self.store {
            None => ("none", true),
            Some(_) if !self.tenancy.has_store_data() => ("unreachable", false),
            Some(h) if !h.is_up() => ("unreachable, serving the last snapshot", true),
            Some(_) => ("ok", true),
        };
        let draining = self.draining.is_set();
        let listening = self.tenant_listener.accepts().await;
        let ready = reachable && store_ready && listening && !draining;
        let status = match (ready, draining) {
            (_, true) => "draining",
            (true, _) => "ready",
            _ => "not_ready",
        };
        let body = serde_json::json!({
            "status": status,
            "listener": if listening { "accepting" } else { "not_yet" },
            "config": "loaded",
            "upstream": if reachable { "reachable" } else { "unreachable" },
            "store": store,
        });
        json(
            if ready { 200 } else { 503 },
            serde_json::to_vec(&body).unwrap_or_default(),
        )
    }

    /// `/metrics`: the Prometheus text exposition.
    pub(super) fn metrics(&self) -> Response<Vec<u8>> {
        let encoder = TextEncoder::new();
        let mut buf = Vec::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            return error(500, "internal_server_error", &e.to_string());
        }
        Response::builder()
            .status(200)
            .header("content-type", encoder.format_type())
            .header("content-length", buf.len())
            .body(buf)
            .unwrap_or_default()
    }
}
