//! dify-gateway: a multi-tenant gateway in front of Dify's Completion-app Service API, on Pingora.
//!
//! Start-up: `cli` → `config` (load, `${ENV}`, validate; exit 64 on any problem) → `server` (Pingora
//! `ServerConf` from our settings; proxy, admin and resolver services) → run.
//!
//! Request flow through [`proxy::Gateway`] (one Pingora phase per step):
//!
//! ```text
//! new_ctx                 load the Snapshot once                            state
//! request_filter          route → JWT → tenant/app → body size              proxy::admit (route, auth, tenant)
//!                         ids in the path owned by the caller?              proxy::guard, ownership
//!                         info/parameters/site/meta from the cache          cache (moka → Redis → Dify)
//!                         refusals answered in Dify's envelope              error, proxy::respond
//! upstream_peer           Dify origin, timeouts, TLS                        upstream::Upstream::peer
//! upstream_request_filter app key instead of JWT, hop-by-hop stripped       upstream::rewrite_request
//! request_body_filter     size cap; `user` scoped per tenant (JSON, upload) proxy::body, scope
//! response_filter         X-Request-Id; SSE: no-buffering headers           proxy, proxy::watch
//! response_body_filter    task/message ids, usage, as the stream passes     stream (parser, observer)
//! fail_to_proxy           502/504 in Dify's envelope                        error::classify
//! logging                 stop abandoned generations; metrics; access log   stopper, metrics
//! ```

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod admin;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod error;
pub mod metrics;
pub mod otel;
pub mod ownership;
pub mod proxy;
pub mod reload;
pub mod route;
pub mod scope;
pub mod secret;
pub mod server;
pub mod state;
pub mod stopper;
pub mod stream;
pub mod telemetry;
pub mod tenant;
pub mod upstream;
