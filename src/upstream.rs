//! The Dify origin (request step 3, `upstream_peer` / `upstream_request_filter`): which peer to
//! connect to, with what timeouts and TLS checks, and how the tenant's request is rewritten for Dify
//! (app key instead of the tenant JWT, hop-by-hop headers gone, forwarding headers set).

use crate::config::UpstreamSettings;
use arc_swap::ArcSwap;
use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// Headers that describe one hop and never travel further (RFC 9110 §7.6.1), plus the gateway's own
/// app selector.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "upgrade",
    "x-dify-app",
];

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

/// What the rewrite needs to know about the call.
pub struct Forwarding<'a> {
    /// The Dify app key of the resolved app.
    pub api_key: &'a str,
    /// The client's address, appended to `X-Forwarded-For`.
    pub client_ip: Option<IpAddr>,
    /// The request id (kept from the client or generated).
    pub request_id: &'a str,
}

/// Rewrites the tenant's request for Dify. The tenant's `Authorization` is replaced by the app key.
pub fn rewrite_request(
    req: &mut RequestHeader,
    up: &UpstreamSettings,
    fwd: &Forwarding<'_>,
) -> pingora::Result<()> {
    let listed: Vec<String> = req
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .filter(|t| !t.is_empty())
        .collect();
    for name in HOP_BY_HOP
        .iter()
        .copied()
        .chain(listed.iter().map(String::as_str))
    {
        req.remove_header(name);
    }
    if !up.base_path.is_empty() {
        let pq = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let uri: http::Uri = format!("{}{pq}", up.base_path)
            .parse()
            .map_err(|_| pingora::Error::explain(pingora::ErrorType::InternalError, "bad upstream path"))?;
        req.set_uri(uri);
    }
    req.insert_header(http::header::HOST, up.authority.as_str())?;
    req.insert_header(http::header::AUTHORIZATION, format!("Bearer {}", fwd.api_key))?;
    if let Some(ip) = fwd.client_ip {
        let xff = match req.headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ip}"),
            _ => ip.to_string(),
        };
        req.insert_header("x-forwarded-for", xff)?;
    }
    req.insert_header("x-forwarded-proto", "http")?;
    req.insert_header("x-request-id", fwd.request_id)?;
    Ok(())
}

/// The client's `X-Request-Id` when it is a sane token (1–128 of `[A-Za-z0-9._:-]`), else a new UUID.
pub fn request_id(client: Option<&[u8]>) -> String {
    match client {
        Some(v)
            if !v.is_empty()
                && v.len() <= 128
                && v.iter().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(b)) =>
        {
            String::from_utf8_lossy(v).into_owned()
        }
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn settings(base: &str) -> UpstreamSettings {
        UpstreamSettings {
            tls: false,
            host: "dify.internal".into(),
            port: 5001,
            authority: "dify.internal:5001".into(),
            base_path: base.into(),
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
            stream_idle_timeout: Duration::from_secs(1),
            pool_idle_timeout: Duration::from_secs(1),
            verify_tls: true,
        }
    }

    #[test]
    fn replaces_auth_and_strips_hop_by_hop() {
        let mut req = RequestHeader::build("POST", b"/v1/completion-messages?x=1", None).unwrap();
        for (k, v) in [
            ("authorization", "Bearer tenant.jwt.here"),
            ("connection", "keep-alive, X-Secret-Hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("x-dify-app", "writer"),
            ("x-forwarded-for", "10.0.0.1"),
            ("content-type", "application/json"),
        ] {
            req.append_header(k, v).unwrap();
        }
        let fwd = Forwarding {
            api_key: "app-key",
            client_ip: "127.0.0.9".parse().ok(),
            request_id: "rid-1",
        };
        rewrite_request(&mut req, &settings("/dify"), &fwd).unwrap();
        let h = |n: &str| req.headers.get(n).map(|v| v.to_str().unwrap().to_string());
        assert_eq!(h("authorization").as_deref(), Some("Bearer app-key"));
        assert_eq!(h("host").as_deref(), Some("dify.internal:5001"));
        assert_eq!(h("x-forwarded-for").as_deref(), Some("10.0.0.1, 127.0.0.9"));
        assert_eq!(h("x-forwarded-proto").as_deref(), Some("http"));
        assert_eq!(h("x-request-id").as_deref(), Some("rid-1"));
        assert_eq!(h("content-type").as_deref(), Some("application/json"));
        for gone in ["connection", "keep-alive", "x-secret-hop", "x-dify-app"] {
            assert!(h(gone).is_none(), "{gone} still present");
        }
        assert_eq!(req.uri.to_string(), "/dify/v1/completion-messages?x=1");
    }

    #[test]
    fn request_ids_are_kept_only_when_sane() {
        assert_eq!(request_id(Some(b"abc-123")), "abc-123");
        assert_eq!(request_id(Some(b"a b")).len(), 36);
        assert_eq!(request_id(None).len(), 36);
    }
}
