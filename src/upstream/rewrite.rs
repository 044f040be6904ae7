//! Rewrites the tenant's request for Dify (request step 6, `upstream_request_filter`, and the
//! gateway's own calls): the app key instead of the tenant's credentials, hop-by-hop headers gone,
//! `Host`, base path, forwarding headers and the request id set.

use crate::config::Origin;
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

/// Headers through which a client could tell Dify who it is or where it called: Dify and its
/// proxies take the client address from them. Always removed; `X-Forwarded-For` is set anew.
const FORWARDING: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-proto",
    "x-forwarded-server",
    "x-real-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "cf-connecting-ip",
    "true-client-ip",
    "fastly-client-ip",
];

/// What the rewrite needs to know about the call.
pub struct Forwarding<'a> {
    /// The Dify app key of the resolved app (`None`: a signed file link, which goes with no
    /// credentials at all).
    pub api_key: Option<&'a str>,
    /// The peer's address (the client, or a proxy in front of the gateway).
    pub client_ip: Option<IpAddr>,
    /// The peer is one of `server.trusted_proxies`: the `X-Forwarded-For` it sent is kept.
    pub peer_trusted: bool,
    /// `https` when the client called over TLS.
    pub proto: &'static str,
    /// The request id (kept from the client or generated).
    pub request_id: &'a str,
}

/// Rewrites the tenant's request for Dify. The tenant's `Authorization` is replaced by the app key,
/// the target is always sent in origin form (`/v1/...`, after the base path), and the forwarding
/// headers say only what the gateway saw.
pub fn rewrite_request(req: &mut RequestHeader, up: &Origin, fwd: &Forwarding<'_>) -> pingora::Result<()> {
    let chain = fwd.peer_trusted.then(|| forwarded_for(req)).flatten();
    let listed: Vec<String> = req
        .headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .filter(|t| !t.is_empty())
        .collect();
    // One pass over the headers the client sent (a handful), instead of a lookup per name that
    // could be there (two dozen, each parsed and hashed).
    let doomed: Vec<http::HeaderName> = req
        .headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            HOP_BY_HOP.contains(&name) || FORWARDING.contains(&name) || listed.iter().any(|l| l == name)
        })
        .cloned()
        .collect();
    for name in doomed {
        req.remove_header(&name);
    }
    // An origin-form UTF-8 target with no base path to add goes on as it is (no reparse). An
    // absolute-form or non-UTF-8 target keeps its raw bytes apart from the URI: `set_uri` drops them.
    let as_is = up.base_path.is_empty()
        && req
            .uri
            .path_and_query()
            .is_some_and(|pq| pq.as_str().as_bytes() == req.raw_path());
    if !as_is {
        let pq = req.uri.path_and_query().map_or("/", |p| p.as_str());
        let uri: http::Uri = format!("{}{pq}", up.base_path)
            .parse()
            .map_err(|_| pingora::Error::explain(pingora::ErrorType::InternalError, "bad upstream path"))?;
        req.set_uri(uri);
    }
    req.insert_header(http::header::HOST, up.authority.as_str())?;
    match fwd.api_key {
        Some(key) => {
            let mut auth = http::HeaderValue::try_from(format!("Bearer {key}")).map_err(|_| {
                pingora::Error::explain(pingora::ErrorType::InternalError, "app key is not a header value")
            })?;
            auth.set_sensitive(true);
            req.insert_header(http::header::AUTHORIZATION, auth)?;
        }
        None => {
            req.remove_header(&http::header::AUTHORIZATION);
            req.remove_header(&http::header::COOKIE);
        }
    }
    if let Some(ip) = fwd.client_ip {
        let mut xff = chain.map(|prev| prev + ", ").unwrap_or_default();
        push_ip(&mut xff, ip);
        req.insert_header("x-forwarded-for", xff)?;
    }
    req.insert_header("x-forwarded-proto", fwd.proto)?;
    req.insert_header("x-request-id", fwd.request_id)?;
    Ok(())
}

/// The `X-Forwarded-For` chain the client sent (all its values, in order), when it is plain text.
/// Appends `ip` as text (IPv4 without the formatter, the common case on this path).
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(itoa::Buffer::new().format(octet));
            }
        }
        IpAddr::V6(_) => {
            use std::fmt::Write;
            let _ = write!(out, "{ip}");
        }
    }
}

