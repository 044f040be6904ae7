//! Cached endpoints (request step 2, `request_filter`): info, parameters, site and meta are answered
//! from the metadata cache, with `Cache-Status`, `Age`, `ETag` and 304 for a matching
//! `If-None-Match`; the request then never reaches the proxy phases.

use super::Gateway;
use super::ctx::RequestCtx;
use super::respond::{self, LocalAnswer};
use crate::cache::Answer;
use crate::cache::entry::{Served, etag_matches};
use crate::cache::key::Cached;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

impl Gateway {
    /// Answers a cached endpoint; `Ok(false)` when the request should be proxied instead.
    pub(super) async fn answer_from_cache(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        let (Some(cache), Some(route)) = (&self.cache, &ctx.route) else {
            return Ok(false);
        };
        let Some(endpoint) = Cached::of(route.endpoint) else {
            return Ok(false);
        };
        let Some(key) = ctx.api_key().map(|k| k.expose().to_string()) else {
            return Ok(false);
        };
        match cache.answer(&key, endpoint, &ctx.request_id).await {
            Answer::Bypass => Ok(false),
            Answer::Failed(e) => {
                tracing::debug!(message = "Cache fill from Dify failed.", detail = %e.detail);
                ctx.upstream_failure = Some(e.kind);
                self.metrics.upstream_error(e.kind.label());
                respond::send(session, &LocalAnswer::from(&e.kind.answer()), &ctx.request_id).await?;
                Ok(true)
            }
            Answer::Serve {
                status,
                content_type,
                body,
                cached,
                served,
                www_authenticate,
            } => {
                ctx.cache_status = Some(served.outcome());
                let head = Head {
                    status,
                    content_type: &content_type,
                    cached,
                    served: &served,
                    www_authenticate,
                };
                write(session, &head, body, &ctx.request_id).await?;
                Ok(true)
            }
        }
    }
}

/// The head of a cached-endpoint answer.
struct Head<'a> {
    status: u16,
    content_type: &'a str,
    cached: Option<(String, u64)>,
    served: &'a Served,
    www_authenticate: Option<String>,
}

/// Writes the answer. Dify's CORS setup allows every origin; the gateway answers the same way, since
/// these answers no longer come from Dify's response.
async fn write(session: &mut Session, h: &Head<'_>, body: Bytes, request_id: &str) -> pingora::Result<()> {
    let req = session.req_header();
    let if_none_match = req.headers.get("if-none-match").and_then(|v| v.to_str().ok());
    let not_modified =
        matches!((&h.cached, if_none_match), (Some((etag, _)), Some(inm)) if etag_matches(inm, etag));
    let head_only = req.method == http::Method::HEAD || not_modified;
    let origin = req.headers.get("origin").cloned();
    let mut resp = ResponseHeader::build(if not_modified { 304 } else { h.status }, Some(9))?;
    if !h.content_type.is_empty() {
        resp.insert_header("content-type", h.content_type)?;
    }
    if !not_modified {
        resp.insert_header("content-length", body.len().to_string())?;
    }
    resp.insert_header("cache-status", h.served.header())?;
    resp.insert_header("x-request-id", request_id)?;
    if let Some((etag, age)) = &h.cached {
        resp.insert_header("etag", etag.as_str())?;
        resp.insert_header("age", age.to_string())?;
    }
    if let Some(w) = &h.www_authenticate {
        resp.insert_header("www-authenticate", w.as_str())?;
    }
    if let Some(origin) = origin {
        resp.insert_header("access-control-allow-origin", origin)?;
        resp.insert_header("vary", "Origin")?;
        resp.insert_header("access-control-expose-headers", "X-Version, X-Env, X-Trace-Id")?;
    }
    session.write_response_header(Box::new(resp), head_only).await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}
