//! The spans of a request (started in `request_filter`, the client span in `upstream_request_filter`,
//! both ended in `logging`): HTTP attributes, tenant and app, and the GenAI attributes of completions.

use super::Gateway;
use super::ctx::RequestCtx;
use crate::otel;
use crate::route::Endpoint;
use opentelemetry::KeyValue;
use pingora::http::RequestHeader;
use pingora::proxy::Session;

impl Gateway {
    /// Starts the server span (continuing the caller's `traceparent`).
    pub(super) fn start_trace(&self, session: &Session, ctx: &mut RequestCtx) {
        if let Some(o) = &self.otel {
            let req = session.req_header();
            ctx.trace = Some(o.server_span(req.method.to_string(), &req.headers));
        }
    }

    /// Starts the client span of the call to Dify and passes its `traceparent` on.
    pub(super) fn client_trace(&self, ctx: &mut RequestCtx, req: &mut RequestHeader) {
        let (Some(o), Some(server)) = (&self.otel, &ctx.trace) else {
            return;
        };
        let client = o.client_span(req.method.to_string(), server);
        otel::inject(&client, req);
        ctx.client_trace = Some(client);
    }

    /// Ends both spans with what the request turned out to be.
    pub(super) fn end_traces(&self, ctx: &RequestCtx, method: &str, status: u16) {
        let Some(server) = &ctx.trace else { return };
        let endpoint = ctx.route.as_ref().map(|r| r.endpoint);
        if let Some(e) = endpoint {
            otel::rename(server, format!("{method} {}", e.template()));
        }
        let mut attrs = vec![
            KeyValue::new("http.request.method", method.to_string()),
            KeyValue::new("http.response.status_code", i64::from(status)),
            KeyValue::new("dify_gateway.request_id", ctx.request_id.clone()),
        ];
        if let Some(e) = endpoint {
            attrs.push(KeyValue::new("http.route", e.template()));
        }
        if let Some((t, a)) = &ctx.tenant {
            attrs.push(KeyValue::new("dify_gateway.tenant", t.id.clone()));
            attrs.push(KeyValue::new("dify_gateway.app", a.name.clone()));
        }
        if let Some(c) = &ctx.client_trace {
            let up = vec![
                KeyValue::new("http.request.method", method.to_string()),
                KeyValue::new("http.response.status_code", i64::from(status)),
                KeyValue::new("server.address", self.upstream.settings().host.clone()),
                KeyValue::new("server.port", i64::from(self.upstream.settings().port)),
            ];
            otel::end(c, up);
        }
        if endpoint == Some(Endpoint::CompletionMessages) {
            attrs.push(KeyValue::new("gen_ai.operation.name", "text_completion"));
            attrs.push(KeyValue::new("gen_ai.provider.name", "dify"));
            if let Some(seen) = ctx.observation() {
                if let Some(u) = &seen.usage {
                    attrs.push(KeyValue::new("gen_ai.usage.input_tokens", u.prompt_tokens as i64));
                    attrs.push(KeyValue::new(
                        "gen_ai.usage.output_tokens",
                        u.completion_tokens as i64,
                    ));
                }
                if let Some(m) = &seen.message_id {
                    attrs.push(KeyValue::new("gen_ai.response.id", m.clone()));
                }
            }
        }
        otel::end(server, attrs);
    }
}
