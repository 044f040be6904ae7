//! Observer tests against the shared example streams (tests/fixtures/sse), fed whole and in pieces.
#![allow(clippy::unwrap_used)]

use super::*;

const NORMAL: &[u8] = include_bytes!("../../tests/fixtures/sse/normal.sse");
const ERROR: &[u8] = include_bytes!("../../tests/fixtures/sse/error.sse");
const TTS: &[u8] = include_bytes!("../../tests/fixtures/sse/tts_autoplay.sse");
const STOPPED: &[u8] = include_bytes!("../../tests/fixtures/sse/stopped.sse");

fn observe(body: &[u8], chunk: usize) -> Observation {
    let start = Instant::now();
    let mut o = SseObserver::new(64 * 1024, start);
    for c in body.chunks(chunk) {
        o.on_chunk(c, start + Duration::from_millis(5));
    }
    o.seen
}

#[test]
fn reads_ids_usage_and_counts_whatever_the_chunking() {
    for chunk in [1, 7, 64, 4096, NORMAL.len()] {
        let s = observe(NORMAL, chunk);
        assert_eq!(
            s.task_id.as_deref(),
            Some("2f7c9a4e-6b1d-4c83-9e25-7d0a1b3c5e8f"),
            "chunk {chunk}"
        );
        assert_eq!(
            s.message_id.as_deref(),
            Some("b5e1d3a2-90c4-4f6b-8a7e-13c2d4e5f607")
        );
        assert_eq!(s.count(EventKind::Ping), 1);
        assert_eq!(s.count(EventKind::Message), 23);
        assert_eq!(s.terminal, Some(EventKind::MessageEnd));
        assert_eq!(s.first_content, Some(Duration::from_millis(5)));
        assert!(s.generation_done());
        let u = s.usage.unwrap();
        assert_eq!(
            (u.prompt_tokens, u.completion_tokens, u.total_tokens),
            (1213, 86, 1299)
        );
        assert_eq!(u.total_price.as_deref(), Some("0.0002336"));
        assert_eq!(u.currency.as_deref(), Some("USD"));
    }
}

#[test]
fn error_stream_is_terminal_without_usage() {
    let s = observe(ERROR, 13);
    assert_eq!(s.terminal, Some(EventKind::Error));
    assert_eq!(s.error_code.as_deref(), Some("completion_request_error"));
    assert_eq!(s.task_id.as_deref(), Some("a9d8c7b6-5e4f-4a3b-9c2d-1e0f9a8b7c6d"));
    assert!(s.usage.is_none());
    assert!(s.generation_done());
}

#[test]
fn tts_autoplay_ends_with_tts_message_end_after_message_end() {
    let s = observe(TTS, 100);
    assert_eq!(s.terminal, Some(EventKind::TtsMessageEnd));
    assert_eq!(s.count(EventKind::MessageEnd), 1);
    assert!(s.count(EventKind::TtsMessage) >= 5);
    assert_eq!(s.usage.unwrap().total_tokens, 431);
}

#[test]
fn a_cut_stream_is_not_done() {
    let s = observe(&STOPPED[..STOPPED.len() / 2], 50);
    assert!(s.task_id.is_some());
    assert!(!s.generation_done());
    assert!(s.terminal.is_none());
}

