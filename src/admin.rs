//! The admin listener (beside the request flow): `/healthz` (process alive), `/readyz` (config loaded
//! and Dify reachable) and `/metrics` (the gateway's Prometheus registry).

use crate::error::envelope;
use crate::upstream::Upstream;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use prometheus::{Encoder, Registry, TextEncoder};
use std::sync::Arc;
use std::time::Duration;

/// How long `/readyz` waits for a TCP connection to Dify.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Serves the admin endpoints.
pub struct AdminApp {
    /// The registry `/metrics` exposes.
    pub registry: Registry,
    /// Probed by `/readyz`.
    pub upstream: Arc<Upstream>,
}

fn json(status: u16, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(body)
        .unwrap_or_default()
}

impl AdminApp {
    async fn ready(&self) -> Response<Vec<u8>> {
        let reachable = match self.upstream.addr() {
            Some(addr) => matches!(
                tokio::time::timeout(READY_PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await,
                Ok(Ok(_))
            ),
            None => false,
        };
        if reachable {
            json(
                200,
                br#"{"status": "ready", "config": "loaded", "upstream": "reachable"}"#.to_vec(),
            )
        } else {
            json(
                503,
                br#"{"status": "not_ready", "config": "loaded", "upstream": "unreachable"}"#.to_vec(),
            )
        }
    }

    fn metrics(&self) -> Response<Vec<u8>> {
        let encoder = TextEncoder::new();
        let mut buf = Vec::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buf) {
            let body = envelope("internal_server_error", &e.to_string(), 500).to_vec();
            return json(500, body);
        }
        Response::builder()
            .status(200)
            .header("content-type", encoder.format_type())
            .header("content-length", buf.len())
            .body(buf)
            .unwrap_or_default()
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let is_get = req.method == http::Method::GET || req.method == http::Method::HEAD;
        match (is_get, req.uri.path()) {
            (true, "/healthz") => json(200, br#"{"status": "ok"}"#.to_vec()),
            (true, "/readyz") => self.ready().await,
            (true, "/metrics") => self.metrics(),
            (false, "/healthz" | "/readyz" | "/metrics") => {
                json(405, envelope("method_not_allowed", "Use GET", 405).to_vec())
            }
            _ => json(404, envelope("not_found", "No such admin endpoint", 404).to_vec()),
        }
    }
}
