//! Admission (request step 1, `request_filter`): route ([`route_of`]), tenant credentials
//! ([`auth`], the only step that may wait: for an identity provider's keys), then tenant and app and
//! the declared body size ([`admit`], pure). Nothing refused here ever reaches Dify. The Pingora
//! side (reading the head, answering refusals) is in [`pingora`].

pub mod auth;
pub mod limits;
pub mod pingora;
pub mod route;
pub mod snapshot;
pub mod tenant;

use crate::respond::{ErrorKind, GatewayError, default_message};
use crate::secret::Secret;
use auth::{AuthError, Identity};
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

/// Routes a request: the endpoint, or what to answer instead (404, 405, a preflight). Runs first,
/// so that unknown paths are 404 whoever asks.
pub fn route_of(head: &Head<'_>) -> Result<Route, Admission> {
    match route::classify(head.method, head.path) {
        Ok(r) => Ok(r),
        Err(RouteError::MethodNotAllowed { allow }) if head.method == "OPTIONS" => {
            Err(Admission::Preflight(allow))
        }
        Err(RouteError::MethodNotAllowed { allow }) => {
            let mut r = Refusal::of(ErrorKind::MethodNotAllowed);
            r.allow = Some(allow);
            Err(r.into_admission())
        }
        Err(RouteError::NotFound) => Err(Refusal::of(ErrorKind::NotFound).into_admission()),
    }
}

/// Decides on a routed request once its credentials were checked (`id`, from
/// [`auth::Authenticator::authenticate`]): tenant and app, app-wide endpoints, then the declared
/// body size against `max_body`.
pub fn admit(
    route: Route,
    id: Result<Arc<Identity>, AuthError>,
    head: &Head<'_>,
    snap: &Snapshot,
    max_body: u64,
) -> Admission {
    let id = match id {
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
    use crate::admit::auth::{Authenticator, Binding, KeyRing, VerifyKey};
    use crate::clock::unix_now;
    use crate::secret::Secret;
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, encode};
    use std::collections::HashMap;

    const SECRET: &[u8] = b"admission-unit-test-secret-000000";

    fn snap() -> Snapshot {
        let key = VerifyKey {
            id: "k".into(),
            algorithm: Algorithm::HS256,
            binding: Binding::Any,
            origin: Arc::from("config:k"),
            key: DecodingKey::from_secret(SECRET),
        };
        let app = Arc::new(App::new("writer", Secret::new("app-x")));
        let tenant = |id: &str, disabled| {
            let mut t = Tenant::new(id, vec![app.clone()]);
            t.disabled = disabled;
            Arc::new(t)
        };
        let mut s = Snapshot::empty();
        s.tenants = HashMap::from([
            ("acme".into(), tenant("acme", false)),
            ("off".into(), tenant("off", true)),
        ]);
        s.keys = KeyRing::new(vec![Arc::new(key)]);
        s
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

    #[tokio::test]
    async fn checks_route_then_token_then_tenant_then_size() {
        let s = snap();
        let auth = Authenticator::new(10);
        let (good, evil, off) = (bearer("acme"), bearer("evil"), bearer("off"));
        let cases: Vec<(Head<'_>, u16)> = vec![
            (head("GET", "/v1/chat-messages", None, None), 404),
            (head("GET", "/v1/completion-messages", None, None), 405),
            (head("OPTIONS", "/v1/completion-messages", None, None), 1),
            (head("POST", "/v1/files/upload", None, Some(1 << 30)), 401),
            (head("POST", "/v1/files/upload", Some(&evil), Some(1 << 30)), 403),
            (head("POST", "/v1/files/upload", Some(&off), Some(10)), 403),
            (head("POST", "/v1/files/upload", Some(&good), Some(1 << 30)), 413),
            (head("POST", "/v1/files/upload", Some(&good), Some(10)), 0),
        ];
        for (h, want) in cases {
            let got = match route_of(&h) {
                Err(answer) => answer,
                Ok(route) => {
                    let id = auth.authenticate(h.authorization, &s, unix_now()).await;
                    admit(route, id, &h, &s, 1 << 20)
                }
            };
            assert_eq!(status(&got), want, "{} {}", h.method, h.path);
        }
    }
}
