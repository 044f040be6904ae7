//! Validation of `[server]` and `[upstream]` (start-up step 2): addresses, sizes, timeouts and the
//! Dify origin.

use super::problems::Problems;
use crate::config::file::{ServerSection, UpstreamSection};
use crate::config::{Origin, ServerSettings, UpstreamSettings, units};
use std::time::Duration;

pub(super) fn server(p: &mut Problems, s: &ServerSection, base: &std::path::Path) -> ServerSettings {
    let listen = p.addr("server.listen", &s.listen);
    let admin_listen = p.addr("server.admin_listen", &s.admin_listen);
    if listen == admin_listen && listen.port() != 0 {
        p.add("server.admin_listen", "must differ from server.listen");
    }
    if listen.port() == 0 && !s.listen.is_empty() {
        p.add(
            "server.listen",
            "must name a port: tenants and load balancers could not find one the OS picks",
        );
    }
    let max_request_body = units::size(&s.max_request_body).unwrap_or_else(|e| {
        p.add("server.max_request_body", e);
        0
    });
    if s.threads == 0 {
        p.add("server.threads", "must be at least 1");
    }
    let port = listen.port();
    let trusted_proxies = s
        .trusted_proxies
        .iter()
        .enumerate()
        .filter_map(|(i, t)| {
            t.parse()
                .map_err(|e| p.add(format!("server.trusted_proxies[{i}]"), e))
                .ok()
        })
        .collect();
    let tls = match (&s.tls_cert_file, &s.tls_key_file) {
        (None, None) => None,
        (Some(c), Some(k)) => {
            let (c, k) = (
                base.join(c).display().to_string(),
                base.join(k).display().to_string(),
            );
            match crate::listen::tls::Certs::load(&c, &k) {
                Ok(_) => Some((c, k)),
                Err(e) => {
                    p.add("server.tls_cert_file", e);
                    None
                }
            }
        }
        _ => {
            p.add(
                "server.tls_cert_file",
                "set both tls_cert_file and tls_key_file, or neither",
            );
            None
        }
    };
    ServerSettings {
        keepalive_timeout: p.duration("server.keepalive_timeout", &s.keepalive_timeout),
        shutdown_delay: units::duration(&s.shutdown_delay).unwrap_or_else(|e| {
            p.add("server.shutdown_delay", e);
            Duration::ZERO
        }),
        header_timeout: p.duration("server.header_timeout", &s.header_timeout),
        tls,
        trusted_proxies,
        listen,
        admin_listen,
        grace_period: units::duration(&s.grace_period).unwrap_or_else(|e| {
            p.add("server.grace_period", e);
            Duration::ZERO
        }),
        max_request_body,
        threads: s.threads,
        pid_file: s
            .pid_file
            .clone()
            .unwrap_or_else(|| format!("/tmp/dify-gateway-{port}.pid")),
        upgrade_sock: s
            .upgrade_sock
            .clone()
            .unwrap_or_else(|| format!("/tmp/dify-gateway-{port}.upgrade.sock")),
    }
}

pub(super) fn upstream(p: &mut Problems, u: &UpstreamSection) -> UpstreamSettings {
    let urls: Vec<(String, &str)> = match (u.url.is_empty(), u.urls.is_empty()) {
        (false, false) => {
            p.add("upstream.urls", "set either url or urls, not both");
            Vec::new()
        }
        (true, false) => u
            .urls
            .iter()
            .enumerate()
            .map(|(i, x)| (format!("upstream.urls[{i}]"), x.as_str()))
            .collect(),
        _ => vec![("upstream.url".to_string(), u.url.as_str())],
    };
    let origins: Vec<Origin> = urls
        .iter()
        .filter_map(|(path, url)| match origin(url) {
            Ok(o) => Some(o),
            Err(e) => {
                p.add(path, e);
                None
            }
        })
        .collect();
    let health_check_path = match u.health_check_path.as_str() {
        "" => None,
        path if path.starts_with('/') && !path.contains(char::is_whitespace) => Some(path.to_string()),
        other => {
            p.add(
                "upstream.health_check_path",
                format!("`{other}` must be a path starting with /, or \"\""),
            );
            None
        }
    };
    UpstreamSettings {
        origins,
        connect_timeout: p.duration("upstream.connect_timeout", &u.connect_timeout),
        read_timeout: p.duration("upstream.read_timeout", &u.read_timeout),
        write_timeout: p.duration("upstream.write_timeout", &u.write_timeout),
        stream_idle_timeout: p.duration("upstream.stream_idle_timeout", &u.stream_idle_timeout),
        pool_idle_timeout: p.duration("upstream.pool_idle_timeout", &u.pool_idle_timeout),
        verify_tls: u.verify_tls,
        resolve_interval: p.duration("upstream.resolve_interval", &u.resolve_interval),
        health_check_path,
        health_check_interval: p.duration("upstream.health_check_interval", &u.health_check_interval),
        max_inflight_per_replica: u.max_inflight_per_replica,
    }
}

/// One origin of the pool, with the `Host` it is called with.
fn origin(url: &str) -> Result<Origin, String> {
    let (tls, host, port, base_path) = parse_origin(url)?;
    let default_port = if tls { 443 } else { 80 };
    let bracketed = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let authority = if port == default_port {
        bracketed
    } else {
        format!("{bracketed}:{port}")
    };
    Ok(Origin {
        tls,
        host,
        port,
        authority,
        base_path,
    })
}

/// Splits `http(s)://host[:port][/base]` into its parts.
pub fn parse_origin(url: &str) -> Result<(bool, String, u16, String), String> {
    if url.is_empty() {
        return Err("is required (the Dify API origin, e.g. \"http://127.0.0.1:5001\")".into());
    }
    let uri: http::Uri = url.parse().map_err(|e| format!("`{url}` is not a URL ({e})"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(format!("`{url}` must start with http:// or https://")),
    };
    let auth = uri.authority().ok_or_else(|| format!("`{url}` has no host"))?;
    if auth.as_str().contains('@') {
        return Err("must not contain credentials".into());
    }
    if uri.query().is_some() {
        return Err("must not contain a query".into());
    }
    let host = auth
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = auth.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let mut base = uri.path().trim_end_matches('/').to_string();
    if base.ends_with("/v1") {
        return Err("give the origin without /v1; the gateway adds the API path".into());
    }
    if base == "/" {
        base.clear();
    }
    Ok((tls, host, port, base))
}
