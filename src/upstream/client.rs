//! Calls to Dify the gateway makes on its own (beside the proxied request: stops of abandoned
//! generations, metadata cache fills), through the gateway's one outbound HTTP client. Requests are
//! rewritten exactly as proxied ones are (app key, `Host`, base path, request id).

use super::{Forwarding, Upstream, rewrite_request};
use crate::outbound::Outbound;
pub use crate::outbound::{CallError, Reply};
use crate::respond::UpstreamFailure;
use bytes::Bytes;
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

/// Calls Dify through the gateway's outbound client.
pub struct DifyClient {
    upstream: Arc<Upstream>,
    outbound: Outbound,
}

impl DifyClient {
    /// A client towards `upstream`.
    pub fn new(upstream: Arc<Upstream>) -> Self {
        Self {
            upstream,
            outbound: Outbound::default(),
        }
    }

    /// Makes `call` within its timeout, on any healthy replica (it counts as in flight there).
    pub async fn call(&self, call: &Call<'_>) -> Result<Reply, CallError> {
        let (lease, peer) = self
            .upstream
            .any_peer()
            .map_err(|e| CallError::new(UpstreamFailure::from(e), "no Dify replica to call"))?;
        let head = self
            .request(call, self.upstream.origin_of(lease.replica()))
            .map_err(|e| CallError::new(UpstreamFailure::Broken, e.to_string()))?;
        let reply = self
            .outbound
            .send(&peer, head, call.json.clone(), call.timeout, call.max_body)
            .await;
        if let Err(e) = &reply
            && matches!(e.kind, UpstreamFailure::Refused | UpstreamFailure::ConnectTimeout)
        {
            self.upstream.eject(lease.replica().addr);
        }
        drop(lease);
        reply
    }

    /// The request head of `call` for `origin`, rewritten as a proxied request is.
    fn request(&self, call: &Call<'_>, origin: &crate::config::Origin) -> pingora::Result<RequestHeader> {
        let mut req = RequestHeader::build(call.method, call.path.as_bytes(), None)?;
        let fwd = Forwarding {
            api_key: Some(call.api_key),
            client_ip: None,
            peer_trusted: false,
            proto: "http",
            request_id: call.request_id,
        };
        rewrite_request(&mut req, origin, &fwd)?;
        if let Some(body) = &call.json {
            req.insert_header("content-type", "application/json")?;
            req.insert_header("content-length", body.len().to_string())?;
        }
        Ok(req)
    }
}
