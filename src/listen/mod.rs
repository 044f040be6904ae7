//! The tenant listener's connections (before request step 1): TLS with certificates re-read on
//! SIGHUP and HTTP/2 by ALPN ([`tls`]), and connection hygiene for HTTP/1: an idle connection closed
//! after `server.keepalive_timeout`, a request head not complete within `server.header_timeout`
//! answered 408 and closed ([`hygiene`], [`head`]); and its end: draining on SIGTERM before the
//! listener closes ([`shutdown`]).

pub mod head;
pub mod hygiene;
pub mod shutdown;
pub mod tls;
