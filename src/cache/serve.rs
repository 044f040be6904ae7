//! The Pingora side of the cache (request step 5, `request_filter`): info, parameters, site and meta
//! are answered from the metadata cache, with `Cache-Status`, `Age`, `ETag` and 304 for a matching
//! `If-None-Match`; the request then never reaches the proxy phases.

use super::entry::{Served, etag_matches};
use super::key::Cached;
use super::{Answer, MetadataCache};
use crate::admit::route::Endpoint;
use crate::respond::{self, Flow, LocalAnswer, UpstreamFailure, cors};
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use std::sync::Arc;

/// How the cache step ended.
#[derive(Debug)]
pub struct CacheOutcome {
    /// Answered here, or to be proxied.
    pub flow: Flow,
    /// How the cache answered (`Cache-Status` outcome), for the access log.
    pub status: Option<&'static str>,
    /// Why a fill from Dify failed, when it did and nothing stale was left.
    pub failure: Option<UpstreamFailure>,
}

impl CacheOutcome {
    fn proxy() -> Self {
        Self {
            flow: Flow::Next,
            status: None,
            failure: None,
        }
    }
}

/// Answers `endpoint` for the app with `api_key` from `cache`, when it is a cached endpoint.
pub async fn answer_from_cache(
    cache: &Arc<MetadataCache>,
    session: &mut Session,
    endpoint: Endpoint,
    api_key: &str,
    request_id: &str,
    ratelimit: Option<&str>,
) -> pingora::Result<CacheOutcome> {
    let Some(endpoint) = Cached::of(endpoint) else {
        return Ok(CacheOutcome::proxy());
    };
    match cache.answer(api_key, endpoint, request_id).await {
        Answer::Bypass => Ok(CacheOutcome::proxy()),
        Answer::Failed(e) => {
            tracing::debug!(message = "Cache fill from Dify failed.", detail = %e.detail);
            cache.metrics.upstream_error(e.kind.label());
            respond::send(session, &LocalAnswer::from(&e.kind.answer()), request_id).await?;
            Ok(CacheOutcome {
                flow: Flow::Answered,
                status: None,
                failure: Some(e.kind),
            })
        }
        Answer::Serve {
            status,
            content_type,
            body,
            cached,
            served,
            www_authenticate,
            kept,
        } => {
            let head = Head {
                status,
                content_type: &content_type,
                cached,
                served: &served,
                www_authenticate,
                ratelimit,
                kept: &kept,
            };
            write(session, &head, body, request_id).await?;
            Ok(CacheOutcome {
                flow: Flow::Answered,
                status: Some(served.outcome()),
                failure: None,
            })
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
    ratelimit: Option<&'a str>,
    kept: &'a [(String, String)],
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
    let mut resp = ResponseHeader::build(if not_modified { 304 } else { h.status }, Some(12))?;
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
    if let Some(r) = h.ratelimit {
        resp.insert_header("ratelimit", r)?;
    }
    for (name, value) in h.kept {
        resp.append_header(name.clone(), value.as_str())?;
    }
    cors::add(&mut resp, origin.as_ref())?;
    session.write_response_header(Box::new(resp), head_only).await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}
