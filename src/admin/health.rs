//! Liveness, readiness and metrics on the admin listener: `/healthz` answers while the process runs,
//! `/readyz` while Dify accepts connections, `/metrics` serves the gateway's registry.

use super::{AdminApp, error, json};
use http::Response;
use prometheus::{Encoder, TextEncoder};
use std::time::Duration;

/// How long `/readyz` waits for a TCP connection to Dify.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

impl AdminApp {
    /// `/readyz`: 200 when Dify accepts a connection, else 503.
    pub(super) async fn ready(&self) -> Response<Vec<u8>> {
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
