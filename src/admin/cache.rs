//! `POST /admin/cache/invalidate` (admin token required): drops cached metadata of a tenant, an app,
//! or everything, here, in Redis and on every other replica.

use super::{AdminApp, body, error, json};
use crate::admit::snapshot::Snapshot;
use crate::cache::key::app_hash;
use crate::cache::{Scope, encode_app};
use http::Response;
use pingora::protocols::http::ServerSession;

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
    /// Handles an authorized invalidation request.
    pub(super) async fn invalidate(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let body = match body::read(session, body::MAX_BODY).await {
            Ok(b) => b,
            Err(refusal) => return *refusal,
        };
        let req: InvalidateRequest = if body.iter().all(u8::is_ascii_whitespace) {
            InvalidateRequest::default()
        } else {
            match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => {
                    let msg = format!("Body must be {{\"tenant\", \"app\"}}: {e}");
                    return error(400, "invalid_param", &msg);
                }
            }
        };
        let Some(cache) = &self.cache else {
            return error(404, "not_found", "The cache is off");
        };
        let scope = match scope_for(&req, &self.tenancy.load()) {
            Ok(scope) => scope,
            Err(msg) => return error(404, "not_found", &msg),
        };
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
}
