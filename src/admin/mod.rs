//! The admin listener (beside the request flow): `/healthz`, `/readyz` and `/metrics` ([`health`]),
//! and with the admin token the admin API: tenants and apps ([`tenants`]), their credentials and the
//! audit log ([`keys`]), cache invalidation ([`cache`]); [`routes`] maps paths, [`requests`] reads
//! bodies, [`write`] makes changes, [`views`] shows results. Errors use Dify's envelope.

pub mod body;
pub mod cache;
pub mod health;
pub mod keys;
pub mod requests;
pub mod routes;
pub mod tenants;
pub mod views;
pub mod write;

use crate::admit::auth::bearer_token;
use crate::admit::auth::jwks::Jwks;
use crate::cache::MetadataCache;
use crate::limits::Limiter;
use crate::respond::envelope;
use crate::secret::Secret;
use crate::store::StoreHandle;
use crate::telemetry::Metrics;
use crate::tenancy::Tenancy;
use crate::upstream::Upstream;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use prometheus::Registry;
use routes::{AdminRoute, Unrouted};
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
    /// Tenants, apps and keys (the snapshot, and what the store held at its last read).
    pub tenancy: Arc<Tenancy>,
    /// The store changes go to (`None`: tenants come from the file only).
    pub store: Option<Arc<StoreHandle>>,
    /// Identity providers' key sets (a tenant's new key set is fetched once before it is kept).
    pub jwks: Arc<Jwks>,
    /// `admin_changes_total`.
    pub metrics: Metrics,
    /// The tenants' limits (what they use).
    pub limiter: Arc<Limiter>,
    /// Bearer token of `/admin/*`; `None` turns the admin API off.
    pub token: Option<Secret>,
    /// Bearer token `/metrics` requires, when set (for an admin listener others can reach).
    pub metrics_token: Option<Secret>,
    /// Set on SIGTERM: `/readyz` then says draining.
    pub draining: Arc<crate::listen::shutdown::Draining>,
    /// The tenant listener: `/readyz` waits until it accepts connections (it may start after the
    /// admin listener).
    pub tenant_listener: health::Listening,
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
            (_, "/healthz" | "/readyz" | "/metrics") => error(
                405,
                "method_not_allowed",
                "The method is not allowed for the requested URL",
            ),
            (_, path) => match routes::route(method.as_str(), path) {
                Ok(route) => match self.refusal(session) {
                    None => self.api(session, route).await.unwrap_or_else(|answer| *answer),
                    Some(answer) => answer,
                },
                Err(Unrouted::MethodNotAllowed(allow)) => {
                    let mut r = error(
                        405,
                        "method_not_allowed",
                        "The method is not allowed for the requested URL",
                    );
                    if let Ok(v) = http::HeaderValue::from_str(allow) {
                        r.headers_mut().insert(http::header::ALLOW, v);
                    }
                    r
                }
                Err(Unrouted::NotFound) => error(404, "not_found", "No such admin endpoint"),
            },
        }
    }
}

impl AdminApp {
    /// Runs an authorized admin API call.
    async fn api(
        &self,
        session: &mut ServerSession,
        route: AdminRoute,
    ) -> Result<Response<Vec<u8>>, write::Answer> {
        use AdminRoute as R;
        if route == R::InvalidateCache {
            return Ok(self.invalidate(session).await);
        }
        let body = match route {
            R::CreateTenant
            | R::PatchTenant(_)
            | R::PutApp(..)
            | R::CreateApiKey(_)
            | R::CreateJwtKey(_)
            | R::Revoke(_) => body::read(session, body::MAX_BODY).await?,
            _ => Vec::new(),
        };
        let session = &*session;
        match route {
            R::ListTenants => Ok(self.list_tenants()),
            R::CreateTenant => self.create_tenant(session, &body).await,
            R::GetTenant(t) => self.get_tenant(&t),
            R::PatchTenant(t) => self.patch_tenant(session, &t, &body).await,
            R::DeleteTenant(t) => self.delete_tenant(session, &t).await,
            R::PutApp(t, a) => self.put_app(session, &t, &a, &body).await,
            R::DeleteApp(t, a) => self.delete_app(session, &t, &a).await,
            R::ListApiKeys(t) => self.list_api_keys(&t),
            R::CreateApiKey(t) => self.create_api_key(session, &t, &body).await,
            R::DeleteApiKey(t, id) => self.delete_api_key(session, &t, &id).await,
            R::ListJwtKeys(t) => self.list_jwt_keys(&t),
            R::CreateJwtKey(t) => self.create_jwt_key(session, &t, &body).await,
            R::DeleteJwtKey(t, id) => self.delete_jwt_key(session, &t, &id).await,
            R::ListRevocations(t) => self.list_revocations(&t),
            R::Revoke(t) => self.revoke(session, &t, &body).await,
            R::Usage(t) => self.usage(&t).await,
            R::Audit => self.audit(session.req_header().uri.query()).await,
            R::InvalidateCache => Ok(error(404, "not_found", "No such admin endpoint")),
        }
    }
}
