//! The floor the gateway is built on, for the side-by-side benchmark (`benches/versus_nginx.rs`): a
//! bare Pingora 0.9 passthrough proxy with no filters, no logging, no auth and Pingora's defaults,
//! two worker threads like the gateway. `bare_proxy LISTEN UPSTREAM` (both `host:port`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

struct Bare(std::net::SocketAddr);

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (listen, upstream) = (&args[1], args[2].parse().expect("UPSTREAM is host:port"));
    let dir = std::env::temp_dir();
    let conf = ServerConf {
        threads: 2,
        pid_file: dir
            .join(format!("bare-proxy-{}.pid", std::process::id()))
            .display()
            .to_string(),
        upgrade_sock: dir
            .join(format!("bare-proxy-{}.sock", std::process::id()))
            .display()
            .to_string(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, Bare(upstream));
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run_forever();
}
