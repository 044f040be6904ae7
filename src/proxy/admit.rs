//! The admission decision of `request_filter` as one pure function: route, body size, tenant JWT,
//! tenant and app. Nothing refused here ever reaches Dify.

use crate::auth::{self, AuthError};
use crate::error::{ErrorKind, GatewayError, default_message};
use crate::route::{self, Route, RouteError};
use crate::state::{App, Snapshot, Tenant};
use crate::tenant;
use std::sync::Arc;

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
        /// Caller's tenant.
        tenant: Arc<Tenant>,
        /// App whose key Dify will see.
        app: Arc<App>,
    },
    /// Answer a CORS preflight; the value is the `Allow` list.
    Preflight(String),
    /// Refuse it.
    Refuse {
        /// The endpoint, when the path is a served one (for metrics).
        route: Option<Route>,
        /// The caller's tenant and app, when resolved before the refusal (for metrics).
        caller: Option<(Arc<Tenant>, Arc<App>)>,
        /// The answer.
        error: GatewayError,
        /// The `Allow` header for 405s.
        allow: Option<String>,
        /// Set when authentication failed (401 carries `WWW-Authenticate`).
        auth: Option<AuthError>,
        /// Bounded reason label for refusals after routing.
        reason: Option<&'static str>,
    },
}

fn refuse(kind: ErrorKind, message: impl Into<std::borrow::Cow<'static, str>>) -> Admission {
    let error = GatewayError::new(kind, message);
    Admission::Refuse {
        route: None,
        caller: None,
        error,
        allow: None,
        auth: None,
        reason: None,
    }
}

/// Decides on a request at time `now` (Unix seconds) with body cap `max_body`. Order: route (so that
/// unknown paths are 404 whoever asks), token, tenant and app, then the declared body size.
pub fn admit(head: &Head<'_>, snap: &Snapshot, max_body: u64, now: u64) -> Admission {
    let route = match route::classify(head.method, head.path) {
        Ok(r) => r,
        Err(RouteError::MethodNotAllowed { allow }) if head.method == "OPTIONS" => {
            return Admission::Preflight(allow);
        }
        Err(RouteError::MethodNotAllowed { allow }) => {
            let error = GatewayError::new(
                ErrorKind::MethodNotAllowed,
                default_message(ErrorKind::MethodNotAllowed),
            );
            return Admission::Refuse {
                route: None,
                caller: None,
                error,
                allow: Some(allow),
                auth: None,
                reason: None,
            };
        }
        Err(RouteError::NotFound) => {
            return refuse(ErrorKind::NotFound, default_message(ErrorKind::NotFound));
        }
    };
    let id = match auth::authenticate(head.authorization, &snap.verifier, now) {
        Ok(id) => id,
        Err(e) => {
            return Admission::Refuse {
                route: Some(route),
                caller: None,
                error: GatewayError::new(ErrorKind::Unauthorized, e.to_string()),
                allow: None,
                auth: Some(e),
                reason: Some(e.reason()),
            };
        }
    };
    let (tenant, app) = match tenant::resolve(&id, head.app_header, snap) {
        Ok(found) => found,
        Err(e) => {
            return Admission::Refuse {
                route: Some(route),
                caller: None,
                error: GatewayError::new(ErrorKind::Forbidden, e.to_string()),
                allow: None,
                auth: None,
                reason: Some(e.reason()),
            };
        }
    };
    if route.endpoint.app_wide() && !app.app_wide {
        let msg = "This Dify app is shared with other tenants: its app-wide endpoints are off";
        return Admission::Refuse {
            route: Some(route),
            caller: Some((tenant, app)),
            error: GatewayError::new(ErrorKind::Forbidden, msg),
            allow: None,
            auth: None,
            reason: Some("shared_app"),
        };
    }
    if head.content_length.is_some_and(|n| n > max_body) {
        return Admission::Refuse {
            route: Some(route),
            caller: Some((tenant, app)),
            error: GatewayError::new(
                ErrorKind::RequestTooLarge,
                format!("Request body is larger than {max_body} bytes"),
            ),
            allow: None,
            auth: None,
            reason: None,
        };
    }
    Admission::Proceed { route, tenant, app }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::auth::{JwtPolicy, JwtVerifier, VerifyKey, unix_now};
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
            Admission::Refuse { error, .. } => error.kind.status(),
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
