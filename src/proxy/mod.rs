//! `Gateway`: the Pingora `ProxyHttp` implementation. Each phase reads top to bottom as the request
//! flow and calls the steps, whose Pingora sides live beside their logic: `admit`, `scope`,
//! `ownership`, `stream`, `cache`, `upstream`, `respond`, `telemetry` (recorded once, in `logging`).

mod ctx;

pub use ctx::{Outcome, RequestCtx, Timing};

use crate::admit::auth::Authenticator;
use crate::admit::pingora::admit_request;
use crate::admit::route::Endpoint;
use crate::admit::snapshot::SharedSnapshot;
use crate::background::drain::{InFlight, Requests};
use crate::cache::MetadataCache;
use crate::cache::serve::answer_from_cache;
use crate::config::cidr::Cidr;
use crate::limits::{self, Limiter};
use crate::ownership::Ownership;
use crate::ownership::guard::{guard_message, guard_path};
use crate::respond::{self, Flow, LocalAnswer, UpstreamFailure};
use crate::scope::BodyFacts;
use crate::scope::pingora::{BodyLimits, BodyRefused, filter_body, plan_body, scope_whole};
use crate::stream::Streams;
use crate::stream::mode::{expects_stream, read_early};
use crate::stream::stop::StopCause;
use crate::telemetry::trace::Otel;
use crate::telemetry::{Metrics, access};
use crate::upstream::Upstream;
use crate::upstream::pingora::Outgoing;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pingora error type for a request the gateway answers itself from a body filter; the answer is in
/// `ctx.outcome.answer`.
pub const ANSWERED: ErrorType = ErrorType::Custom("answered_by_gateway");

