//! CORS on the answers the gateway makes itself (refusals and failures, preflights in
//! `request_filter`, cached metadata answers): what Dify's flask-cors setup sends, so that a page
//! reads the gateway's 401 or 429 as it reads Dify's answers: the `Origin` echoed, `Vary: Origin`,
//! the same exposed headers; a preflight echoes the requested headers it allows.

use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// The response headers Dify lets a page read.
pub const EXPOSE_HEADERS: &str = "X-Version, X-Env, X-Trace-Id";

/// The request headers a preflight allows (Dify's for `/v1` and `/files`, and the gateway's own).
pub const ALLOW_HEADERS: [&str; 7] = [
    "content-type",
    "x-app-code",
    "x-app-passport",
    "authorization",
    "x-csrf-token",
    "x-dify-app",
    "x-request-id",
];

/// The requested headers (`Access-Control-Request-Headers`) a preflight allows, as Dify echoes them.
pub fn allowed_headers(requested: &str) -> String {
    requested
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| ALLOW_HEADERS.contains(&h.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Adds the CORS headers for a request from `origin` (nothing without an `Origin`).
pub fn add(resp: &mut ResponseHeader, origin: Option<&HeaderValue>) -> pingora::Result<()> {
    if let Some(origin) = origin {
        resp.insert_header("access-control-allow-origin", origin.clone())?;
        resp.insert_header("vary", "Origin")?;
        resp.insert_header("access-control-expose-headers", EXPOSE_HEADERS)?;
    }
    Ok(())
}

/// Answers a CORS preflight (`OPTIONS`) for a served path without contacting Dify; `allow` lists the
/// path's methods.
pub async fn preflight(session: &mut Session, allow: &str, request_id: &str) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(200, Some(8))?;
    resp.insert_header("allow", allow)?;
    resp.insert_header("content-length", "0")?;
    resp.insert_header("x-request-id", request_id)?;
    let req = session.req_header();
    let origin = req.headers.get("origin").cloned();
    let requested = req
        .headers
        .get("access-control-request-headers")
        .and_then(|v| v.to_str().ok())
        .map(allowed_headers)
        .filter(|h| !h.is_empty());
    if origin.is_some() {
        add(&mut resp, origin.as_ref())?;
        resp.insert_header("access-control-allow-methods", allow)?;
        if let Some(h) = requested {
            resp.insert_header("access-control-allow-headers", h)?;
        }
    }
    session.write_response_header(Box::new(resp), true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preflights_echo_only_the_requested_headers_they_allow() {
        assert_eq!(
            allowed_headers("Authorization, X-Evil, content-type"),
            "authorization, content-type"
        );
        assert_eq!(allowed_headers("x-evil"), "");
    }
}
