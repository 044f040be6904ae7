//! The connection to Redis (used by every Redis call of the request flow and the background): one
//! server through a reconnecting connection manager, or a Redis Cluster through the crate's
//! cluster client, which routes each key to its slot's node. Both behind one cloneable handle; TLS
//! (`rediss://`) with the system's roots plus an optional CA. Also what a cluster needs beyond
//! one key at a time: SCAN on every primary, and a pub/sub connection to one of its nodes.

use crate::config::{RedisSettings, RedisTarget};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, PubSub};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, TlsCertificates, Value};
use std::time::Duration;

/// A connection to one server or to a cluster; cheap to clone (all clones share it).
#[derive(Clone)]
pub enum Conn {
    /// One server.
    Server(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Server(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Server(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Server(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The certificates `rediss://` connections trust beyond the system's roots.
fn certs(s: &RedisSettings) -> TlsCertificates {
    TlsCertificates {
        client_tls: None,
        root_cert: s.ca_pem.clone(),
    }
}

/// A client for one server at `url` (with the configured CA when it is `rediss://`).
pub fn client(s: &RedisSettings, url: &str) -> RedisResult<redis::Client> {
    if url.starts_with("rediss://") && s.ca_pem.is_some() {
        redis::Client::build_with_tls(url, certs(s))
    } else {
        redis::Client::open(url)
    }
}

/// Opens the connection lazily: nothing waits for Redis here, and both kinds reconnect by
/// themselves. Must run on a runtime that lives as long as the process.
pub fn open(s: &RedisSettings) -> RedisResult<Conn> {
    let connect = s.timeout.max(Duration::from_millis(200));
    match &s.target {
        RedisTarget::Server(url) => {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(connect))
                .set_response_timeout(Some(s.timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_secs(1));
            let manager = ConnectionManager::new_lazy_with_config(client(s, url.expose())?, config)?;
            Ok(Conn::Server(manager))
        }
        RedisTarget::Cluster(urls) => {
            let mut b = ClusterClientBuilder::new(urls.iter().map(|u| u.expose().to_string()))
                .connection_timeout(connect)
                .response_timeout(s.timeout)
                .retries(1)
                .min_retry_wait(10)
                .max_retry_wait(100);
            if s.ca_pem.is_some() {
                b = b.certs(certs(s));
            }
            let client = b.build()?;
            Ok(Conn::Cluster(
                client.get_pending_async_connection_with_config(Default::default()),
            ))
        }
    }
}

/// A pub/sub connection: to the server, or to the `attempt`-th node of the cluster (in turn, so a
/// lost node is not tried forever). Classic pub/sub is cluster-wide: any node hears every PUBLISH.
pub async fn pubsub(s: &RedisSettings, attempt: usize) -> RedisResult<PubSub> {
    let url = match &s.target {
        RedisTarget::Server(url) => url,
        RedisTarget::Cluster(urls) => match urls.get(attempt % urls.len().max(1)) {
            Some(url) => url,
            None => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "no cluster node",
                )));
            }
        },
    };
    client(s, url.expose())?.get_async_pubsub().await
}

/// Every key matching `pattern` (SCAN, so Redis is never blocked): on the server, or on each
/// primary of the cluster in turn.
pub async fn scan(conn: Conn, pattern: &str) -> RedisResult<Vec<String>> {
    let mut conn = conn;
    let nodes = match &mut conn {
        Conn::Server(_) => return scan_node(&mut conn, pattern, None).await,
        Conn::Cluster(c) => {
            let nodes = c
                .route_command(
                    redis::cmd("CLUSTER").arg("NODES").clone(),
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
                )
                .await?;
            primaries(&redis::from_redis_value::<String>(nodes)?)
        }
    };
    let mut keys = Vec::new();
    for (host, port) in nodes {
        let by = SingleNodeRoutingInfo::ByAddress { host, port };
        keys.extend(scan_node(&mut conn, pattern, Some(by)).await?);
    }
    Ok(keys)
}

/// SCAN to its end on one node (`to`: which node of a cluster).
async fn scan_node(
    c: &mut Conn,
    pattern: &str,
    to: Option<SingleNodeRoutingInfo>,
) -> RedisResult<Vec<String>> {
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(500);
        let value = match (&mut *c, &to) {
            (Conn::Cluster(cluster), Some(node)) => {
                cluster
                    .route_command(cmd, RoutingInfo::SingleNode(node.clone()))
                    .await?
            }
            (conn, _) => conn.req_packed_command(&cmd).await?,
        };
        let (next, found): (u64, Vec<String>) = redis::from_redis_value(value)?;
        keys.extend(found);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// The primaries' addresses in a `CLUSTER NODES` answer (failed ones left out).
fn primaries(nodes: &str) -> Vec<(String, u16)> {
    nodes
        .lines()
        .filter_map(|line| {
            let mut f = line.split(' ');
            let (_id, addr, flags) = (f.next()?, f.next()?, f.next()?);
            let flags: Vec<&str> = flags.split(',').collect();
            if !flags.contains(&"master") || flags.iter().any(|f| f.starts_with("fail") || *f == "noaddr") {
                return None;
            }
            let addr = addr.split(['@', ',']).next()?;
            let (host, port) = addr.rsplit_once(':')?;
            Some((host.trim_matches(['[', ']']).to_string(), port.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primaries_are_read_from_cluster_nodes() {
        let nodes = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7002@17002,host-b master - 0 1 2 connected 5461-10922
c3 127.0.0.1:7003@17003 master,fail - 0 1 3 disconnected
d4 127.0.0.1:7004@17004 slave a1 0 1 1 connected
e5 [::1]:7005@17005 master - 0 1 5 connected 10923-16383
";
        assert_eq!(
            primaries(nodes),
            vec![
                ("127.0.0.1".to_string(), 7001),
                ("127.0.0.1".to_string(), 7002),
                ("::1".to_string(), 7005)
            ]
        );
    }
}
