//! Answers a request from the gateway itself (refusals in `request_filter`, failures in
//! `fail_to_proxy`): Dify's JSON envelope, the request id, and any extra headers.

use crate::error::GatewayError;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use std::time::Duration;

/// After refusing a request whose body is still arriving, how long the gateway keeps reading (and
/// discarding) it before closing. Closing with unread data makes the kernel send a reset that can
/// destroy the refusal before the client reads it (nginx's "lingering close").
const LINGER: Duration = Duration::from_secs(2);

/// Writes `err` as the whole response, then drains what is left of the request body for at most
/// [`LINGER`]. The connection is not reused.
pub async fn error(
    session: &mut Session,
    err: &GatewayError,
    request_id: &str,
    extra: &[(&'static str, &str)],
) -> pingora::Result<()> {
    let body = err.body();
    let mut resp = ResponseHeader::build(err.kind.status(), Some(4 + extra.len()))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header("content-length", body.len().to_string())?;
    resp.insert_header("x-request-id", request_id)?;
    for (k, v) in extra {
        resp.insert_header(*k, *v)?;
    }
    session.set_keepalive(None);
    let head_only = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(resp), head_only).await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    if !session.is_body_done() {
        let _ = tokio::time::timeout(LINGER, session.drain_request_body()).await;
    }
    Ok(())
}

/// Answers a CORS preflight (`OPTIONS`) for a served path without contacting Dify, mirroring the
/// headers Dify's own flask-cors setup returns.
pub async fn preflight(session: &mut Session, allow: &str, request_id: &str) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(200, Some(8))?;
    resp.insert_header("allow", allow)?;
    resp.insert_header("content-length", "0")?;
    resp.insert_header("x-request-id", request_id)?;
    if let Some(origin) = session.req_header().headers.get("origin").cloned() {
        resp.insert_header("access-control-allow-origin", origin)?;
        resp.insert_header("vary", "Origin")?;
        resp.insert_header(
            "access-control-allow-headers",
            "Content-Type, X-App-Code, X-App-Passport, Authorization, X-Dify-App, X-Request-Id",
        )?;
        resp.insert_header("access-control-allow-methods", allow)?;
    }
    session.write_response_header(Box::new(resp), true).await
}
