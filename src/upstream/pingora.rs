//! The Pingora side of the upstream step: `upstream_peer` (which Dify replica to connect to, with the
//! stream timeout for requests answered by a stream), `fail_to_connect` (a refused replica ejected,
//! the request tried once on another when nothing reached Dify) and `upstream_request_filter` (the
//! request rewritten for the replica's origin; a body scoped as it streams is sent chunked, one
//! scoped whole goes with its new length).

use super::{Forwarding, Lease, NoReplica, Upstream, rewrite_request};
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
    /// The body is ready whole (read and scoped early): it goes with this length.
    pub body_length: Option<usize>,
    /// `server.trusted_proxies`.
    pub trusted_proxies: &'a [Cidr],
    /// The replica the request goes to.
    pub lease: Option<&'a Lease>,
}

/// The replica a request holds, and those it already failed to connect to.
#[derive(Debug, Default)]
pub struct Held {
    /// The replica taken (in flight until the request ends).
    pub lease: Option<Lease>,
    /// Replicas that refused this request's connection.
    pub tried: Vec<std::net::SocketAddr>,
}

/// How long a replica that refused a connection stays out without active health checks.
const EJECT_FOR: std::time::Duration = std::time::Duration::from_secs(5);

impl Upstream {
    /// The peer for a request (`upstream_peer`): the healthy replica with the fewest in flight (not
    /// one this request already failed on), waiting up to the connect timeout for one below its cap;
    /// a stream's reads wait `stream_idle_timeout` at most. Every replica down: 502 at once.
    pub async fn peer_for(&self, held: &mut Held, expects_stream: bool) -> pingora::Result<Box<HttpPeer>> {
        held.lease = None;
        match self
            .pool()
            .acquire(&held.tried, self.settings().connect_timeout)
            .await
        {
            Ok(lease) => {
                let peer = self.peer_of(lease.replica(), expects_stream);
                held.lease = Some(lease);
                Ok(Box::new(peer))
            }
            Err(NoReplica::NoneHealthy) => {
                Err(Error::explain(ErrorType::Custom("none_healthy"), "no Dify replica is healthy").into_up())
            }
            Err(NoReplica::Saturated) => Err(Error::explain(
                ErrorType::Custom("saturated"),
                "every Dify replica is at max_inflight_per_replica",
            )
            .into_up()),
        }
    }

    /// Keeps a replica that refused a connection out of the pool until a health check passes (or,
    /// without checks, for a few seconds).
    pub fn eject(&self, addr: std::net::SocketAddr) {
        self.pool()
            .eject(addr, self.settings().health_check_interval.max(EJECT_FOR));
    }

    /// A connection to `peer` failed (`fail_to_connect`): a refused replica leaves the pool for a
    /// while, and the request is tried once on another replica when its body can be replayed.
    pub fn connect_failed(&self, held: &mut Held, peer: &HttpPeer, e: &mut pingora::Error, replayable: bool) {
        let Some(addr) = peer._address.as_inet().copied() else {
            return;
        };
        let refused = matches!(
            e.etype(),
            ErrorType::ConnectRefused
                | ErrorType::ConnectTimedout
                | ErrorType::ConnectNoRoute
                | ErrorType::ConnectError
        );
        if refused {
            self.eject(addr);
        }
        held.tried.push(addr);
        held.lease = None;
        // Nothing reached Dify: one more try elsewhere (never after bytes were sent: error_while_proxy).
        e.set_retry(held.tried.len() == 1 && replayable && self.pool().replicas().len() > 1);
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
        let origin = match out.lease {
            Some(l) => self.origin_of(l.replica()),
            None => self.settings().origin(),
        };
        rewrite_request(req, origin, &fwd)?;
        if out.body_read_early {
            // The client was told to continue already; Dify gets the whole body at once.
            req.remove_header(&http::header::EXPECT);
        }
        if let Some(n) = out.body_length {
            req.insert_header(http::header::CONTENT_LENGTH, itoa::Buffer::new().format(n))?;
        } else if out.body_rewritten && !session.is_body_empty() {
            req.remove_header(&http::header::CONTENT_LENGTH);
            req.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
        }
        Ok(())
    }
}