/// The tenant-facing proxy and the process-lifetime parts every request uses.
pub struct Gateway {
    /// Tenants, apps and keys in force.
    pub snapshot: Arc<SharedSnapshot>,
    /// Verifies credentials (verified-token cache, identity providers' keys).
    pub auth: Arc<Authenticator>,
    /// The tenants' limits.
    pub limiter: Arc<Limiter>,
    /// The Dify origin.
    pub upstream: Arc<Upstream>,
    /// Metric families.
    pub metrics: Metrics,
    /// Body size limits.
    pub limits: BodyLimits,
    /// `server.trusted_proxies`.
    pub trusted_proxies: Vec<Cidr>,
    /// Who owns which task, message and annotation ids.
    pub ownership: Arc<Ownership>,
    /// Observers, the registry of running generations and stops.
    pub streams: Streams,
    /// The metadata cache (`None` when turned off).
    pub cache: Option<Arc<MetadataCache>>,
    /// Traces (`None` without `telemetry.otlp_endpoint`).
    pub otel: Option<Arc<Otel>>,
    /// Requests in flight (a graceful stop ends when none is left).
    pub requests: Arc<Requests>,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.snapshot.load(), InFlight::enter(&self.requests))
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.trace.start(self.otel.as_deref(), session);
        if self.admit(session, ctx).await? == Flow::Answered {
            return Ok(true);
        }
        if self.limit(session, ctx).await? == Flow::Answered {
            return Ok(true);
        }
        if ctx.route.as_ref().is_some_and(|r| r.endpoint.public()) {
            // A signed file link: its bytes pass through as they come, under the stream timeout.
            ctx.stream.expects = true;
            return Ok(false);
        }
        let (Some(route), Some(caller)) = (&ctx.route, ctx.caller.as_mut()) else {
            return Ok(true);
        };
        if plan_body(session, route, caller, &mut ctx.body, &ctx.request_id).await? == Flow::Answered {
            return Ok(true);
        }
        if let Some(answer) = guard_path(route, caller, &self.ownership).await {
            respond::send(session, &answer, &ctx.request_id).await?;
            return Ok(true);
        }
        self.body_early(session, ctx).await?;
        self.cached(session, ctx).await
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        self.upstream
            .peer_for(&mut ctx.upstream, ctx.stream.expects)
            .await
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        let replayable = !session.as_ref().retry_buffer_truncated();
        self.upstream
            .connect_failed(&mut ctx.upstream, peer, &mut e, replayable);
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let public = ctx.route.as_ref().is_some_and(|r| r.endpoint.public());
        let api_key = ctx.api_key();
        if api_key.is_none() && !public {
            return Err(Error::explain(ErrorType::InternalError, "no app resolved"));
        }
        let out = Outgoing {
            api_key,
            request_id: &ctx.request_id,
            body_read_early: ctx.body.read_early,
            body_rewritten: ctx.body.plan.rewrites(),
            body_length: ctx.body.plan.ready_len(),
            trusted_proxies: &self.trusted_proxies,
            lease: ctx.upstream.lease.as_ref(),
        };
        self.upstream.rewrite_head(session, req, &out)?;
        ctx.timing.upstream_start = Some(Instant::now());
        ctx.trace.start_client(self.otel.as_deref(), req);
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        eos: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        match filter_body(&mut ctx.body, body, eos, ctx.caller.as_mut(), self.limits) {
            Ok(facts) => self.check_body(ctx, facts.as_ref()).await,
            Err(refused) => body_refused(ctx, refused),
        }
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(start) = ctx.timing.upstream_start {
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
        if let Some(r) = ctx.limit.as_ref().and_then(|g| g.header.as_deref()) {
            resp.insert_header("ratelimit", r)?;
        }
        match ctx.route.as_ref().map(|r| r.endpoint) {
            Some(e) => self
                .streams
                .watch_response(&mut ctx.stream, resp, e, ctx.timing.start),
            None => Ok(()),
        }
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        eos: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Duration>> {
        if let Some((state, who)) = ctx.stream_parts() {
            self.streams.observe(state, body.as_deref(), eos, who);
        }
        Ok(None)
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        _session: &mut Session,
        e: Box<Error>,
        _ctx: &mut RequestCtx,
        _client_reused: bool,
    ) -> Box<Error> {
        // Bytes may have reached Dify: a completion must never run twice, so nothing is retried.
        let mut e = e.more_context(format!("Peer: {peer}"));
        e.set_retry(false);
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        let answer = self.failure_answer(e, ctx);
        let code = answer.as_ref().map_or(0, |a| a.status);
        let written = match (&answer, final_response(session)) {
            (Some(answer), None) => respond::send(session, answer, &ctx.request_id).await,
            // A stream already under way ends with an event, not a cut.
            (Some(_), Some(_)) => match self.streams.closing_event(&ctx.stream, e) {
                Some(event) => session.write_response_body(Some(event), true).await,
                None => Ok(()),
            },
            (None, _) => Ok(()),
        };
        if let Err(write_err) = written {
            tracing::debug!(message = "Could not send error response.", error = %write_err);
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = final_response(session).map_or(0, |r| r.status.as_u16());
        if let Some((state, who)) = ctx.stream_parts() {
            self.streams.finish(state, e, who);
        }
        if let Some(route) = &ctx.route {
            self.ownership.forget_deleted(route, status).await;
        }
        self.count_client_stop(ctx, status);
        let grant = ctx.limit.take();
        let method = session.req_header().method.as_str();
        let done = ctx.finished(
            method,
            status,
            session.body_bytes_sent(),
            e.map(|e| e.etype().as_str()),
        );
        self.metrics.record_finished(&done);
        let replica = ctx.upstream.lease.as_ref().map(|l| l.replica().clone());
        if let Some(r) = &replica
            && ctx.timing.upstream_start.is_some()
            && !r.is_removed()
        {
            self.metrics.upstream_request(&r.label, status);
        }
        let dify = || {
            replica.map_or_else(
                || {
                    let origin = self.upstream.settings().origin();
                    (origin.host.clone(), origin.port)
                },
                |r| (r.addr.ip().to_string(), r.addr.port()),
            )
        };
        ctx.trace.end(&done, dify);
        access::log(&done, ctx.trace.trace_id().as_deref());
        if let Some(grant) = grant {
            let produced = done.first_token.is_some();
            let spent = limits::pingora::spent(done.usage.as_ref(), produced, grant.reserve);
            self.limiter.release(&grant, spent).await;
        }
    }
}

/// Ends the request for a body that may not go to Dify.
fn body_refused(ctx: &mut RequestCtx, refused: BodyRefused) -> Result<()> {
    match refused {
        BodyRefused::TooLarge => Err(Error::explain(
            ErrorType::HTTPStatus(413),
            "request body over the cap",
        )),
        BodyRefused::Answer(a) => answered(ctx, a),
    }
}

/// Ends the request with `answer` (through `fail_to_proxy`).
fn answered(ctx: &mut RequestCtx, answer: LocalAnswer) -> Result<()> {
    ctx.outcome.answer = Some(answer);
    Err(Error::explain(ANSWERED, "request answered by the gateway"))
}

impl Gateway {
    /// Admission: the request id, route and caller go into the context.
    async fn admit(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<Flow> {
        let a = admit_request(session, &ctx.snapshot, &self.auth, self.limits.max_request_body).await?;
        (ctx.request_id, ctx.route, ctx.caller) = (a.request_id, a.route, a.caller);
        ctx.outcome.auth_failure = a.auth_failure;
        if let Some(r) = a.reason {
            self.metrics.auth_failure(r);
        }
        Ok(a.flow)
    }

    /// The tenant's limits: a claim on them goes into the context, or the refusal is answered.
    async fn limit(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<Flow> {
        let (Some(route), Some(caller)) = (&ctx.route, &ctx.caller) else {
            return Ok(Flow::Next);
        };
        let (grant, flow) =
            limits::pingora::check(&self.limiter, session, route, caller, &ctx.request_id).await?;
        ctx.limit = grant;
        Ok(flow)
    }

    /// A completion body Pingora can replay is read whole and scoped now, once: its mode chooses the
    /// stream timeout, and what Dify gets goes with its own length. Refusals end the request here.
    async fn body_early(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        let Some(endpoint) = ctx.route.as_ref().map(|r| r.endpoint) else {
            return Ok(());
        };
        let early = read_early(session, endpoint).await?;
        ctx.body.read_early = early.is_some();
        let facts = match early {
            Some(whole) => match scope_whole(&mut ctx.body, whole, ctx.caller.as_mut(), self.limits) {
                Ok(facts) => facts,
                Err(refused) => return body_refused(ctx, refused),
            },
            None => None,
        };
        ctx.stream.expects = expects_stream(endpoint, facts.as_ref());
        self.check_body(ctx, facts.as_ref()).await
    }

    /// A message the body names must be the caller's.
    async fn check_body(&self, ctx: &mut RequestCtx, facts: Option<&BodyFacts>) -> Result<()> {
        let mid = facts.and_then(|f| f.message_id.as_deref());
        let Some(c) = ctx.caller.as_ref() else {
            return Ok(());
        };
        match guard_message(mid, c, &self.ownership).await {
            Some(a) => answered(ctx, a),
            None => Ok(()),
        }
    }

    /// The metadata cache answers its endpoints; `Ok(false)` when the request goes to Dify.
    async fn cached(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let (Some(cache), Some(route), Some(key)) = (&self.cache, &ctx.route, ctx.api_key()) else {
            return Ok(false);
        };
        let key = key.expose().to_string();
        let ratelimit = ctx.limit.as_ref().and_then(|g| g.header.as_deref());
        let out = answer_from_cache(cache, session, route.endpoint, &key, &ctx.request_id, ratelimit).await?;
        (ctx.outcome.cache_status, ctx.outcome.upstream_failure) = (out.status, out.failure);
        Ok(out.flow == Flow::Answered)
    }

    /// The answer for a failed request: a body filter's refusal, or the classified failure.
    fn failure_answer(&self, e: &Error, ctx: &mut RequestCtx) -> Option<LocalAnswer> {
        if *e.etype() == ANSWERED
            && let Some(a) = ctx.outcome.answer.take()
        {
            return Some(a);
        }
        let (answer, failure) = respond::classify(e.etype(), e.esource());
        if let Some(f) = failure {
            ctx.outcome.upstream_failure = Some(f);
            self.metrics.upstream_error(f.label());
        }
        let mut answer = answer.as_ref().map(LocalAnswer::from);
        if let (Some(a), Some(UpstreamFailure::Saturated)) = (answer.as_mut(), failure) {
            a.headers.push(("retry-after", "1".into()));
        }
        answer
    }

    /// A client's own stop that reached Dify and that Dify accepted is counted (`logging`); one
    /// answered here (an unknown or foreign task) is not.
    fn count_client_stop(&self, ctx: &RequestCtx, status: u16) {
        let stop = ctx.route.as_ref().map(|r| r.endpoint) == Some(Endpoint::Stop);
        if stop && status == 200 && ctx.timing.upstream_start.is_some() {
            self.metrics.stop(StopCause::Client.label());
        }
    }
}

/// The final response head sent to the client, if any (a `100 Continue` is not one).
fn final_response(session: &Session) -> Option<&ResponseHeader> {
    session
        .response_written()
        .filter(|r| !r.status.is_informational())
}
