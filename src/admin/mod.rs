//! The admin listener (beside the request flow): `/healthz`, `/readyz` and `/metrics` ([`health`]),
//! and with the admin token, `POST /admin/cache/invalidate` ([`cache`]). Errors use Dify's envelope.

pub mod body;
pub mod cache;
pub mod health;

use crate::admit::auth::bearer_token;
use crate::admit::snapshot::SharedSnapshot;
use crate::cache::MetadataCache;
use crate::respond::envelope;
use crate::secret::Secret;
use crate::upstream::Upstream;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use prometheus::Registry;
use sha2::{Digest, Sha256};
use std::sync::Arc;

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
    /// Bearer token `/metrics` requires, when set (for an admin listener others can reach).
    pub metrics_token: Option<Secret>,
}

/// A JSON answer.
pub fn json(status: u16, body: Vec<u8>) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("content-length", body.len())
        .body(body)
        .unwrap_or_default()
}

/// An error in Dify's envelope.
pub fn error(status: u16, code: &str, message: &str) -> Response<Vec<u8>> {
    json(status, envelope(code, message, status).to_vec())
}

/// Whether the `Authorization` header carries `token`. Compared by hashes, so the time taken says
/// nothing about the token.
pub fn token_ok(header: Option<&[u8]>, token: &Secret) -> bool {
    let given = bearer_token(header).unwrap_or("");
    Sha256::digest(given.as_bytes()) == Sha256::digest(token.expose().as_bytes())
}

impl AdminApp {
    /// The refusal when the admin API is off or the caller lacks the token; `None` when allowed.
    fn refusal(&self, session: &ServerSession) -> Option<Response<Vec<u8>>> {
        let Some(token) = &self.token else {
            let msg = "The admin API is off (no admin.token configured)";
            return Some(error(404, "not_found", msg));
        };
        let header = session.req_header().headers.get("authorization");
        if token_ok(header.map(|v| v.as_bytes()), token) {
            None
        } else {
            Some(error(401, "unauthorized", "A valid admin token is required"))
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
            (true, "/metrics") => match &self.metrics_token {
                Some(t) if !token_ok(req.headers.get("authorization").map(|v| v.as_bytes()), t) => {
                    error(401, "unauthorized", "A valid metrics token is required")
                }
                _ => self.metrics(),
            },
            (false, "/admin/cache/invalidate") if method == http::Method::POST => {
                match self.refusal(session) {
                    None => self.invalidate(session).await,
                    Some(answer) => answer,
                }
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
