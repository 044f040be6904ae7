//! The spans of a request (started in `request_filter`, the client span in `upstream_request_filter`,
//! both ended in `logging`): HTTP attributes, tenant and app, and the GenAI attributes of completions.

use super::finished::Finished;
use super::trace::{self as otel, Otel};
use opentelemetry::KeyValue;
use pingora::http::RequestHeader;
use pingora::proxy::Session;

/// The spans of one request (when tracing is on).
#[derive(Default)]
pub struct Traces {
    /// The server span.
    pub server: Option<opentelemetry::Context>,
    /// The client span of the call to Dify.
    pub client: Option<opentelemetry::Context>,
}

impl Traces {
    /// Starts the server span (continuing the caller's `traceparent`).
    pub fn start(&mut self, otel: Option<&Otel>, session: &Session) {
        if let Some(o) = otel {
            let req = session.req_header();
            self.server = Some(o.server_span(req.method.to_string(), &req.headers));
        }
    }

    /// Starts the client span of the call to Dify and passes its `traceparent` on.
    pub fn start_client(&mut self, otel: Option<&Otel>, req: &mut RequestHeader) {
        let (Some(o), Some(server)) = (otel, &self.server) else {
            return;
        };
        let client = o.client_span(req.method.to_string(), server);
        otel::inject(&client, req);
        self.client = Some(client);
    }

    /// The trace id, for the access log.
    pub fn trace_id(&self) -> Option<String> {
        self.server.as_ref().and_then(otel::trace_id)
    }

    /// Ends both spans with what the request turned out to be; `dify` gives Dify's host and port
    /// (asked only when tracing is on).
    pub fn end(&self, done: &Finished<'_>, dify: impl FnOnce() -> (String, u16)) {
        let Some(server) = &self.server else { return };
        if let Some(t) = done.template {
            otel::rename(server, format!("{} {t}", done.method));
        }
        let status = i64::from(done.status);
        if let Some(c) = &self.client {
            let dify = dify();
            otel::end(
                c,
                vec![
                    KeyValue::new("http.request.method", done.method.to_string()),
                    KeyValue::new("http.response.status_code", status),
                    KeyValue::new("server.address", dify.0),
                    KeyValue::new("server.port", i64::from(dify.1)),
                ],
            );
        }
        let mut attrs = vec![
            KeyValue::new("http.request.method", done.method.to_string()),
            KeyValue::new("http.response.status_code", status),
            KeyValue::new("dify_gateway.request_id", done.request_id.to_string()),
        ];
        if let Some(t) = done.template {
            attrs.push(KeyValue::new("http.route", t));
        }
        if let Some((tenant, app)) = done.caller {
            attrs.push(KeyValue::new("dify_gateway.tenant", tenant.to_string()));
            attrs.push(KeyValue::new("dify_gateway.app", app.to_string()));
        }
        if done.completion {
            attrs.extend(gen_ai(done));
        }
        otel::end(server, attrs);
    }
}

/// The GenAI attributes of a completion.
fn gen_ai(done: &Finished<'_>) -> Vec<KeyValue> {
    let mut attrs = vec![
        KeyValue::new("gen_ai.operation.name", "text_completion"),
        KeyValue::new("gen_ai.provider.name", "dify"),
    ];
    if let Some(u) = done.usage {
        attrs.push(KeyValue::new("gen_ai.usage.input_tokens", u.prompt_tokens as i64));
        attrs.push(KeyValue::new(
            "gen_ai.usage.output_tokens",
            u.completion_tokens as i64,
        ));
    }
    if let Some(m) = done.message_id {
        attrs.push(KeyValue::new("gen_ai.response.id", m.to_string()));
    }
    attrs
}
