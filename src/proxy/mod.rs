//! `Gateway`: the Pingora `ProxyHttp` implementation. Each phase is thin and calls the modules that
//! hold the logic: `admit` (route, auth, tenant), `upstream` (peer, rewrite), `error` (envelopes),
//! `metrics` (recorded once, in `logging`).

mod admit;
mod ctx;
mod respond;

pub use admit::{Admission, Head, admit};
pub use ctx::RequestCtx;

use crate::auth::unix_now;
use crate::error;
use crate::metrics::{Metrics, RequestLabels};
use crate::state::SharedSnapshot;
use crate::upstream::{self, Forwarding, Upstream};
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use std::sync::Arc;

/// The tenant-facing proxy.
pub struct Gateway {
    /// Tenants, apps and keys in force.
    pub snapshot: Arc<SharedSnapshot>,
    /// The Dify origin.
    pub upstream: Arc<Upstream>,
    /// Metric families.
    pub metrics: Metrics,
    /// `server.max_request_body`.
    pub max_request_body: u64,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.snapshot.load())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let req = session.req_header();
        ctx.request_id = upstream::request_id(req.headers.get("x-request-id").map(|v| v.as_bytes()));
        let head = Head {
            method: req.method.as_str(),
            path: req.uri.path(),
            authorization: req.headers.get(http::header::AUTHORIZATION).map(|v| v.as_bytes()),
            app_header: req.headers.get("x-dify-app").and_then(|v| v.to_str().ok()),
            content_length: req
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.trim().parse().ok()),
        };
        match admit(&head, &ctx.snapshot, self.max_request_body, unix_now()) {
            Admission::Proceed { route, tenant, app } => {
                ctx.route = Some(route);
                ctx.tenant = Some((tenant, app));
                Ok(false)
            }
            Admission::Preflight(allow) => {
                respond::preflight(session, &allow, &ctx.request_id).await?;
                Ok(true)
            }
            Admission::Refuse {
                route,
                caller,
                error,
                allow,
                auth,
                reason,
            } => {
                ctx.route = route;
                ctx.tenant = caller;
                let mut extra: Vec<(&'static str, &str)> = Vec::new();
                if let Some(a) = allow.as_deref() {
                    extra.push(("allow", a));
                }
                if auth.is_some() {
                    extra.push(("www-authenticate", "Bearer realm=\"dify-gateway\""));
                }
                if let Some(r) = reason {
                    self.metrics.auth_failure(r);
                }
                ctx.auth_failure = auth;
                respond::error(session, &error, &ctx.request_id, &extra).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        match self.upstream.peer() {
            Some(peer) => Ok(Box::new(peer)),
            None => {
                Err(Error::explain(ErrorType::Custom("resolve"), "upstream name did not resolve").into_up())
            }
        }
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some((_, app)) = &ctx.tenant else {
            return Err(Error::explain(ErrorType::InternalError, "no app resolved"));
        };
        let fwd = Forwarding {
            api_key: app.api_key.expose(),
            client_ip: session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip()),
            request_id: &ctx.request_id,
        };
        upstream::rewrite_request(req, self.upstream.settings(), &fwd)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _eos: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(b) = body {
            ctx.body_bytes += b.len() as u64;
            if ctx.body_bytes > self.max_request_body {
                return Err(Error::explain(
                    ErrorType::HTTPStatus(413),
                    "request body over the cap",
                ));
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        resp.insert_header("x-request-id", ctx.request_id.as_str())?;
        let ctype = resp
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let (sse, audio) = (is_event_stream(ctype), ctype.starts_with("audio/"));
        if sse {
            resp.insert_header("x-accel-buffering", "no")?;
            resp.insert_header("cache-control", "no-cache")?;
        }
        if sse || audio {
            ctx.streaming = true;
            self.metrics.active_streams.inc();
        }
        Ok(())
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        let (answer, failure) = error::classify(e.etype(), e.esource());
        if let Some(f) = failure {
            ctx.upstream_failure = Some(f);
            self.metrics.upstream_error(f.label());
        }
        let code = answer.as_ref().map(|a| a.kind.status()).unwrap_or(0);
        if let (Some(answer), None) = (&answer, session.response_written())
            && let Err(write_err) = respond::error(session, answer, &ctx.request_id, &[]).await
        {
            tracing::debug!(message = "Could not send error response.", error = %write_err);
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map(|r| r.status.as_u16()).unwrap_or(0);
        if ctx.streaming {
            self.metrics.active_streams.dec();
        }
        let (tenant, app) = ctx.tenant_app();
        let elapsed = ctx.start.elapsed();
        let labels = RequestLabels {
            endpoint: ctx.endpoint(),
            method: session.req_header().method.as_str(),
            status,
            tenant,
            app,
            mode: if ctx.streaming { "streaming" } else { "blocking" },
        };
        self.metrics.record_request(&labels, elapsed.as_secs_f64());
        tracing::info!(
            target: "access",
            request_id = %ctx.request_id,
            tenant,
            app,
            endpoint = labels.endpoint,
            method = labels.method,
            status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            request_bytes = ctx.body_bytes,
            response_bytes = session.body_bytes_sent(),
            auth_failure = ctx.auth_failure.map(|a| a.reason()),
            upstream_failure = ctx.upstream_failure.map(|f| f.label()),
            error = e.map(|e| e.etype().as_str()),
        );
    }
}

fn is_event_stream(ctype: &str) -> bool {
    ctype
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("text/event-stream")
}
