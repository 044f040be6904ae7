//! Traces: with `telemetry.otlp_endpoint` set, a request yields a server span and a client span
//! (received here by an in-process OTLP/gRPC collector) with HTTP, tenant and GenAI attributes; the
//! trace continues the caller's `traceparent`, reaches Dify in `traceparent`, and names the log line.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::otlp::Collector;
use common::*;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::json;

fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            AnyValue::IntValue(i) => Some(i.to_string()),
            _ => None,
        }
    })
}

#[tokio::test]
async fn a_completion_is_traced_end_to_end() {
    let _bound = bound(120);
    let (addr, collector) = Collector::start().await;
    let env = Env::with_telemetry(Setup::default(), &format!("http://{addr}")).await;

    let parent_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let r = env
        .http
        .post(env.url("/v1/completion-messages"))
        .header("authorization", bearer(&token("acme", None)))
        .header("traceparent", format!("00-{parent_trace}-00f067aa0ba902b7-01"))
        .json(&json!({"inputs": {"topic": "tea"}, "response_mode": "streaming", "user": "bob"}))
        .send()
        .await
        .unwrap();
    let events = data_events(&r.text().await.unwrap());
    let message_id = events[0]["message_id"].as_str().unwrap().to_string();
    let usage = events.last().unwrap()["metadata"]["usage"].clone();

    let spans = eventually(15, "two spans", || {
        let s = collector.spans();
        (s.len() >= 2).then_some(s)
    })
    .await;
    let server = spans.iter().find(|s| s.kind == 2).expect("a server span");
    let client = spans.iter().find(|s| s.kind == 3).expect("a client span");
    assert_eq!(
        hex(&server.trace_id),
        parent_trace,
        "the caller's trace was not continued"
    );
    assert_eq!(client.trace_id, server.trace_id);
    assert_eq!(client.parent_span_id, server.span_id);
    assert_eq!(server.name, "POST /v1/completion-messages");
    for (k, v) in [
        ("http.request.method", "POST".to_string()),
        ("http.response.status_code", "200".to_string()),
        ("http.route", "/v1/completion-messages".to_string()),
        ("dify_gateway.tenant", "acme".to_string()),
        ("dify_gateway.app", "writer".to_string()),
        ("gen_ai.operation.name", "text_completion".to_string()),
        ("gen_ai.provider.name", "dify".to_string()),
        ("gen_ai.response.id", message_id),
        ("gen_ai.usage.input_tokens", usage["prompt_tokens"].to_string()),
        (
            "gen_ai.usage.output_tokens",
            usage["completion_tokens"].to_string(),
        ),
    ] {
        assert_eq!(attr(server, k).as_deref(), Some(v.as_str()), "{k}");
    }
    // Dify received the client span's context.
    let sent = env.sim.requests()[0].header("traceparent").unwrap().to_string();
    assert!(
        sent.starts_with(&format!("00-{parent_trace}-{}-", hex(&client.span_id))),
        "{sent}"
    );
    // The access log line names the trace.
    let log = env.gw.log();
    assert!(log.contains(&format!("\"trace_id\":\"{parent_trace}\"")), "{log}");
    // No secret in any span.
    let all = format!("{spans:?}");
    for secret in [KEY_ACME_WRITER, SECRET] {
        assert!(!all.contains(secret));
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
