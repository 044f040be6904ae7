//! Fills the cache from Dify (request step 3 for cached endpoints): one GET with the app key, the
//! body read under a cap. Runs in its own task so that a client leaving does not waste the answer.

use crate::error::{UpstreamFailure, upstream_failure};
use crate::upstream::{self, Forwarding, Upstream};
use bytes::BytesMut;
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use std::sync::Arc;
use std::time::Duration;

/// Dify's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// Body.
    pub body: bytes::Bytes,
    /// The body was longer than the cap (and is cut): never cache it.
    pub truncated: bool,
    /// Dify's `WWW-Authenticate`, passed on with a 401.
    pub www_authenticate: Option<String>,
}

/// Why no answer came: the failure's kind (as for proxied requests) and a detail for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchError {
    /// Kind, for the answer and the metric.
    pub kind: UpstreamFailure,
    /// What happened.
    pub detail: String,
}

impl FetchError {
    fn new(kind: UpstreamFailure, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }
}

/// Fetches from Dify.
pub struct Fetcher {
    upstream: Arc<Upstream>,
    connector: Connector,
    timeout: Duration,
    max_body: usize,
}

impl Fetcher {
    /// A fetcher towards `upstream`.
    pub fn new(upstream: Arc<Upstream>, timeout: Duration, max_body: usize) -> Self {
        Self {
            upstream,
            connector: Connector::new(None),
            timeout,
            max_body,
        }
    }

    /// `GET path` with `api_key`.
    pub async fn get(&self, path: &str, api_key: &str, request_id: &str) -> Result<Fetched, FetchError> {
        match tokio::time::timeout(self.timeout, self.send(path, api_key, request_id)).await {
            Ok(r) => r,
            Err(_) => Err(FetchError::new(UpstreamFailure::Timeout, "fill timed out")),
        }
    }

    async fn send(&self, path: &str, api_key: &str, request_id: &str) -> Result<Fetched, FetchError> {
        let fail = |e: Box<pingora::Error>| FetchError::new(upstream_failure(e.etype()), e.to_string());
        let peer = self
            .upstream
            .peer()
            .ok_or(FetchError::new(UpstreamFailure::Resolve, "upstream not resolved"))?;
        let mut req = RequestHeader::build("GET", path.as_bytes(), None).map_err(fail)?;
        let fwd = Forwarding {
            api_key,
            client_ip: None,
            request_id,
        };
        upstream::rewrite_request(&mut req, self.upstream.settings(), &fwd).map_err(fail)?;
        let (mut session, _) = self.connector.get_http_session(&peer).await.map_err(fail)?;
        session.write_request_header(Box::new(req)).await.map_err(fail)?;
        session.finish_request_body().await.map_err(fail)?;
        session.read_response_header().await.map_err(fail)?;
        let (status, content_type, www_authenticate) = match session.response_header() {
            Some(h) => {
                let header = |n: &str| h.headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
                (
                    h.status.as_u16(),
                    header("content-type").unwrap_or_default(),
                    header("www-authenticate"),
                )
            }
            None => return Err(FetchError::new(UpstreamFailure::Broken, "no response header")),
        };
        let mut body = BytesMut::new();
        let mut truncated = false;
        while let Some(chunk) = session.read_response_body().await.map_err(fail)? {
            if body.len() + chunk.len() > self.max_body {
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        if !truncated {
            self.connector.release_http_session(session, &peer, None).await;
        }
        Ok(Fetched {
            status,
            content_type,
            body: body.freeze(),
            truncated,
            www_authenticate,
        })
    }
}
