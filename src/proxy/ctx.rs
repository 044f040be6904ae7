//! Per-request state carried through the Pingora phases, grouped by concern. Created in `new_ctx`
//! (the snapshot is loaded once here and used to the end of the request).

use super::body::BodyPlan;
use super::respond::LocalAnswer;
use super::watch::Watch;
use crate::auth::AuthError;
use crate::error::UpstreamFailure;
use crate::ownership::Owner;
use crate::route::Route;
use crate::secret::Secret;
use crate::state::{App, Snapshot, Tenant};
use crate::stream::Observation;
use std::sync::Arc;
use std::time::Instant;

/// What one request has learned so far.
pub struct RequestCtx {
    /// The snapshot this request uses from start to end.
    pub snapshot: Arc<Snapshot>,
    /// When the request started.
    pub start: Instant,
    /// The request id returned to the client and sent to Dify.
    pub request_id: String,
    /// The classified endpoint, once known.
    pub route: Option<Route>,
    /// The caller's tenant and app, once resolved.
    pub tenant: Option<(Arc<Tenant>, Arc<App>)>,
    /// A different app key for Dify (a stop goes with the key its task was started with).
    pub key_override: Option<Secret>,
    /// How the request body is handled.
    pub body: BodyPlan,
    /// Request body bytes received so far.
    pub body_bytes: u64,
    /// `user` as Dify sees it, once the body has been read.
    pub dify_user: Option<String>,
    /// The answer to give instead of Dify's, when a body filter refuses the request.
    pub answer: Option<LocalAnswer>,
    /// What is read from Dify's response.
    pub watch: Watch,
    /// What a finished blocking body said.
    pub seen: Option<Observation>,
    /// The response's ids have been recorded.
    pub recorded: bool,
    /// Handle in the active-stream registry while a generation runs.
    pub active: Option<u64>,
    /// The response is a stream (SSE or audio) and counted in `active_streams`.
    pub streaming: bool,
    /// Why auth refused the call, for metrics.
    pub auth_failure: Option<AuthError>,
    /// Why the upstream failed, for metrics.
    pub upstream_failure: Option<UpstreamFailure>,
    /// How the metadata cache answered, for the access log.
    pub cache_status: Option<&'static str>,
    /// The answer will be a stream: upstream reads wait `stream_idle_timeout` at most.
    pub expects_stream: bool,
    /// The body was read in `request_filter` and is replayed from Pingora's buffer.
    pub body_read_early: bool,
    /// When the request to Dify was sent.
    pub upstream_start: Option<Instant>,
    /// The server span (when tracing is on).
    pub trace: Option<opentelemetry::Context>,
    /// The client span of the call to Dify.
    pub client_trace: Option<opentelemetry::Context>,
}

impl RequestCtx {
    /// A fresh context over `snapshot`.
    pub fn new(snapshot: Arc<Snapshot>) -> Self {
        Self {
            snapshot,
            start: Instant::now(),
            request_id: String::new(),
            route: None,
            tenant: None,
            key_override: None,
            body: BodyPlan::Pass,
            body_bytes: 0,
            dify_user: None,
            answer: None,
            watch: Watch::Nothing,
            seen: None,
            recorded: false,
            active: None,
            streaming: false,
            auth_failure: None,
            upstream_failure: None,
            cache_status: None,
            expects_stream: false,
            body_read_early: false,
            upstream_start: None,
            trace: None,
            client_trace: None,
        }
    }

    /// Endpoint label.
    pub fn endpoint(&self) -> &'static str {
        self.route
            .as_ref()
            .map(|r| r.endpoint.name())
            .unwrap_or("unmatched")
    }

    /// Tenant and app labels (configured names only, else `none`).
    pub fn tenant_app(&self) -> (&str, &str) {
        match &self.tenant {
            Some((t, a)) => (t.id.as_str(), a.name.as_str()),
            None => ("none", "none"),
        }
    }

    /// The owner record for ids this response hands out.
    pub fn owner(&self) -> Option<Arc<Owner>> {
        let (t, a) = self.tenant.as_ref()?;
        Some(Arc::new(Owner {
            tenant: t.id.clone(),
            app: a.name.clone(),
            user: self.dify_user.clone(),
        }))
    }

    /// What Dify's completion said: the stream seen so far, or the finished blocking body.
    pub fn observation(&self) -> Option<&Observation> {
        self.watch.stream().or(self.seen.as_ref())
    }

    /// The app key Dify sees for this request.
    pub fn api_key(&self) -> Option<&Secret> {
        self.key_override
            .as_ref()
            .or(self.tenant.as_ref().map(|(_, a)| &a.api_key))
    }
}
