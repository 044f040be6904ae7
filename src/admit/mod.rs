//! Admission (request step 1, `request_filter`): route, tenant credentials, tenant and app, declared
//! body size, decided by one pure function, [`admit`]. Nothing refused here ever reaches Dify. The
//! Pingora side (reading the head, answering refusals) is in [`pingora`].

pub mod auth;
pub mod pingora;
pub mod route;
pub mod snapshot;
pub mod tenant;

use crate::respond::{ErrorKind, GatewayError, default_message};
use crate::secret::Secret;
use auth::AuthError;
use route::{Route, RouteError};
use snapshot::{App, Snapshot, Tenant};
use std::sync::Arc;

/// Every bounded reason label a refusal after routing counts under (`auth_failures_total`).
pub fn refusal_reasons() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = AuthError::ALL.iter().map(|e| e.reason()).collect();
    out.extend(tenant::TenantError::ALL.iter().map(|e| e.reason()));
    out.push(SHARED_APP);
    out
}

/// Reason label of an app-wide endpoint refused on a shared app.
const SHARED_APP: &str = "shared_app";

/// Who a request is admitted for, and what Dify will see of it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The caller's tenant.
    pub tenant: Arc<Tenant>,
    /// The app whose key Dify sees.
    pub app: Arc<App>,
    /// A different app key for Dify (a stop goes with the key its task was started with).
    pub key_override: Option<Secret>,
    /// `user` as Dify sees it, once the body has been read.
    pub dify_user: Option<String>,
}

impl Caller {
    /// A caller of `tenant` through `app`.
    pub fn new(tenant: Arc<Tenant>, app: Arc<App>) -> Self {
        Self {
            tenant,
            app,
            key_override: None,
            dify_user: None,
        }
    }

    /// The app key Dify sees.
    pub fn api_key(&self) -> &Secret {
        self.key_override.as_ref().unwrap_or(&self.app.api_key)
    }
}

/// The request head as admission sees it.
pub struct Head<'a> {
    /// Method.
    pub method: &'a str,
    /// Raw path, without the query.
    pub path: &'a str,
    /// `Authorization` header value.
    pub authorization: Option<&'a [u8]>,
    /// `X-Dify-App` header value.
    pub app_header: Option<&'a str>,
    /// Declared `Content-Length`, when present and numeric.
    pub content_length: Option<u64>,
}

/// What to do with a request.
#[derive(Debug)]
pub enum Admission {
    /// Forward it to Dify.
    Proceed {
        /// Endpoint.
        route: Route,
        /// Who calls, through which app.
        caller: Caller,
    },
    /// Answer a CORS preflight; the value is the `Allow` list.
    Preflight(String),
    /// Refuse it.
    Refuse(Box<Refusal>),
}

/// A refused request: the answer, and what was learned before the refusal (for metrics and logs).
#[derive(Debug)]
pub struct Refusal {
    /// The endpoint, when the path is a served one.
    pub route: Option<Route>,
    /// The caller, when resolved before the refusal.
    pub caller: Option<Caller>,
    /// The answer.
    pub error: GatewayError,
    /// The `Allow` header for 405s.
    pub allow: Option<String>,
    /// Set when authentication failed (401 carries `WWW-Authenticate`).
    pub auth: Option<AuthError>,
    /// Bounded reason label for refusals after routing.
    pub reason: Option<&'static str>,
}

impl Refusal {
    fn new(kind: ErrorKind, message: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        Self {
            route: None,
            caller: None,
            error: GatewayError::new(kind, message),
            allow: None,
            auth: None,
            reason: None,
        }
    }

    fn of(kind: ErrorKind) -> Self {
        Self::new(kind, default_message(kind))
    }

    fn on(mut self, route: &Route, reason: &'static str) -> Self {
        self.route = Some(route.clone());
        self.reason = Some(reason);
        self
    }

    fn into_admission(self) -> Admission {
        Admission::Refuse(Box::new(self))
    }
}