fn forwarded_for(req: &RequestHeader) -> Option<String> {
    let values: Vec<&str> = req
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().ok().map(str::trim))
        .collect::<Option<_>>()?;
    let chain = values
        .into_iter()
        .filter(|v| !v.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    (!chain.is_empty()).then_some(chain)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn settings(base: &str) -> Origin {
        Origin {
            tls: false,
            host: "dify.internal".into(),
            port: 5001,
            authority: "dify.internal:5001".into(),
            base_path: base.into(),
        }
    }

    #[test]
    fn addresses_read_as_the_formatter_writes_them() {
        for ip in [
            "127.0.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "10.2.30.4",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:1.2.3.4",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let mut out = String::new();
            push_ip(&mut out, ip);
            assert_eq!(out, ip.to_string());
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
            api_key: Some("app-key"),
            client_ip: "127.0.0.9".parse().ok(),
            peer_trusted: true,
            proto: "http",
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
    fn a_signed_file_link_goes_without_any_credentials() {
        let mut req = RequestHeader::build(
            "GET",
            b"/files/x/file-preview?timestamp=1&nonce=n&sign=s%3D",
            None,
        )
        .unwrap();
        req.append_header("authorization", "Bearer tenant.jwt.here")
            .unwrap();
        req.append_header("cookie", "session=abc").unwrap();
        let fwd = Forwarding {
            api_key: None,
            client_ip: None,
            peer_trusted: false,
            proto: "http",
            request_id: "rid-2",
        };
        rewrite_request(&mut req, &settings(""), &fwd).unwrap();
        assert!(req.headers.get("authorization").is_none() && req.headers.get("cookie").is_none());
        assert_eq!(
            req.uri.to_string(),
            "/files/x/file-preview?timestamp=1&nonce=n&sign=s%3D"
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod forwarding_tests {
    use super::*;

    fn settings() -> Origin {
        Origin {
            tls: false,
            host: "dify".into(),
            port: 5001,
            authority: "dify:5001".into(),
            base_path: String::new(),
        }
    }

    fn rewrite(target: &str, headers: &[(&str, &str)], trusted: bool) -> RequestHeader {
        let mut req = RequestHeader::build("GET", target.as_bytes(), None).unwrap();
        for (k, v) in headers {
            req.append_header(k.to_string(), *v).unwrap();
        }
        let fwd = Forwarding {
            peer_trusted: trusted,
            ..forwarding()
        };
        rewrite_request(&mut req, &settings(), &fwd).unwrap();
        req
    }

    fn forwarding() -> Forwarding<'static> {
        Forwarding {
            api_key: Some("k"),
            client_ip: "192.0.2.7".parse().ok(),
            peer_trusted: false,
            proto: "https",
            request_id: "r",
        }
    }

    #[test]
    fn client_forwarding_headers_never_reach_dify() {
        let sent = [
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("cf-connecting-ip", "6.6.6.6"),
            ("x-forwarded-host", "evil"),
            ("x-forwarded-port", "1"),
            ("x-forwarded-prefix", "/x"),
        ];
        let req = rewrite("/v1/info", &sent, false);
        for (name, _) in &sent[1..] {
            assert!(req.headers.get(*name).is_none(), "{name} reached Dify");
        }
        assert_eq!(req.headers.get("x-forwarded-for").unwrap(), "192.0.2.7");
        assert_eq!(req.headers.get("x-forwarded-proto").unwrap(), "https");
    }

    #[test]
    fn a_trusted_proxys_chain_is_kept() {
        let sent = [
            ("x-forwarded-for", "203.0.113.1"),
            ("x-forwarded-for", "10.0.0.2"),
        ];
        let req = rewrite("/v1/info", &sent, true);
        assert_eq!(
            req.headers.get("x-forwarded-for").unwrap(),
            "203.0.113.1, 10.0.0.2, 192.0.2.7"
        );
    }

    #[test]
    fn an_absolute_target_goes_to_dify_in_origin_form() {
        let req = rewrite("http://other.host/v1/parameters?x=1", &[], false);
        assert_eq!(req.uri.to_string(), "/v1/parameters?x=1");
        assert_eq!(req.raw_path(), b"/v1/parameters?x=1", "what goes on the wire");
        let plain = rewrite("/v1/parameters?x=1", &[], false);
        assert_eq!(plain.raw_path(), b"/v1/parameters?x=1");
        let mut odd = RequestHeader::build("GET", b"/v1/files/\xff/preview", None).unwrap();
        rewrite_request(&mut odd, &settings(), &forwarding()).unwrap();
        let checked = odd.uri.path_and_query().unwrap().as_str().as_bytes();
        assert_eq!(
            odd.raw_path(),
            checked,
            "the target the gateway routed, not the raw bytes"
        );
        assert!(!odd.raw_path().contains(&0xff));
        assert_eq!(req.headers.get("host").unwrap(), "dify:5001");
    }
}
