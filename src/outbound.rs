//! The one HTTP/1 client for the calls the gateway makes on its own (beside the proxied request):
//! stops of abandoned generations and metadata cache fills to Dify (through `upstream::client`),
//! identity providers' key sets (`admit::auth::jwks`). Over Pingora's connection pool; the whole
//! exchange is bounded in time and the body is read under a cap.

use crate::respond::{UpstreamFailure, classify::upstream_failure};
use bytes::{Bytes, BytesMut};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use std::time::Duration;

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Status.
    pub status: u16,
    /// The response headers.
    pub headers: http::HeaderMap,
    /// Body (at most the call's cap).
    pub body: Bytes,
    /// The body was longer than the cap and is cut.
    pub truncated: bool,
}

impl Reply {
    /// A response header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Why no answer came: the failure's kind (as for proxied requests) and a detail for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// Kind, for the answer and the metric.
    pub kind: UpstreamFailure,
    /// What happened.
    pub detail: String,
}

impl CallError {
    /// An error of `kind`.
    pub fn new(kind: UpstreamFailure, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
        }
    }
}

/// A Pingora error as a call error of the same kind as for proxied requests.
fn fail(e: Box<pingora::Error>) -> CallError {
    CallError::new(upstream_failure(e.etype()), e.to_string())
}

/// The peer and request head of `method` on an absolute `http://` or `https://` `url` (https is
/// verified against the system's roots); the name is resolved now, the first address taken.
pub async fn to_url(
    method: &str,
    url: &str,
    connect_timeout: Duration,
) -> Result<(HttpPeer, RequestHeader), String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
    let tls = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("the URL must be http:// or https://".into()),
    };
    let host = uri
        .host()
        .ok_or("the URL has no host")?
        .trim_matches(['[', ']'])
        .to_string();
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| format!("{host} did not resolve: {e}"))?
        .next()
        .ok_or_else(|| format!("{host} did not resolve"))?;
    let mut peer = HttpPeer::new(addr, tls, host.clone());
    peer.options.connection_timeout = Some(connect_timeout);
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut head = RequestHeader::build(method, pq.as_bytes(), None).map_err(|e| e.to_string())?;
    // Host and port only: credentials in the URL never go into a header.
    let authority = match uri.port_u16() {
        Some(p) if host.contains(':') => format!("[{host}]:{p}"),
        Some(p) => format!("{host}:{p}"),
        None if host.contains(':') => format!("[{host}]"),
        None => host,
    };
    head.insert_header("host", authority).map_err(|e| e.to_string())?;
    Ok((peer, head))
}

/// Sends requests over a pool of its own.
pub struct Outbound {
    connector: Connector,
}

impl Default for Outbound {
    fn default() -> Self {
        Self {
            connector: Connector::new(None),
        }
    }
}

impl Outbound {
    /// Sends `head` (and `body`) to `peer`, within `timeout`, reading at most `max_body` bytes.
    pub async fn send(
        &self,
        peer: &HttpPeer,
        head: RequestHeader,
        body: Option<Bytes>,
        timeout: Duration,
        max_body: usize,
    ) -> Result<Reply, CallError> {
        match tokio::time::timeout(timeout, self.exchange(peer, head, body, max_body)).await {
            Ok(r) => r,
            Err(_) => Err(CallError::new(UpstreamFailure::Timeout, "no answer in time")),
        }
    }

    async fn exchange(
        &self,
        peer: &HttpPeer,
        head: RequestHeader,
        body: Option<Bytes>,
        max_body: usize,
    ) -> Result<Reply, CallError> {
        let (mut session, _) = self.connector.get_http_session(peer).await.map_err(fail)?;
        session.write_request_header(Box::new(head)).await.map_err(fail)?;
        if let Some(body) = body {
            session.write_request_body(body, true).await.map_err(fail)?;
        }
        session.finish_request_body().await.map_err(fail)?;
        session.read_response_header().await.map_err(fail)?;
        let Some(head) = session.response_header() else {
            return Err(CallError::new(UpstreamFailure::Broken, "no response header"));
        };
        let mut reply = Reply {
            status: head.status.as_u16(),
            headers: head.headers.clone(),
            body: Bytes::new(),
            truncated: false,
        };
        let mut body = BytesMut::new();
        while let Some(chunk) = session.read_response_body().await.map_err(fail)? {
            if body.len() + chunk.len() > max_body {
                reply.truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        if !reply.truncated {
            self.connector.release_http_session(session, peer, None).await;
        }
        reply.body = body.freeze();
        Ok(reply)
    }
}