#[test]
fn blocking_body_and_its_cap() {
    let body = br#"{"event": "message", "task_id": "t-1", "id": "m-1", "message_id": "m-1", "mode": "completion", "answer": "x", "metadata": {"annotation_reply": null, "retriever_resources": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "total_price": "0.0000010", "currency": "USD", "latency": 0.5}}, "created_at": 1}"#;
    let mut o = BlockingObserver::new(4096);
    for c in body.chunks(10) {
        o.on_chunk(c);
    }
    let s = o.finish();
    assert_eq!(
        (s.task_id.as_deref(), s.message_id.as_deref()),
        (Some("t-1"), Some("m-1"))
    );
    assert_eq!(s.usage.unwrap().total_tokens, 7);
    let mut small = BlockingObserver::new(16);
    small.on_chunk(body);
    assert!(small.finish().task_id.is_none());
    // Bytes that are not UTF-8 in a value nobody reads do not hide the ids (read as bytes then).
    let mut odd = body.to_vec();
    let x = odd.windows(5).position(|w| w == br#""x", "#).unwrap() + 1;
    odd[x] = 0xff;
    assert!(std::str::from_utf8(&odd).is_err());
    let mut o = BlockingObserver::new(4096);
    o.on_chunk(&odd);
    assert_eq!(o.finish().task_id.as_deref(), Some("t-1"));
}

#[test]
fn an_event_over_the_cap_still_counts_as_what_it_is() {
    let start = Instant::now();
    let mut o = SseObserver::new(64, start);
    let cut = STOPPED[..STOPPED.len() / 3]
        .windows(2)
        .rposition(|w| w == b"\n\n")
        .unwrap()
        + 2;
    let mut big = STOPPED[..cut].to_vec();
    big.extend_from_slice(
        br#"data: {"event":"message_end","message_id":"m","task_id":"t","metadata":{"pad":""#,
    );
    big.extend_from_slice(&[b'x'; 500]);
    big.extend_from_slice(b"\"}}\n\n");
    o.on_chunk(&big, start);
    assert_eq!(o.seen.terminal, Some(EventKind::MessageEnd));
    assert!(
        o.seen.generation_done(),
        "a cut message_end must still end the generation"
    );
}

#[test]
fn an_annotations_id_is_read_however_long_the_answer() {
    let id = "0b6b8e21-8c3c-4d3c-9a1e-5f7b2f2f1a01";
    let answer = "x".repeat(200_000);
    let body = format!("{{\"id\":\"{id}\",\"question\":\"q\",\"answer\":\"{answer}\",\"hit_count\":0}}");
    for cap in [1024 * 1024, 64 * 1024] {
        let mut o = BlockingObserver::new(cap);
        for chunk in body.as_bytes().chunks(7000) {
            o.on_chunk(chunk);
        }
        assert_eq!(o.finish().id.as_deref(), Some(id), "cap {cap}");
    }
    let spaced = format!("{{\"id\": \"{id}\", \"answer\": \"{answer}\"}}");
    let mut o = BlockingObserver::new(1024);
    o.on_chunk(spaced.as_bytes());
    assert_eq!(o.finish().id.as_deref(), Some(id), "json.dumps spacing");
}

#[test]
fn a_jobs_id_is_read() {
    let mut o = BlockingObserver::new(1024);
    o.on_chunk(br#"{"job_id": "5b1c3e9a-7a9d-4a53-9a52-3b0b9b2d9a10", "job_status": "waiting"}"#);
    assert_eq!(
        o.finish().job_id.as_deref(),
        Some("5b1c3e9a-7a9d-4a53-9a52-3b0b9b2d9a10")
    );
}

/// `body` with every event's JSON written the way Python's `json.dumps` spaces it.
fn spaced(body: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(body).unwrap();
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        match line.strip_prefix("data: ") {
            Some(json) => {
                let v: serde_json::Value = serde_json::from_str(json.trim_end()).unwrap();
                let compact = serde_json::to_string(&v).unwrap();
                // Separators only: no string in the fixtures holds `":` or `",`.
                let python = compact.replace("\":", "\": ").replace(",\"", ", \"");
                out.push_str(&format!("data: {python}\n"));
            }
            None => out.push_str(line),
        }
    }
    out.into_bytes()
}

#[test]
fn deltas_read_from_their_start_count_as_parsed_ones() {
    // Text and audio deltas after the first are counted from `{"event": "..."` alone: whatever the
    // spacing, the observation is the one a full parse of every event gives.
    for body in [NORMAL, ERROR, TTS, STOPPED] {
        let (a, b) = (observe(body, 4096), observe(&spaced(body), 4096));
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        let mut full = Observation::default();
        let mut parser = SseParser::new(64 * 1024);
        parser.feed(body, &mut |ev| {
            let payload = serde_json::from_slice::<Payload<'_>>(ev.data).ok();
            let name = payload.as_ref().and_then(|p| p.event.as_deref()).or(ev.event);
            count(
                &mut full,
                EventKind::from_name(name.unwrap_or("")),
                Duration::from_millis(5),
            );
        });
        assert_eq!(a.counts, full.counts);
        assert_eq!(a.terminal, full.terminal);
    }
}

#[test]
fn an_event_name_is_read_from_the_start_only_when_plain() {
    assert_eq!(
        event_from_prefix(br#"{"event": "message", "answer": "x"}"#),
        Some("message")
    );
    assert_eq!(
        event_from_prefix(br#"{"event":"tts_message","audio":""}"#),
        Some("tts_message")
    );
    assert_eq!(event_from_prefix(br#"{"event": "mess\u0061ge"}"#), None);
    assert_eq!(
        event_from_prefix(br#"{"task_id": "t", "event": "message"}"#),
        None
    );
    assert_eq!(event_from_prefix(br#"{"event":  "message"}"#), None);
    let known = observe(NORMAL, 4096);
    for data in [
        &br#"{"event": "message", "answer": "x"}"#[..],
        br#"{"event":"tts_message"}"#,
    ] {
        let ev = SseEvent {
            event: None,
            data,
            truncated: false,
        };
        assert!(
            bulk_event(&known, &ev).is_some(),
            "a delta after the ids is not parsed"
        );
        assert!(bulk_event(&Observation::default(), &ev).is_none(), "the first is");
    }
    let end = SseEvent {
        event: None,
        data: br#"{"event": "message_end", "metadata": {}}"#,
        truncated: false,
    };
    assert!(bulk_event(&known, &end).is_none(), "the last one is parsed");
}
