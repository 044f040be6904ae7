//! The one HTTP/1 client towards Dify for calls the gateway makes on its own (beside the proxied
//! request: stops of abandoned generations, metadata cache fills). Requests are rewritten exactly as
//! proxied ones are (app key, `Host`, base path, request id); bodies are read under a cap.

use super::{Forwarding, Upstream, rewrite_request};
use crate::respond::{UpstreamFailure, classify::upstream_failure};
use bytes::{Bytes, BytesMut};
use pingora::connectors::http::Connector;
use pingora::http::RequestHeader;
use std::sync::Arc;
use std::time::Duration;

/// One call to Dify.
pub struct Call<'a> {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// API path from `/v1/`, with its query if any.
    pub path: &'a str,
    /// The app key Dify sees.
    pub api_key: &'a str,
    /// A JSON body, for `POST`.
    pub json: Option<Bytes>,
    /// The request id sent to Dify.
    pub request_id: &'a str,
    /// The longest the whole call may take.
    pub timeout: Duration,
    /// Largest body read; past it the reply is cut and marked `truncated`.
    pub max_body: usize,
}

/// Dify's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: String,
    /// `WWW-Authenticate`, passed on with a 401.
    pub www_authenticate: Option<String>,
    /// Body (at most the call's `max_body`).
    pub body: Bytes,
    /// The body was longer than the cap and is cut.
    pub truncated: bool,
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

/// Calls Dify over Pingora's connection pool.
pub struct DifyClient {
    upstream: Arc<Upstream>,
    connector: Connector,
}

impl DifyClient {
    /// A client towards `upstream`.
    pub fn new(upstream: Arc<Upstream>) -> Self {
        Self {
            upstream,
            connector: Connector::new(None),
        }
    }

    /// Makes `call` within its timeout.
    pub async fn call(&self, call: &Call<'_>) -> Result<Reply, CallError> {
        match tokio::time::timeout(call.timeout, self.send(call)).await {
            Ok(r) => r,
            Err(_) => Err(CallError::new(UpstreamFailure::Timeout, "call to Dify timed out")),
        }
    }

    async fn send(&self, call: &Call<'_>) -> Result<Reply, CallError> {
        let peer = self
            .upstream
            .peer()
            .ok_or(CallError::new(UpstreamFailure::Resolve, "upstream not resolved"))?;
        let req = self.request(call).map_err(fail)?;
        let (mut session, _) = self.connector.get_http_session(&peer).await.map_err(fail)?;
        session.write_request_header(Box::new(req)).await.map_err(fail)?;
        if let Some(body) = &call.json {
            session
                .write_request_body(body.clone(), true)
                .await
                .map_err(fail)?;
        }
        session.finish_request_body().await.map_err(fail)?;
        session.read_response_header().await.map_err(fail)?;
        let Some(head) = session.response_header() else {
            return Err(CallError::new(UpstreamFailure::Broken, "no response header"));
        };
        let header = |n: &str| {
            head.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let mut reply = Reply {
            status: head.status.as_u16(),
            content_type: header("content-type").unwrap_or_default(),
            www_authenticate: header("www-authenticate"),
            body: Bytes::new(),
            truncated: false,
        };
        let mut body = BytesMut::new();
        while let Some(chunk) = session.read_response_body().await.map_err(fail)? {
            if body.len() + chunk.len() > call.max_body {
                reply.truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        if !reply.truncated {
            self.connector.release_http_session(session, &peer, None).await;
        }
        reply.body = body.freeze();
        Ok(reply)
    }

    /// The request head of `call`, rewritten as a proxied request is.
    fn request(&self, call: &Call<'_>) -> pingora::Result<RequestHeader> {
        let mut req = RequestHeader::build(call.method, call.path.as_bytes(), None)?;
        let fwd = Forwarding {
            api_key: call.api_key,
            client_ip: None,
            peer_trusted: false,
            proto: "http",
            request_id: call.request_id,
        };
        rewrite_request(&mut req, self.upstream.settings(), &fwd)?;
        if let Some(body) = &call.json {
            req.insert_header("content-type", "application/json")?;
            req.insert_header("content-length", body.len().to_string())?;
        }
        Ok(req)
    }
}

/// A Pingora error as a call error of the same kind as for proxied requests.
fn fail(e: Box<pingora::Error>) -> CallError {
    CallError::new(upstream_failure(e.etype()), e.to_string())
}
