//! The Pingora side of admission (`request_filter`): reads the request head, runs [`super::admit`],
//! and answers preflights and refusals itself. What it learned goes back into the request context.

use super::auth::{AuthError, Authenticator};
use super::route::Route;
use super::snapshot::Snapshot;
use super::{Admission, Caller, Head, Refusal, admit, route_of};
use crate::clock::unix_now;
use crate::respond::{self, Flow, LocalAnswer, cors};
use pingora::proxy::Session;

/// What admission learned and did.
#[derive(Debug)]
pub struct Admitted {
    /// The request id: the client's when sane, else a new one.
    pub request_id: String,
    /// The endpoint, when the path is a served one.
    pub route: Option<Route>,
    /// The caller, when resolved.
    pub caller: Option<Caller>,
    /// Why authentication failed, if it did.
    pub auth_failure: Option<AuthError>,
    /// The bounded reason label of a refusal after routing (for `auth_failures_total`).
    pub reason: Option<&'static str>,
    /// Whether the request goes on or was answered here.
    pub flow: Flow,
}

/// The head of `session` as admission reads it.
fn head(session: &Session) -> Head<'_> {
    let req = session.req_header();
    Head {
        method: req.method.as_str(),
        path: req.uri.path(),
        authorization: req.headers.get(http::header::AUTHORIZATION).map(|v| v.as_bytes()),
        app_header: req.headers.get("x-dify-app").and_then(|v| v.to_str().ok()),
        content_length: req
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse().ok()),
    }
}

/// Admits the request against `snap` or answers it (refusal or preflight).
pub async fn admit_request(
    session: &mut Session,
    snap: &Snapshot,
    auth: &Authenticator,
    max_body: u64,
) -> pingora::Result<Admitted> {
    let client_id = session.req_header().headers.get("x-request-id");
    let mut out = Admitted {
        request_id: request_id(client_id.map(|v| v.as_bytes())),
        route: None,
        caller: None,
        auth_failure: None,
        reason: None,
        flow: Flow::Answered,
    };
    let routed = route_of(&head(session));
    let admission = match routed {
        // Signed file links carry no credentials: Dify's signature decides.
        Ok(route) if route.endpoint.public() => {
            (out.route, out.flow) = (Some(route), Flow::Next);
            return Ok(out);
        }
        Ok(route) => {
            // Owned (a cheap handle), so that no borrow of the session is held while waiting.
            let credentials = session
                .req_header()
                .headers
                .get(http::header::AUTHORIZATION)
                .cloned();
            let id = auth
                .authenticate(credentials.as_ref().map(|v| v.as_bytes()), snap, unix_now())
                .await;
            admit(route, id, &head(session), snap, max_body)
        }
        Err(answer) => answer,
    };
    match admission {
        Admission::Proceed { route, caller } => {
            (out.route, out.caller, out.flow) = (Some(route), Some(caller), Flow::Next);
        }
        Admission::Preflight(allow) => cors::preflight(session, &allow, &out.request_id).await?,
        Admission::Refuse(r) => {
            let Refusal {
                route,
                caller,
                error,
                allow,
                auth,
                reason,
            } = *r;
            (out.route, out.caller, out.auth_failure, out.reason) = (route, caller, auth, reason);
            let mut answer = LocalAnswer::from(&error);
            if let Some(a) = allow {
                answer.headers.push(("allow", a));
            }
            if auth.is_some() {
                let challenge = "Bearer realm=\"dify-gateway\"";
                answer.headers.push(("www-authenticate", challenge.into()));
            }
            respond::send(session, &answer, &out.request_id).await?;
        }
    }
    Ok(out)
}

/// The client's `X-Request-Id` when it is a sane token (1–128 of `[A-Za-z0-9._:-]`), else a new UUID.
pub fn request_id(client: Option<&[u8]>) -> String {
    match client {
        Some(v)
            if !v.is_empty()
                && v.len() <= 128
                && v.iter().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(b)) =>
        {
            String::from_utf8_lossy(v).into_owned()
        }
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        assert_eq!(request_id(Some(b"abc-123")), "abc-123");
        assert_eq!(request_id(Some(b"a b")).len(), 36);
        assert_eq!(request_id(None).len(), 36);
    }
}
