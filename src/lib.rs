//! dify-gateway: a multi-tenant gateway in front of Dify's Completion-app Service API, on Pingora.
//!
//! Start-up: [`cli`] → [`config`] (load, `${ENV}`, validate; exit 64 on any problem) → [`server`]
//! (Pingora's `ServerConf` from our settings; the proxy, admin and [`background`] services) → run.
//!
//! Request flow through [`proxy::Gateway`]; the folders are the steps, each with its Pingora side
//! (`pingora.rs`) beside its logic:
//!
//! ```text
//! phase                    step                                                  module
//! new_ctx                  load the Snapshot once                                admit (snapshot)
//! request_filter        1  route → credentials → tenant/app → declared size      admit (route, auth, tenant)
//!                      1b  the tenant's limits (one Redis call), 429 if reached  limits
//!                       2  body plan: `user` scoped per tenant, odd bodies out   scope
//!                       3  ids in the path owned by the caller?                  ownership (guard)
//!                       4  will the answer stream? (stream timeout)              stream (mode)
//!                       5  info/parameters/site/meta from the cache              cache (moka → Redis → Dify)
//!                          refusals answered in Dify's envelope                  respond
//! upstream_peer         6  Dify origin, timeouts, TLS                            upstream
//! upstream_request_filter  app key instead of credentials, hop-by-hop stripped   upstream (rewrite)
//! request_body_filter   7  size cap; `user` rewritten (JSON, upload)             scope; ownership (guard)
//! response_filter       8  observer chosen; SSE unbuffered                       stream (watch)
//! response_body_filter  9  task/message ids, usage, as the stream passes         stream (parser, observer), ownership (record)
//! fail_to_proxy            502/504 in Dify's envelope                            respond (classify)
//! logging              10  stop abandoned generations; release the lease with    stream (stop), limits,
//!                          Dify's usage; metrics; access log                    telemetry
//! ```
//!
//! Beside the flow: [`admin`] (health, metrics, admin API), [`tenancy`] (the snapshot built from the
//! file and the [`store`], swapped on every change), [`redis`] (shared by cache and ownership),
//! [`background`] (reload, store sync, key sets, re-resolution, invalidations, shutdown stops).

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod admin;
pub mod admit;
pub mod background;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod limits;
pub mod listen;
pub mod outbound;
pub mod ownership;
pub mod proxy;
pub mod redis;
pub mod respond;
pub mod scope;
pub mod secret;
pub mod server;
pub mod store;
pub mod stream;
pub mod telemetry;
pub mod tenancy;
pub mod upstream;
