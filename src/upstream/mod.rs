//! The Dify origin (request step 6, `upstream_peer` / `upstream_request_filter`): which peer to
//! connect to, with what timeouts and TLS checks ([`Upstream`]), how the tenant's request is
//! rewritten for Dify ([`rewrite`]), the one client for the gateway's own calls ([`client`]), and the
//! Pingora phases ([`pingora`]).

pub mod client;
pub mod pingora;
pub mod rewrite;

pub use client::{Call, CallError, DifyClient, Reply};
pub use rewrite::{Forwarding, rewrite_request};

use crate::config::UpstreamSettings;
use ::pingora::prelude::HttpPeer;
use arc_swap::ArcSwap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// The Dify origin and its current address.
pub struct Upstream {
    settings: UpstreamSettings,
    addrs: ArcSwap<Vec<SocketAddr>>,
}

impl Upstream {
    /// An upstream for `settings`; names are resolved now and again by [`Upstream::refresh`].
    pub fn new(settings: UpstreamSettings) -> Self {
        let up = Self {
            settings,
            addrs: ArcSwap::from_pointee(Vec::new()),
        };
        up.refresh();
        up
    }

    /// The settings in force.
    pub fn settings(&self) -> &UpstreamSettings {
        &self.settings
    }

    /// Re-resolves the host name (blocking; call from a background thread). Keeps the old addresses
    /// when resolution fails.
    pub fn refresh(&self) {
        let s = &self.settings;
        let found: Vec<SocketAddr> = match s.host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, s.port)],
            Err(_) => match (s.host.as_str(), s.port).to_socket_addrs() {
                Ok(it) => it.collect(),
                Err(e) => {
                    tracing::warn!(message = "Upstream name did not resolve.", host = %s.host, error = %e);
                    Vec::new()
                }
            },
        };
        if !found.is_empty() {
            self.addrs.store(Arc::new(found));
        }
    }

    /// Whether the host is a name that needs periodic re-resolution.
    pub fn needs_refresh(&self) -> bool {
        self.settings.host.parse::<IpAddr>().is_err()
    }

    /// First current address, if any.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addrs.load().first().copied()
    }

    /// The peer for a request answered by a stream: reads may wait `stream_idle_timeout` at most.
    pub fn stream_peer(&self) -> Option<HttpPeer> {
        let mut peer = self.peer()?;
        peer.options.read_timeout = Some(self.settings.stream_idle_timeout);
        Some(peer)
    }

    /// The peer to connect to, with timeouts and TLS checks; `None` when the name has not resolved.
    pub fn peer(&self) -> Option<HttpPeer> {
        let s = &self.settings;
        let mut peer = HttpPeer::new(self.addr()?, s.tls, s.host.clone());
        let o = &mut peer.options;
        o.connection_timeout = Some(s.connect_timeout);
        o.total_connection_timeout = Some(s.connect_timeout + Duration::from_secs(5));
        o.read_timeout = Some(s.read_timeout);
        o.write_timeout = Some(s.write_timeout);
        o.idle_timeout = Some(s.pool_idle_timeout);
        o.verify_cert = s.verify_tls;
        o.verify_hostname = s.verify_tls;
        Some(peer)
    }
}