/// Decides on a request at time `now` (Unix seconds) with body cap `max_body`. Order: route (so that
/// unknown paths are 404 whoever asks), credentials, tenant and app, then the declared body size.
pub fn admit(head: &Head<'_>, snap: &Snapshot, max_body: u64, now: u64) -> Admission {
    let route = match route::classify(head.method, head.path) {
        Ok(r) => r,
        Err(RouteError::MethodNotAllowed { allow }) if head.method == "OPTIONS" => {
            return Admission::Preflight(allow);
        }
        Err(RouteError::MethodNotAllowed { allow }) => {
            let mut r = Refusal::of(ErrorKind::MethodNotAllowed);
            r.allow = Some(allow);
            return r.into_admission();
        }
        Err(RouteError::NotFound) => return Refusal::of(ErrorKind::NotFound).into_admission(),
    };
    let id = match auth::authenticate(head.authorization, &snap.verifier, now) {
        Ok(id) => id,
        Err(e) => {
            let mut r = Refusal::new(ErrorKind::Unauthorized, e.to_string()).on(&route, e.reason());
            r.auth = Some(e);
            return r.into_admission();
        }
    };
    let caller = match tenant::resolve(&id, head.app_header, snap) {
        Ok((tenant, app)) => Caller::new(tenant, app),
        Err(e) => {
            let r = Refusal::new(ErrorKind::Forbidden, e.to_string());
            return r.on(&route, e.reason()).into_admission();
        }
    };
    if route.endpoint.app_wide() && !caller.app.app_wide {
        let msg = "This Dify app is shared with other tenants: its app-wide endpoints are off";
        let mut r = Refusal::new(ErrorKind::Forbidden, msg).on(&route, SHARED_APP);
        r.caller = Some(caller);
        return r.into_admission();
    }
    if head.content_length.is_some_and(|n| n > max_body) {
        let msg = format!("Request body is larger than {max_body} bytes");
        let mut r = Refusal::new(ErrorKind::RequestTooLarge, msg);
        (r.route, r.caller) = (Some(route), Some(caller));
        return r.into_admission();
    }
    Admission::Proceed { route, caller }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::admit::auth::{JwtPolicy, JwtVerifier, VerifyKey};
    use crate::clock::unix_now;
    use crate::secret::Secret;
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, encode};
    use std::collections::HashMap;
    use std::time::Duration;

    const SECRET: &[u8] = b"admission-unit-test-secret-000000";

    fn snap() -> Snapshot {
        let policy = JwtPolicy {
            tenant_claim: "tenant".into(),
            app_claim: "app".into(),
            issuer: None,
            audience: None,
            leeway: Duration::ZERO,
        };
        let key = VerifyKey::new(
            "k".into(),
            Algorithm::HS256,
            DecodingKey::from_secret(SECRET),
            &policy,
        );
        let app = Arc::new(App {
            name: "writer".into(),
            api_key: Secret::new("app-x"),
            scope_users: true,
            app_wide: true,
        });
        let t = Arc::new(Tenant {
            id: "acme".into(),
            apps: vec![app],
        });
        Snapshot::new(
            HashMap::from([("acme".into(), t)]),
            JwtVerifier::new(vec![key], policy, 10),
        )
    }

    fn bearer(tenant: &str) -> Vec<u8> {
        let claims = serde_json::json!({"tenant": tenant, "exp": unix_now() + 60});
        let t = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        format!("Bearer {t}").into_bytes()
    }

    fn head<'a>(method: &'a str, path: &'a str, auth: Option<&'a [u8]>, len: Option<u64>) -> Head<'a> {
        Head {
            method,
            path,
            authorization: auth,
            app_header: None,
            content_length: len,
        }
    }

    fn status(a: &Admission) -> u16 {
        match a {
            Admission::Proceed { .. } => 0,
            Admission::Preflight(_) => 1,
            Admission::Refuse(r) => r.error.kind.status(),
        }
    }

    #[test]
    fn checks_route_then_token_then_tenant_then_size() {
        let s = snap();
        let good = bearer("acme");
        let evil = bearer("evil");
        let cases: Vec<(Head<'_>, u16)> = vec![
            (head("GET", "/v1/chat-messages", None, None), 404),
            (head("GET", "/v1/completion-messages", None, None), 405),
            (head("OPTIONS", "/v1/completion-messages", None, None), 1),
            (head("POST", "/v1/files/upload", None, Some(1 << 30)), 401),
            (head("POST", "/v1/files/upload", Some(&evil), Some(1 << 30)), 403),
            (head("POST", "/v1/files/upload", Some(&good), Some(1 << 30)), 413),
            (head("POST", "/v1/files/upload", Some(&good), Some(10)), 0),
        ];
        for (h, want) in cases {
            assert_eq!(
                status(&admit(&h, &s, 1 << 20, unix_now())),
                want,
                "{} {}",
                h.method,
                h.path
            );
        }
    }
}
