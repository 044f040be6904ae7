//! The Pingora side of the upstream step: `upstream_peer` (which Dify to connect to, with the stream
//! timeout for requests answered by a stream) and `upstream_request_filter` (the request rewritten
//! for Dify, a scoped body sent chunked).

use super::{Forwarding, Upstream, rewrite_request};
use crate::config::cidr::Cidr;
use crate::secret::Secret;
use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use pingora::proxy::Session;
use pingora::{Error, ErrorType};

/// What the rewrite of one request needs to know.
pub struct Outgoing<'a> {
    /// The app key Dify sees (none for a signed file link).
    pub api_key: Option<&'a Secret>,
    /// The request id.
    pub request_id: &'a str,
    /// The body was read before connecting and is replayed whole: no `Expect` any more.
    pub body_read_early: bool,
    /// The body's length may change (user scoping): it is sent chunked.
    pub body_rewritten: bool,
    /// `server.trusted_proxies`.
    pub trusted_proxies: &'a [Cidr],
}

impl Upstream {
    /// The peer for a request (`upstream_peer`); a stream's reads wait `stream_idle_timeout` at most.
    pub fn peer_for(&self, expects_stream: bool) -> pingora::Result<Box<HttpPeer>> {
        let peer = if expects_stream {
            self.stream_peer()
        } else {
            self.peer()
        };
        match peer {
            Some(peer) => Ok(Box::new(peer)),
            None => {
                Err(Error::explain(ErrorType::Custom("resolve"), "upstream name did not resolve").into_up())
            }
        }
    }

    /// Rewrites the request head for Dify (`upstream_request_filter`).
    pub fn rewrite_head(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        out: &Outgoing<'_>,
    ) -> pingora::Result<()> {
        let client_ip = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let fwd = Forwarding {
            api_key: out.api_key.map(Secret::expose),
            client_ip,
            peer_trusted: client_ip.is_some_and(|ip| out.trusted_proxies.iter().any(|c| c.contains(ip))),
            proto: if tls { "https" } else { "http" },
            request_id: out.request_id,
        };
        rewrite_request(req, self.settings(), &fwd)?;
        if out.body_read_early {
            // The client was told to continue already; Dify gets the whole body at once.
            req.remove_header(&http::header::EXPECT);
        }
        if out.body_rewritten && !session.is_body_empty() {
            req.remove_header(&http::header::CONTENT_LENGTH);
            req.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
        }
        Ok(())
    }
}
