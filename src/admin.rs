//! The admin listener (beside the request flow): `/healthz` (process alive), `/readyz` (config loaded
//! and Dify reachable), `/metrics` (the gateway's Prometheus registry) and, with the admin token,
//! `POST /admin/cache/invalidate`.

use crate::cache::key::app_hash;
use crate::cache::{MetadataCache, Scope, encode_app};
use crate::error::envelope;
use crate::secret::Secret;
use crate::state::{SharedSnapshot, Snapshot};
use crate::upstream::Upstream;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use prometheus::{Encoder, Registry, TextEncoder};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// How long `/readyz` waits for a TCP connection to Dify.
const READY_PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Largest admin request body read.
const MAX_ADMIN_BODY: usize = 64 * 1024;

/// Serves the admin endpoints.
pub struct AdminApp {
    /// The registry `/metrics` exposes.
    pub registry: Registry,
    /// Probed by `/readyz`.
    pub upstream: Arc<Upstream>,
    /// Invalidated by `/admin/cache/invalidate`.
    pub cache: Option<Arc<MetadataCache>>,
    /// Tenants and apps, to resolve invalidation scopes.
    pub snapshot: Arc<SharedSnapshot>,
    /// Bearer token of `/admin/*`; `None` turns the admin API off.
    pub token: Option<Secret>,
}

fn json(status: u16, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(body)
        .unwrap_or_default()
}

fn error(status: u16, code: &str, message: &str) -> Response<Vec<u8>> {
    json(status, envelope(code, message, status).to_vec())
}

/// Compares bearer tokens by their hashes, so the time taken says nothing about the token.
fn token_ok(header: Option<&[u8]>, token: &Secret) -> bool {
    let given = header
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .unwrap_or("");
    Sha256::digest(given.as_bytes()) == Sha256::digest(token.expose().as_bytes())
}

/// The invalidation request body.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct InvalidateRequest {
    tenant: Option<String>,
    app: Option<String>,
}

/// Resolves a request to the scope it names; `Err` names what is unknown.
fn scope_for(req: &InvalidateRequest, snap: &Snapshot) -> Result<Scope, String> {
    let tenants: Vec<_> = match &req.tenant {
        None if req.app.is_none() => return Ok(Scope::All),
        None => snap.tenants.values().collect(),
        Some(t) => vec![
            snap.tenants
                .get(t)
                .ok_or_else(|| format!("Tenant {t} is not configured"))?,
        ],
    };
    let mut apps: Vec<String> = tenants
        .iter()
        .flat_map(|t| t.apps.iter())
        .filter(|a| req.app.as_ref().is_none_or(|name| &a.name == name))
        .map(|a| encode_app(&app_hash(a.api_key.expose())))
        .collect();
    apps.sort();
    apps.dedup();
    if apps.is_empty() {
        return Err("No configured app matches".into());
    }
    Ok(Scope::Apps(apps))
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
            return error(500, "internal_server_error", &e.to_string());
        }
        Response::builder()
            .status(200)
            .header("content-type", encoder.format_type())
            .header("content-length", buf.len())
            .body(buf)
            .unwrap_or_default()
    }

    async fn invalidate(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let Some(token) = &self.token else {
            return error(
                404,
                "not_found",
                "The admin API is off (no admin.token configured)",
            );
        };
        if !token_ok(
            session
                .req_header()
                .headers
                .get("authorization")
                .map(|v| v.as_bytes()),
            token,
        ) {
            return error(401, "unauthorized", "A valid admin token is required");
        }
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = session.read_request_body().await {
            if body.len() + chunk.len() > MAX_ADMIN_BODY {
                return error(413, "request_too_large", "Request body is too large");
            }
            body.extend_from_slice(&chunk);
        }
        let req: InvalidateRequest = if body.iter().all(u8::is_ascii_whitespace) {
            InvalidateRequest::default()
        } else {
            match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => {
                    return error(
                        400,
                        "invalid_param",
                        &format!("Body must be {{\"tenant\", \"app\"}}: {e}"),
                    );
                }
            }
        };
        let Some(cache) = &self.cache else {
            return error(404, "not_found", "The cache is off");
        };
        match scope_for(&req, &self.snapshot.load()) {
            Ok(scope) => {
                let count = match &scope {
                    Scope::All => "all".to_string(),
                    Scope::Apps(a) => a.len().to_string(),
                };
                match cache.invalidate(scope).await {
                    Ok(()) => {
                        let body = format!("{{\"result\": \"success\", \"apps\": \"{count}\"}}\n");
                        json(200, body.into_bytes())
                    }
                    Err(msg) => error(503, "service_unavailable", &msg),
                }
            }
            Err(msg) => error(404, "not_found", &msg),
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let method = req.method.clone();
        let is_get = method == http::Method::GET || method == http::Method::HEAD;
        match (is_get, req.uri.path()) {
            (true, "/healthz") => json(200, br#"{"status": "ok"}"#.to_vec()),
            (true, "/readyz") => self.ready().await,
            (true, "/metrics") => self.metrics(),
            (false, "/admin/cache/invalidate") if method == http::Method::POST => {
                self.invalidate(session).await
            }
            (_, "/healthz" | "/readyz" | "/metrics" | "/admin/cache/invalidate") => error(
                405,
                "method_not_allowed",
                "The method is not allowed for the requested URL",
            ),
            _ => error(404, "not_found", "No such admin endpoint"),
        }
    }
}
