//! The Dify origin (request step 6, `upstream_peer` / `upstream_request_filter`): which peer to
//! connect to, with what timeouts and TLS checks ([`Upstream`]), how the tenant's request is
//! rewritten for Dify ([`rewrite`]), the one client for the gateway's own calls ([`client`]), and the
//! Pingora phases ([`pingora`]).

pub mod client;
pub mod health;
pub mod pingora;
pub mod pool;
pub mod rewrite;

pub use client::{Call, CallError, DifyClient, Reply};
pub use pool::{Lease, NoReplica, Pool, PoolObserver, Replica};
pub use rewrite::{Forwarding, rewrite_request};

use crate::config::{Origin, UpstreamSettings};
use ::pingora::prelude::HttpPeer;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// The Dify origins and the pool of replicas they resolve to.
pub struct Upstream {
    settings: UpstreamSettings,
    pool: Arc<Pool>,
}

impl Upstream {
    /// An upstream for `settings`; names are resolved now and again by [`Upstream::refresh`].
    pub fn new(settings: UpstreamSettings, observer: Box<dyn PoolObserver>) -> Self {
        let pool = Arc::new(Pool::new(settings.max_inflight_per_replica, observer));
        let up = Self { settings, pool };
        up.refresh();
        up
    }

    /// The settings in force.
    pub fn settings(&self) -> &UpstreamSettings {
        &self.settings
    }

    /// The pool.
    pub fn pool(&self) -> &Arc<Pool> {
        &self.pool
    }

    /// The origin a replica belongs to.
    pub fn origin_of(&self, replica: &Replica) -> &Origin {
        self.settings
            .origins
            .get(replica.origin)
            .unwrap_or_else(|| self.settings.origin())
    }

    /// Resolves every origin again (blocking; call from a blocking thread). An origin whose name does
    /// not resolve keeps its old addresses.
    pub fn refresh(&self) {
        for (i, o) in self.settings.origins.iter().enumerate() {
            let found: Vec<SocketAddr> = match o.host.parse::<std::net::IpAddr>() {
                Ok(ip) => vec![SocketAddr::new(ip, o.port)],
                Err(_) => match (o.host.as_str(), o.port).to_socket_addrs() {
                    Ok(it) => it.collect(),
                    Err(e) => {
                        tracing::warn!(message = "Upstream name did not resolve.", host = %o.host, error = %e);
                        Vec::new()
                    }
                },
            };
            if !found.is_empty() {
                let mut found = found;
                found.sort();
                found.dedup();
                self.pool.set_addresses(i, &found);
            }
        }
    }

    /// Whether a host is a name that needs periodic re-resolution.
    pub fn needs_refresh(&self) -> bool {
        self.settings.origins.iter().any(Origin::is_name)
    }

    /// The peer of `replica`, with timeouts and TLS checks; a stream's reads wait
    /// `stream_idle_timeout` at most.
    pub fn peer_of(&self, replica: &Replica, streaming: bool) -> HttpPeer {
        let s = &self.settings;
        let o = self.origin_of(replica);
        let mut peer = HttpPeer::new(replica.addr, o.tls, o.host.clone());
        let opt = &mut peer.options;
        opt.connection_timeout = Some(s.connect_timeout);
        opt.total_connection_timeout = Some(s.connect_timeout + Duration::from_secs(5));
        opt.read_timeout = Some(if streaming {
            s.stream_idle_timeout
        } else {
            s.read_timeout
        });
        opt.write_timeout = Some(s.write_timeout);
        opt.idle_timeout = Some(s.pool_idle_timeout);
        opt.verify_cert = s.verify_tls;
        opt.verify_hostname = s.verify_tls;
        peer
    }

    /// A replica and its peer for the gateway's own calls (stops, cache fills): any healthy one.
    pub fn any_peer(&self) -> Result<(Lease, HttpPeer), NoReplica> {
        let lease = self.pool.any()?;
        let peer = self.peer_of(lease.replica(), false);
        Ok((lease, peer))
    }

    /// Whether Dify can take requests: a replica passes its checks (without active checks, one
    /// accepts a connection within `wait`).
    pub async fn ready(&self, wait: Duration) -> bool {
        if self.settings.health_check_path.is_some() {
            return self.pool.any_healthy();
        }
        // Any replica not ejected that accepts a connection (one dead pod must not make every
        // gateway unready).
        let now = crate::clock::now_ms();
        for r in self.pool.replicas().iter().filter(|r| r.available(now)) {
            let probe = tokio::time::timeout(wait, tokio::net::TcpStream::connect(r.addr));
            if matches!(probe.await, Ok(Ok(_))) {
                return true;
            }
        }
        false
    }
}
