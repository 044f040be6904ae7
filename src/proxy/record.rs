//! Bookkeeping on what Dify's responses said (response steps and `logging`): ownership of the ids it
//! handed out, the registry of running generations, stops for abandoned streams, and stream metrics.

use super::Gateway;
use super::ctx::RequestCtx;
use crate::ownership::Kind;
use crate::route::Endpoint;
use crate::stopper::{StopCause, StopTarget};
use crate::stream::{EventKind, Observation};
use pingora::{Error, ErrorSource, ErrorType};

impl Gateway {
    /// Records the ids of a finished blocking body (completion or annotation creation).
    pub(super) fn record_blocking(&self, ctx: &mut RequestCtx, seen: Observation) {
        let Some(owner) = ctx.owner() else { return };
        let endpoint = ctx.route.as_ref().map(|r| r.endpoint);
        if endpoint == Some(Endpoint::AnnotationCreate) {
            if let Some(id) = &seen.id {
                self.ownership.record(Kind::Annotation, id, owner);
            }
        } else {
            if let Some(t) = &seen.task_id {
                self.ownership.record(Kind::Task, t, owner.clone());
            }
            if let Some(m) = &seen.message_id {
                self.ownership.record(Kind::Message, m, owner);
            }
        }
        ctx.seen = Some(seen);
    }

    /// Follows a stream: records its ids as soon as they show, and keeps the registry of running
    /// generations (for stops at shutdown) up to date.
    pub(super) fn track_stream(&self, ctx: &mut RequestCtx) {
        let Some(seen) = ctx.watch.stream() else { return };
        let done = seen.generation_done();
        // Called for every chunk: the ids are copied once, when they first show.
        if !ctx.recorded && seen.task_id.is_some() {
            let (task, message) = (seen.task_id.clone(), seen.message_id.clone());
            ctx.recorded = true;
            if let Some(owner) = ctx.owner() {
                if let Some(t) = &task {
                    self.ownership.record(Kind::Task, t, owner.clone());
                }
                if let Some(m) = &message {
                    self.ownership.record(Kind::Message, m, owner);
                }
            }
            if !done {
                ctx.active = self.stop_target(ctx, task).map(|t| self.active.insert(t));
            }
        }
        if done && let Some(handle) = ctx.active.take() {
            self.active.remove(handle);
        }
    }

    fn stop_target(&self, ctx: &RequestCtx, task_id: Option<String>) -> Option<StopTarget> {
        Some(StopTarget {
            task_id: task_id?,
            api_key: ctx.api_key()?.clone(),
            user: ctx.dify_user.clone()?,
        })
    }

    /// At the end of a stream: counts its events, and stops Dify's generation when the client left
    /// before it ended.
    pub(super) fn finish_stream(&self, ctx: &mut RequestCtx, e: Option<&Error>) {
        if let Some(handle) = ctx.active.take() {
            self.active.remove(handle);
        }
        let Some(seen) = ctx.watch.stream() else { return };
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
            && self.streams.stop_on_disconnect
            && let Some(t) = self.stop_target(ctx, seen.task_id.clone())
        {
            self.stopper.stop_in_background(t, cause);
        }
    }

    /// Tokens, cost, time to first token and stream lifetime, from what Dify reported.
    pub(super) fn record_usage(&self, ctx: &RequestCtx) {
        let (Some(seen), Some((t, a))) = (ctx.observation(), &ctx.tenant) else {
            return;
        };
        if let Some(u) = &seen.usage {
            let price = u.total_price.as_deref().and_then(|p| p.parse::<f64>().ok());
            let currency = u.currency.as_deref().unwrap_or("");
            self.metrics.usage(
                &t.id,
                &a.name,
                u.prompt_tokens,
                u.completion_tokens,
                price.map(|p| (p, currency)),
            );
        }
        if ctx.watch.stream().is_some() {
            let ttft = seen.first_content.map(|d| d.as_secs_f64());
            self.metrics
                .stream(&t.id, &a.name, ttft, ctx.start.elapsed().as_secs_f64());
        }
    }

    /// Bookkeeping that depends on Dify's final status.
    pub(super) async fn after_response(&self, ctx: &RequestCtx, status: u16) {
        let Some(route) = &ctx.route else { return };
        match (route.endpoint, status) {
            (Endpoint::Stop, 200) if ctx.answer.is_none() => self.metrics.stop(StopCause::Client.label()),
            (Endpoint::AnnotationDelete, 204) => {
                if let Some(id) = &route.id {
                    self.ownership.forget(Kind::Annotation, id).await;
                }
            }
            _ => {}
        }
    }
}
