//! CORS on the answers the gateway makes itself (preflights in `request_filter`, cached metadata
//! answers): the one header set, mirroring what Dify's flask-cors setup on `/v1` sends.

use http::HeaderValue;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// The response headers Dify lets a page read.
pub const EXPOSE_HEADERS: &str = "X-Version, X-Env, X-Trace-Id";

/// The request headers a preflight allows.
pub const ALLOW_HEADERS: &str =
    "Content-Type, X-App-Code, X-App-Passport, Authorization, X-Dify-App, X-Request-Id";

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
    let origin = session.req_header().headers.get("origin").cloned();
    if origin.is_some() {
        add(&mut resp, origin.as_ref())?;
        resp.insert_header("access-control-allow-headers", ALLOW_HEADERS)?;
        resp.insert_header("access-control-allow-methods", allow)?;
    }
    session.write_response_header(Box::new(resp), true).await
}
