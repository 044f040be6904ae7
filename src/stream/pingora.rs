//! The Pingora side of streams: `request_filter` learns whether the answer will stream,
//! `response_filter` picks the observer and marks streams unbuffered, `response_body_filter` feeds it
//! (recording ids as soon as they show and keeping the registry of running generations), and
//! `logging` stops a generation whose client left early.

use super::stop::{ActiveStreams, StopCause, StopTarget, Stopper};
use super::{EventKind, Observation, StreamState, Watch, watch};
use crate::admit::Caller;
use crate::admit::route::Endpoint;
use crate::config::StreamSettings;
use crate::ownership::Ownership;
use crate::telemetry::Metrics;
use pingora::http::ResponseHeader;
use pingora::{Error, ErrorSource, ErrorType};
use std::sync::Arc;
use std::time::Instant;

/// The process-lifetime parts of the stream step.
pub struct Streams {
    /// `[streams]`.
    pub settings: StreamSettings,
    /// Generations running behind open streams.
    pub active: Arc<ActiveStreams>,
    /// Sends stops to Dify.
    pub stopper: Arc<Stopper>,
    /// Where the ids a response hands out are recorded.
    pub ownership: Arc<Ownership>,
    /// Metric families.
    pub metrics: Metrics,
}

/// Who a response is for, as the stream step needs it.
#[derive(Clone, Copy)]
pub struct For<'a> {
    /// The endpoint.
    pub endpoint: Endpoint,
    /// The caller.
    pub caller: Option<&'a Caller>,
    /// The request id.
    pub request_id: &'a str,
}

impl Streams {
    /// Chooses the observer for Dify's response (`response_filter`) and marks streams as unbuffered.
    pub fn watch_response(
        &self,
        state: &mut StreamState,
        resp: &mut ResponseHeader,
        endpoint: Endpoint,
        started: Instant,
    ) -> pingora::Result<()> {
        let ctype = resp
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let (sse, audio) = (watch::is_event_stream(ctype), ctype.starts_with("audio/"));
        state.watch = Watch::choose(endpoint, resp.status.as_u16(), ctype, &self.settings, started);
        if sse {
            resp.insert_header("x-accel-buffering", "no")?;
            resp.insert_header("cache-control", "no-cache")?;
        }
        if sse || audio {
            state.streaming = true;
            self.metrics.active_streams.inc();
        }
        Ok(())
    }

    /// Reads one chunk of Dify's answer as it passes (`response_body_filter`), never changing it.
    pub fn observe(&self, state: &mut StreamState, chunk: Option<&[u8]>, eos: bool, who: For<'_>) {
        if let Some(done) = state.watch.feed(chunk, eos, Instant::now()) {
            if let Some(caller) = who.caller {
                self.record_blocking(caller, who.endpoint, &done);
            }
            state.seen = Some(done);
        } else {
            self.track(state, who);
        }
    }

    /// Records the ids a finished blocking body handed out.
    fn record_blocking(&self, caller: &Caller, endpoint: Endpoint, done: &Observation) {
        let owned = &self.ownership;
        match (endpoint, &done.id, &done.job_id) {
            (Endpoint::AnnotationCreate, Some(id), _) => owned.record_annotation(caller, id),
            (Endpoint::AnnotationReply, _, Some(job)) => owned.record_job(caller, job),
            (Endpoint::CompletionMessages, _, _) => {
                let (task, message) = (done.task_id.as_deref(), done.message_id.as_deref());
                owned.record_completion(caller, task, message);
            }
            _ => {}
        }
    }

    /// Follows a stream: records its ids as soon as they show, and keeps the registry of running
    /// generations (for stops at shutdown) up to date. Called for every chunk: the ids are copied
    /// once, when they first show.
    fn track(&self, state: &mut StreamState, who: For<'_>) {
        let Some(seen) = state.watch.stream() else { return };
        let done = seen.generation_done();
        if !state.recorded && seen.task_id.is_some() {
            state.recorded = true;
            if let Some(caller) = who.caller {
                let (task, message) = (seen.task_id.as_deref(), seen.message_id.as_deref());
                self.ownership.record_completion(caller, task, message);
            }
            if !done {
                let target = seen.task_id.clone().and_then(|t| stop_target(t, who));
                state.active = target.map(|t| self.active.insert(t));
            }
        }
        if done && let Some(handle) = state.active.take() {
            self.active.remove(handle);
        }
    }

    /// At the end of a request (`logging`): the stream leaves the registry and the gauge, its events
    /// are counted, and Dify's generation is stopped when the client left before it ended.
    pub fn finish(&self, state: &mut StreamState, e: Option<&Error>, who: For<'_>) {
        if state.streaming {
            self.metrics.active_streams.dec();
        }
        if let Some(handle) = state.active.take() {
            self.active.remove(handle);
        }
        let Some(seen) = state.watch.stream() else { return };
        for (kind, n) in EventKind::ALL.iter().zip(seen.counts) {
            self.metrics.sse_events(kind.label(), u64::from(n));
        }
        let cause = match e.map(|e| (e.esource(), e.etype())) {
            Some((ErrorSource::Downstream, _)) => Some(StopCause::Disconnect),
            Some((ErrorSource::Upstream, ErrorType::ReadTimedout)) => Some(StopCause::IdleTimeout),
            _ => None,
        };
        if let Some(cause) = cause
            && !seen.generation_done()
            && self.settings.stop_on_disconnect
            && let Some(t) = seen.task_id.clone().and_then(|task| stop_target(task, who))
        {
            self.stopper.stop_in_background(t, cause);
        }
    }
}

impl Streams {
    /// The event that ends a stream Dify broke off or left silent (`fail_to_proxy`, after the
    /// response head was sent): a Dify-shaped `error` event, so the client sees an end, not a cut.
    /// `None` when the stream had already ended, or the answer is not a completion stream.
    pub fn closing_event(&self, state: &StreamState, e: &Error) -> Option<bytes::Bytes> {
        let seen = state.watch.stream().filter(|s| !s.stream_ended())?;
        let (code, status, message) = match e.etype() {
            ErrorType::ReadTimedout => (
                "gateway_timeout",
                504,
                "Dify sent nothing for longer than the stream idle timeout",
            ),
            _ => ("bad_gateway", 502, "Dify closed the stream before it ended"),
        };
        let mut event = serde_json::json!({"event": "error"});
        if let Some(m) = &seen.message_id {
            event["message_id"] = serde_json::Value::from(m.as_str());
        }
        event["code"] = code.into();
        event["status"] = status.into();
        event["message"] = message.into();
        self.metrics.sse_events(EventKind::Error.label(), 1);
        Some(bytes::Bytes::from(format!("data: {event}\n\n")))
    }
}

/// What stopping the generation of `task_id` takes: the key and user it was started with.
fn stop_target(task_id: String, who: For<'_>) -> Option<StopTarget> {
    let caller = who.caller?;
    Some(StopTarget {
        task_id,
        api_key: caller.api_key().clone(),
        user: caller.dify_user.clone()?,
        request_id: who.request_id.to_string(),
    })
}
