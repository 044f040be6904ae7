//! Per-request state carried through the Pingora phases (created in `new_ctx`, where the snapshot is
//! loaded once and kept to the end of the request). Grouped by concern; each group is filled by the
//! step that owns it.

use crate::admit::Caller;
use crate::admit::auth::AuthError;
use crate::admit::route::{Endpoint, Route};
use crate::admit::snapshot::Snapshot;
use crate::background::drain::InFlight;
use crate::limits::limiter::Grant;
use crate::respond::{LocalAnswer, UpstreamFailure};
use crate::scope::BodyState;
use crate::secret::Secret;
use crate::stream::{For, Observation, StreamState};
use crate::telemetry::finished::{Finished, UsageFacts};
use crate::telemetry::spans::Traces;
use crate::upstream::pingora::Held;
use std::sync::Arc;
use std::time::Instant;

/// What one request has learned so far.
pub struct RequestCtx {
    /// The snapshot this request uses from start to end.
    pub snapshot: Arc<Snapshot>,
    /// The request id returned to the client and sent to Dify (admit).
    pub request_id: String,
    /// The classified endpoint, once known (admit).
    pub route: Option<Route>,
    /// Who calls: tenant, app, the key and user Dify sees (admit, ownership, scope).
    pub caller: Option<Caller>,
    /// The claim on the tenant's limits, released when the request ends (limits).
    pub limit: Option<Grant>,
    /// The Dify replica it goes to (in flight there until the request ends), and those that
    /// refused it (upstream).
    pub upstream: Held,
    /// The request body on its way to Dify (scope).
    pub body: BodyState,
    /// Dify's response as it passes (stream).
    pub stream: StreamState,
    /// When things happened.
    pub timing: Timing,
    /// How the request ended, for metrics and the access log.
    pub outcome: Outcome,
    /// The spans of this request (telemetry).
    pub trace: Traces,
    /// Counts this request in flight until the context is dropped.
    _in_flight: InFlight,
}

/// When the request and its call to Dify started.
pub struct Timing {
    /// When the request started.
    pub start: Instant,
    /// When the request to Dify was sent.
    pub upstream_start: Option<Instant>,
}

/// Facts about the end of a request that are not in the response itself.
#[derive(Default)]
pub struct Outcome {
    /// The answer to give instead of Dify's, when a body filter refused the request.
    pub answer: Option<LocalAnswer>,
    /// Why auth refused the call.
    pub auth_failure: Option<AuthError>,
    /// Why the upstream failed.
    pub upstream_failure: Option<UpstreamFailure>,
    /// How the metadata cache answered.
    pub cache_status: Option<&'static str>,
}

impl RequestCtx {
    /// A fresh context over `snapshot`.
    pub fn new(snapshot: Arc<Snapshot>, in_flight: InFlight) -> Self {
        Self {
            _in_flight: in_flight,
            snapshot,
            request_id: String::new(),
            route: None,
            caller: None,
            limit: None,
            upstream: Held::default(),
            body: BodyState::default(),
            stream: StreamState::default(),
            timing: Timing {
                start: Instant::now(),
                upstream_start: None,
            },
            outcome: Outcome::default(),
            trace: Traces::default(),
        }
    }

    /// Endpoint label.
    pub fn endpoint(&self) -> &'static str {
        self.route
            .as_ref()
            .map(|r| r.endpoint.name())
            .unwrap_or("unmatched")
    }

    /// What Dify's completion said: the stream seen so far, or the finished blocking body.
    pub fn observation(&self) -> Option<&Observation> {
        self.stream.observation()
    }

    /// The app key Dify sees for this request.
    pub fn api_key(&self) -> Option<&Secret> {
        self.caller.as_ref().map(Caller::api_key)
    }
}

impl RequestCtx {
    /// The stream state and who the response is for, as the stream step needs them (`None` before
    /// routing).
    pub fn stream_parts(&mut self) -> Option<(&mut StreamState, For<'_>)> {
        let who = For {
            endpoint: self.route.as_ref()?.endpoint,
            caller: self.caller.as_ref(),
            request_id: &self.request_id,
        };
        Some((&mut self.stream, who))
    }

    /// The finished request as telemetry records it.
    pub fn finished<'a>(
        &'a self,
        method: &'a str,
        status: u16,
        sent: usize,
        error: Option<&'a str>,
    ) -> Finished<'a> {
        let endpoint = self.route.as_ref().map(|r| r.endpoint);
        let caller = self.caller.as_ref();
        let seen = caller.and(self.observation());
        let usage = seen.and_then(|o| o.usage.as_ref()).map(|u| UsageFacts {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            price: u.total_price.as_deref().and_then(|p| p.parse::<f64>().ok()),
            currency: u.currency.as_deref().unwrap_or(""),
        });
        let out = &self.outcome;
        Finished {
            request_id: &self.request_id,
            endpoint: self.endpoint(),
            template: endpoint.map(Endpoint::template),
            completion: endpoint == Some(Endpoint::CompletionMessages),
            method,
            status,
            caller: caller.map(|c| (c.tenant.id.as_str(), c.app.name.as_str())),
            streaming: self.stream.streaming,
            sse: caller.is_some() && self.stream.watch.stream().is_some(),
            elapsed: self.timing.start.elapsed(),
            request_bytes: self.body.bytes,
            response_bytes: sent,
            usage,
            first_token: seen.and_then(|o| o.first_content),
            message_id: seen.and_then(|o| o.message_id.as_deref()),
            auth_failure: out.auth_failure.map(|a| a.reason()),
            cache: out.cache_status,
            upstream_failure: out.upstream_failure.map(|f| f.label()),
            error,
        }
    }
}
