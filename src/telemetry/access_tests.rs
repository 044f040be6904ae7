//! The hand-built access line against the tracing formatter's line for the same event.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::telemetry::finished::UsageFacts;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

/// What the tracing formatter wrote, kept for the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The line the tracing formatter writes for `done` (the event the access log was before).
fn through_tracing(format: LogFormat, done: &Finished<'_>, trace_id: Option<&str>) -> String {
    let out = Captured::default();
    let sink = out.clone();
    let builder = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || sink.clone());
    let usage = done.usage.as_ref();
    let (tenant, app) = done.labels();
    let emit = || {
        tracing::info!(
            target: "access",
            request_id = %done.request_id,
            tenant,
            app,
            endpoint = done.endpoint,
            method = done.method,
            status = done.status,
            duration_ms = done.elapsed.as_secs_f64() * 1000.0,
            request_bytes = done.request_bytes,
            response_bytes = done.response_bytes,
            auth_failure = done.auth_failure,
            cache = done.cache,
            trace_id,
            prompt_tokens = usage.map(|u| u.prompt_tokens),
            completion_tokens = usage.map(|u| u.completion_tokens),
            upstream_failure = done.upstream_failure,
            error = done.error,
        );
    };
    match format {
        LogFormat::Json => {
            let s = builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .finish();
            tracing::subscriber::with_default(s, emit);
        }
        LogFormat::Text => tracing::subscriber::with_default(builder.finish(), emit),
    }
    let bytes = out.0.lock().clone();
    String::from_utf8(bytes).unwrap()
}

fn by_hand(format: LogFormat, done: &Finished<'_>, trace_id: Option<&str>) -> String {
    let mut buf = Vec::new();
    line(&mut buf, format, SystemTime::now(), done, trace_id);
    String::from_utf8(buf).unwrap()
}

/// The line without its timestamp (27 characters, where each format puts it).
fn untimed(format: LogFormat, line: &str) -> String {
    let at = match format {
        LogFormat::Json => "{\"timestamp\":\"".len(),
        LogFormat::Text => 0,
    };
    let stamp = &line[at..at + 27];
    assert!(stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T', "{line}");
    format!("{}{}", &line[..at], &line[at + 27..])
}

fn sample<'a>() -> Finished<'a> {
    Finished {
        request_id: "req-\"7\"",
        endpoint: "completion_messages",
        template: Some("/v1/completion-messages"),
        completion: true,
        method: "POST",
        status: 200,
        caller: Some(("acme", "wri\\ter ünï")),
        streaming: false,
        sse: false,
        elapsed: Duration::from_micros(12_345),
        request_bytes: 120,
        response_bytes: 4096,
        usage: Some(UsageFacts {
            prompt_tokens: 12,
            completion_tokens: 34,
            price: Some(0.5),
            currency: "USD",
        }),
        first_token: None,
        message_id: Some("m-1"),
        auth_failure: None,
        cache: Some("miss"),
        upstream_failure: None,
        error: Some("line\nbreak"),
    }
}

#[test]
fn the_line_is_the_tracing_formatters_in_both_formats() {
    let full = sample();
    let bare = Finished {
        caller: None,
        usage: None,
        cache: None,
        error: None,
        auth_failure: Some("expired"),
        upstream_failure: Some("timeout"),
        elapsed: Duration::from_nanos(1_500),
        ..sample()
    };
    for format in [LogFormat::Json, LogFormat::Text] {
        for (done, trace) in [(&full, Some("4bf92f3577b34da6a3ce929d0e0e4736")), (&bare, None)] {
            let want = untimed(format, &through_tracing(format, done, trace));
            let got = untimed(format, &by_hand(format, done, trace));
            assert_eq!(got, want, "{format:?}");
        }
    }
}

#[test]
fn json_lines_parse_and_carry_the_fields() {
    let line = by_hand(LogFormat::Json, &sample(), None);
    assert!(line.ends_with("}\n"));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["target"], "access");
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["tenant"], "acme");
    assert_eq!(v["request_id"], "req-\"7\"");
    assert_eq!(v["duration_ms"], 12.345);
    assert_eq!(v["completion_tokens"], 34);
    assert!(v.get("trace_id").is_none());
}
