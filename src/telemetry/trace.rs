//! OpenTelemetry traces (every step of the request flow, started in `request_filter`, ended in
//! `logging`): one server span per request, a client span for the call to Dify, W3C `traceparent`
//! passed on to Dify, GenAI attributes from what the stream observer read. Spans go to an OTLP gRPC
//! collector when `telemetry.otlp_endpoint` is set; without it nothing is recorded.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracer, SdkTracerProvider};
use std::time::Duration;

/// The tracer and what keeps its exporter alive.
pub struct Otel {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    /// The tonic exporter's connection runs on this runtime; it must outlive the provider.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for Otel {
    /// Pingora may drop the last handle on one of its runtime threads, where dropping a runtime
    /// would panic: shut it down in the background instead.
    fn drop(&mut self) {
        let _ = self.provider.shutdown_with_timeout(Duration::from_secs(1));
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Otel {
    /// Builds the OTLP/gRPC exporter for `endpoint` on a runtime of its own.
    pub fn start(endpoint: &str, service_name: &str) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let exporter = runtime.block_on(async {
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .with_timeout(Duration::from_secs(3))
                .build()
        });
        let exporter = exporter.map_err(|e| e.to_string())?;
        let batch = BatchConfigBuilder::default()
            .with_scheduled_delay(Duration::from_millis(500))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(BatchSpanProcessor::new(exporter, batch))
            .with_resource(
                Resource::builder()
                    .with_service_name(service_name.to_string())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("dify-gateway");
        Ok(Self {
            provider,
            tracer,
            runtime: Some(runtime),
        })
    }

    /// Starts the server span of a request, continuing the caller's trace when it sent `traceparent`.
    pub fn server_span(&self, name: String, headers: &http::HeaderMap) -> Context {
        let parent = TraceContextPropagator::new().extract(&HeaderReader(headers));
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .start_with_context(&self.tracer, &parent);
        parent.with_span(span)
    }

    /// Starts the client span of the call to Dify under `server`.
    pub fn client_span(&self, name: String, server: &Context) -> Context {
        let span = self
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Client)
            .start_with_context(&self.tracer, server);
        server.with_span(span)
    }

    /// Exports what is queued (at shutdown; blocks).
    pub fn flush(&self) {
        let _ = self.provider.force_flush();
    }
}

/// Writes `traceparent` (and `tracestate`) for `cx` into an outgoing request.
pub fn inject(cx: &Context, req: &mut pingora::http::RequestHeader) {
    let mut writer = HeaderWriter(Vec::new());
    TraceContextPropagator::new().inject_context(cx, &mut writer);
    for (k, v) in writer.0 {
        let _ = req.insert_header(k, v);
    }
}

/// The trace id of `cx` (32 hex digits), when it has a valid span.
pub fn trace_id(cx: &Context) -> Option<String> {
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| sc.trace_id().to_string())
}

/// Sets attributes and ends the span of `cx`.
pub fn end(cx: &Context, attributes: Vec<KeyValue>) {
    let span = cx.span();
    span.set_attributes(attributes);
    span.end();
}

/// Renames the span of `cx` (once the route is known).
pub fn rename(cx: &Context, name: String) {
    cx.span().update_name(name);
}

struct HeaderReader<'a>(&'a http::HeaderMap);

impl Extractor for HeaderReader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeaderWriter(Vec<(String, String)>);

impl Injector for HeaderWriter {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_string(), value));
    }
}
