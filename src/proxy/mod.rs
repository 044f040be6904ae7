//! `Gateway`: the Pingora `ProxyHttp` implementation. Each phase is thin and calls the modules that
//! hold the logic: `admit` (route, auth, tenant), `guard` (ownership of ids), `body` (user scoping),
//! `upstream` (peer, rewrite), `watch` (what Dify's responses say), `error` (envelopes), `metrics`
//! (recorded once, in `logging`).

mod admit;
mod body;
mod cached;
mod ctx;
mod guard;
mod mode;
mod record;
mod respond;
mod spans;
mod watch;

pub use admit::{Admission, Head, admit};
pub use ctx::RequestCtx;
pub use respond::LocalAnswer;

use crate::auth::unix_now;
use crate::cache::MetadataCache;
use crate::config::StreamSettings;
use crate::error;
use crate::metrics::{Metrics, RequestLabels};
use crate::ownership::Ownership;
use crate::state::SharedSnapshot;
use crate::stopper::{ActiveStreams, Stopper};
use crate::upstream::{self, Forwarding, Upstream};
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use std::sync::Arc;
use std::time::Instant;

/// Pingora error type for a request the gateway answers itself from a body filter.
const ANSWERED: ErrorType = ErrorType::Custom("answered_by_gateway");

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
    /// `[streams]`.
    pub streams: StreamSettings,
    /// Who owns which task, message and annotation ids.
    pub ownership: Arc<Ownership>,
    /// Generations running behind open streams.
    pub active: Arc<ActiveStreams>,
    /// Sends stops to Dify.
    pub stopper: Arc<Stopper>,
    /// The metadata cache (`None` when turned off).
    pub cache: Option<Arc<MetadataCache>>,
    /// Traces (`None` without `telemetry.otlp_endpoint`).
    pub otel: Option<Arc<crate::otel::Otel>>,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.snapshot.load())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        self.start_trace(session, ctx);
        let req = session.req_header();
        ctx.request_id = upstream::request_id(req.headers.get("x-request-id").map(|v| v.as_bytes()));
        // One readable Content-Type, or none: a repeated one could be read differently by Dify.
        let mut types = req.headers.get_all(http::header::CONTENT_TYPE).iter();
        let ctype = match (types.next(), types.next()) {
            (Some(v), None) => v.to_str().ok().map(str::to_string),
            _ => None,
        };
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
                let plan =
                    body::BodyPlan::choose(route.endpoint, ctype.as_deref(), &tenant.id, app.scope_users);
                let guarded = guard::path(&route, &tenant, &app, &self.ownership).await;
                ctx.route = Some(route);
                ctx.tenant = Some((tenant, app));
                let answer = match (plan, guarded) {
                    (Err(refusal), _) => LocalAnswer::from(&refusal),
                    (Ok(_), guard::Guard::Answer(answer)) => answer,
                    (Ok(plan), guard::Guard::Forward(key)) => {
                        ctx.body = plan;
                        ctx.key_override = key;
                        if let Some(endpoint) = ctx.route.as_ref().map(|r| r.endpoint) {
                            (ctx.expects_stream, ctx.body_read_early) =
                                mode::expects_stream(session, endpoint).await?;
                        }
                        return self.answer_from_cache(session, ctx).await;
                    }
                };
                respond::send(session, &answer, &ctx.request_id).await?;
                Ok(true)
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
                let mut answer = LocalAnswer::from(&error);
                if let Some(a) = allow {
                    answer.headers.push(("allow", a));
                }
                if auth.is_some() {
                    answer
                        .headers
                        .push(("www-authenticate", "Bearer realm=\"dify-gateway\"".into()));
                }
                if let Some(r) = reason {
                    self.metrics.auth_failure(r);
                }
                ctx.auth_failure = auth;
                respond::send(session, &answer, &ctx.request_id).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        let peer = if ctx.expects_stream {
            self.upstream.stream_peer()
        } else {
            self.upstream.peer()
        };
        match peer {
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
        let Some(api_key) = ctx.api_key() else {
            return Err(Error::explain(ErrorType::InternalError, "no app resolved"));
        };
        let fwd = Forwarding {
            api_key: api_key.expose(),
            client_ip: session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip()),
            request_id: &ctx.request_id,
        };
        upstream::rewrite_request(req, self.upstream.settings(), &fwd)?;
        ctx.upstream_start = Some(Instant::now());
        self.client_trace(ctx, req);
        if ctx.body_read_early {
            // The client was told to continue already; Dify gets the whole body at once.
            req.remove_header(&http::header::EXPECT);
        }
        if ctx.body.rewrites() && !session.is_body_empty() {
            req.remove_header(&http::header::CONTENT_LENGTH);
            req.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        eos: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.body_bytes += body.as_ref().map_or(0, |b| b.len() as u64);
        if ctx.body_bytes > self.max_request_body {
            return Err(Error::explain(
                ErrorType::HTTPStatus(413),
                "request body over the cap",
            ));
        }
        let tenant = ctx.tenant.as_ref().map_or("", |(t, _)| t.id.as_str());
        match body::filter(&mut ctx.body, body, eos, tenant, self.streams.max_json_body) {
            Ok(None) => Ok(()),
            Ok(Some(facts)) => {
                ctx.dify_user = facts.dify_user;
                self.check_message(ctx, facts.message_id.as_deref()).await
            }
            Err(refusal) => {
                ctx.answer = Some(LocalAnswer::from(&refusal));
                Err(Error::explain(ANSWERED, "request refused by a body filter"))
            }
        }
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(start) = ctx.upstream_start {
            self.metrics
                .upstream_first_byte(ctx.endpoint(), start.elapsed().as_secs_f64());
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
        let (sse, audio) = (watch::is_event_stream(ctype), ctype.starts_with("audio/"));
        if let Some(route) = &ctx.route {
            ctx.watch = watch::Watch::choose(
                route.endpoint,
                resp.status.as_u16(),
                ctype,
                &self.streams,
                ctx.start,
            );
        }
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

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        eos: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(done) = ctx.watch.feed(body.as_deref(), eos, Instant::now()) {
            self.record_blocking(ctx, done);
        } else {
            self.track_stream(ctx);
        }
        Ok(None)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        let answer = match (e.etype(), ctx.answer.take()) {
            (t, Some(a)) if *t == ANSWERED => Some(a),
            _ => {
                let (answer, failure) = error::classify(e.etype(), e.esource());
                if let Some(f) = failure {
                    ctx.upstream_failure = Some(f);
                    self.metrics.upstream_error(f.label());
                }
                answer.as_ref().map(LocalAnswer::from)
            }
        };
        let code = answer.as_ref().map_or(0, |a| a.status);
        if let (Some(answer), None) = (&answer, final_response(session))
            && let Err(write_err) = respond::send(session, answer, &ctx.request_id).await
        {
            tracing::debug!(message = "Could not send error response.", error = %write_err);
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = final_response(session).map(|r| r.status.as_u16()).unwrap_or(0);
        if ctx.streaming {
            self.metrics.active_streams.dec();
        }
        self.finish_stream(ctx, e);
        self.record_usage(ctx);
        self.after_response(ctx, status).await;
        let (tenant, app) = ctx.tenant_app();
        let usage = ctx.observation().and_then(|o| o.usage.as_ref());
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
        self.end_traces(ctx, labels.method, status);
        let trace_id = ctx.trace.as_ref().and_then(crate::otel::trace_id);
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
            cache = ctx.cache_status,
            trace_id,
            prompt_tokens = usage.map(|u| u.prompt_tokens),
            completion_tokens = usage.map(|u| u.completion_tokens),
            upstream_failure = ctx.upstream_failure.map(|f| f.label()),
            error = e.map(|e| e.etype().as_str()),
        );
    }
}

/// The final response head sent to the client, if any (a `100 Continue` is not one).
fn final_response(session: &Session) -> Option<&ResponseHeader> {
    session
        .response_written()
        .filter(|r| !r.status.is_informational())
}

impl Gateway {
    /// Text-to-audio may only voice messages the caller's tenant and app produced.
    async fn check_message(&self, ctx: &mut RequestCtx, message_id: Option<&str>) -> Result<()> {
        let (Some(mid), Some((t, a))) = (message_id, &ctx.tenant) else {
            return Ok(());
        };
        if guard::message(mid, &t.id, &a.name, &self.ownership).await {
            return Ok(());
        }
        ctx.answer = Some(LocalAnswer::tts_unknown_message());
        Err(Error::explain(
            ANSWERED,
            "text-to-audio for a message of another tenant or app",
        ))
    }
}
