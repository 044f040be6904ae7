//! Rewrites the tenant's request for Dify (request step 6, `upstream_request_filter`, and the
//! gateway's own calls): the app key instead of the tenant's credentials, hop-by-hop headers gone,
//! `Host`, base path, forwarding headers and the request id set.

use crate::config::UpstreamSettings;
use pingora::http::RequestHeader;
use std::net::IpAddr;

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}
