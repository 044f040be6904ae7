//! Reads Dify's completion responses as they pass (response step, `response_body_filter`): task and
//! message ids, the first content event, event counts by kind, the terminal event and the usage Dify
//! reports. Streams go through the incremental parser; blocking bodies are read under a size cap.
//! Observers never change a byte and cost O(chunk) per call.

use super::parser::{SseEvent, SseParser};
use serde::Deserialize;
use std::borrow::Cow;
use std::time::{Duration, Instant};

/// The kinds of event a completion stream carries; `label()` is a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `message`: a text delta.
    Message,
    /// `message_replace`: moderation replaced the answer.
    MessageReplace,
    /// `message_end`: usage and metadata; generation is over.
    MessageEnd,
    /// `tts_message`: an audio chunk.
    TtsMessage,
    /// `tts_message_end`: the very last event with TTS autoplay.
    TtsMessageEnd,
    /// `error`: terminal failure.
    Error,
    /// `message_file`.
    MessageFile,
    /// The bare `event: ping` keep-alive.
    Ping,
    /// Anything else.
    Other,
}

impl EventKind {
    /// All kinds, in label order.
    pub const ALL: [EventKind; 9] = [
        Self::Message,
        Self::MessageReplace,
        Self::MessageEnd,
        Self::TtsMessage,
        Self::TtsMessageEnd,
        Self::Error,
        Self::MessageFile,
        Self::Ping,
        Self::Other,
    ];

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::MessageReplace => "message_replace",
            Self::MessageEnd => "message_end",
            Self::TtsMessage => "tts_message",
            Self::TtsMessageEnd => "tts_message_end",
            Self::Error => "error",
            Self::MessageFile => "message_file",
            Self::Ping => "ping",
            Self::Other => "other",
        }
    }

    fn from_name(name: &str) -> Self {
        match name {
            "message" => Self::Message,
            "message_replace" => Self::MessageReplace,
            "message_end" => Self::MessageEnd,
            "tts_message" => Self::TtsMessage,
            "tts_message_end" => Self::TtsMessageEnd,
            "error" => Self::Error,
            "message_file" => Self::MessageFile,
            "ping" => Self::Ping,
            _ => Self::Other,
        }
    }
}

/// Token usage and cost as Dify reported them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Completion tokens.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Total tokens.
    #[serde(default)]
    pub total_tokens: u64,
    /// Total price, a decimal string (`"0.0012890"`, `"0E-7"`).
    #[serde(default)]
    pub total_price: Option<String>,
    /// Currency of the price.
    #[serde(default)]
    pub currency: Option<String>,
    /// Dify's pipeline latency, seconds.
    #[serde(default)]
    pub latency: Option<f64>,
}

/// What the observer learned from one response.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// `task_id`, for stop.
    pub task_id: Option<String>,
    /// `message_id`, for feedback and text-to-audio.
    pub message_id: Option<String>,
    /// `id` of a blocking body (an annotation's id, or the message id).
    pub id: Option<String>,
    /// `job_id` of an annotation-reply answer.
    pub job_id: Option<String>,
    /// Time from the request's start to the first `message` event.
    pub first_content: Option<Duration>,
    /// Events seen, by kind (indexed like [`EventKind::ALL`]).
    pub counts: [u32; 9],
    /// The last terminal event seen (`message_end`, `error`, `tts_message_end`).
    pub terminal: Option<EventKind>,
    /// Usage from `message_end` or the blocking body.
    pub usage: Option<Usage>,
    /// `code` of an `error` event.
    pub error_code: Option<String>,
}

impl Observation {
    /// Generation is over (`message_end` or `error` seen): stopping it would change nothing.
    pub fn generation_done(&self) -> bool {
        self.count(EventKind::MessageEnd) > 0 || self.count(EventKind::Error) > 0
    }

    /// The stream reached its last event: `error`, `tts_message_end`, or `message_end` of a stream
    /// without TTS audio (with it, audio keeps coming after `message_end`).
    pub fn stream_ended(&self) -> bool {
        match self.terminal {
            Some(EventKind::Error | EventKind::TtsMessageEnd) => true,
            Some(EventKind::MessageEnd) => self.count(EventKind::TtsMessage) == 0,
            _ => false,
        }
    }

    /// Events of `kind` seen.
    pub fn count(&self, kind: EventKind) -> u32 {
        EventKind::ALL
            .iter()
            .position(|k| *k == kind)
            .map(|i| self.counts[i])
            .unwrap_or(0)
    }
}

#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(borrow, default)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    task_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    code: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    job_id: Option<Cow<'a, str>>,
    #[serde(default)]
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    usage: Option<Usage>,
}

/// Watches an SSE completion stream.
#[derive(Debug)]
pub struct SseObserver {
    parser: SseParser,
    started: Instant,
    /// What has been seen so far.
    pub seen: Observation,
}

impl SseObserver {
    /// An observer for a response to a request that started at `started`; events over
    /// `max_event_bytes` are only partly read (ids still are, usage may not be).
    pub fn new(max_event_bytes: usize, started: Instant) -> Self {
        Self {
            parser: SseParser::new(max_event_bytes),
            started,
            seen: Observation::default(),
        }
    }

    /// Bytes held between chunks.
    pub fn buffered(&self) -> usize {
        self.parser.buffered()
    }

    /// Reads one chunk of the stream as it passes.
    pub fn on_chunk(&mut self, chunk: &[u8], now: Instant) {
        let started = self.started;
        let seen = &mut self.seen;
        self.parser.feed(chunk, &mut |ev| {
            record(seen, ev, now.saturating_duration_since(started))
        });
    }
}

/// The `"event"` an event's JSON starts with (`{"event":"NAME"` or `{"event": "NAME"`, as Dify
/// writes it first), without escapes.
fn event_from_prefix(data: &[u8]) -> Option<&str> {
    let rest = data.strip_prefix(br#"{"event":"#)?;
    let rest = rest.strip_prefix(b" ").unwrap_or(rest).strip_prefix(b"\"")?;
    let end = rest.iter().position(|b| *b == b'"' || *b == b'\\')?;
    (rest[end] == b'"').then_some(())?;
    std::str::from_utf8(&rest[..end]).ok()
}

/// Whether `data` is a text delta or an audio chunk that adds nothing once the ids are known: its
/// kind is read from its start and the rest (the bulk of a stream: answer text, audio) is not parsed.
fn bulk_event(seen: &Observation, ev: &SseEvent<'_>) -> Option<EventKind> {
    if ev.event.is_some() || seen.task_id.is_none() || seen.message_id.is_none() {
        return None;
    }
    let kind = EventKind::from_name(event_from_prefix(ev.data)?);
    matches!(kind, EventKind::Message | EventKind::TtsMessage).then_some(kind)
}

/// Reads one event's or body's JSON. Valid UTF-8 (all Dify sends) is checked once and parsed as
/// text, which spares serde_json a check of every string it reads; anything else is parsed as
/// bytes, as before.
fn payload(data: &[u8]) -> Option<Payload<'_>> {
    match std::str::from_utf8(data) {
        Ok(text) => serde_json::from_str(text).ok(),
        Err(_) => serde_json::from_slice(data).ok(),
    }
}

fn record(seen: &mut Observation, ev: SseEvent<'_>, elapsed: Duration) {
    if let Some(kind) = bulk_event(seen, &ev) {
        count(seen, kind, elapsed);
        return;
    }
    let payload = payload(ev.data);
    let name = match (&payload, ev.event) {
        (Some(Payload { event: Some(e), .. }), _) => e.as_ref(),
        (_, Some(e)) => e,
        (None, None) if ev.truncated => event_from_prefix(ev.data).unwrap_or(""),
        _ => "",
    };
    let kind = EventKind::from_name(name);
    count(seen, kind, elapsed);
    let Some(p) = payload else { return };
    if seen.task_id.is_none() {
        seen.task_id = p.task_id.map(Cow::into_owned);
    }
    if seen.message_id.is_none() {
        seen.message_id = p.message_id.map(Cow::into_owned);
    }
    if kind == EventKind::Error {
        seen.error_code = p.code.map(Cow::into_owned);
    }
    if let Some(usage) = p.metadata.and_then(|m| m.usage) {
        seen.usage = Some(usage);
    }
}

/// Counts one event of `kind`, `elapsed` after the request started.
fn count(seen: &mut Observation, kind: EventKind, elapsed: Duration) {
    if let Some(i) = EventKind::ALL.iter().position(|k| *k == kind) {
        seen.counts[i] = seen.counts[i].saturating_add(1);
    }
    if kind == EventKind::Message && seen.first_content.is_none() {
        seen.first_content = Some(elapsed);
    }
    if matches!(
        kind,
        EventKind::MessageEnd | EventKind::Error | EventKind::TtsMessageEnd
    ) {
        seen.terminal = Some(kind);
    }
}

/// Bytes of a blocking body always kept, whatever its size: Dify writes an annotation's `id` first.
const PREFIX: usize = 256;

/// Reads a blocking body (a completion, an annotation, a job), keeping at most `cap` bytes; past that
/// only the `id` at its start is learned.
#[derive(Debug)]
pub struct BlockingObserver {
    buf: Vec<u8>,
    prefix: Vec<u8>,
    cap: usize,
    overflow: bool,
}

impl BlockingObserver {
    /// An observer keeping at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self {
            buf: Vec::new(),
            prefix: Vec::new(),
            cap,
            overflow: false,
        }
    }

    /// Adds one chunk of the body.
    pub fn on_chunk(&mut self, chunk: &[u8]) {
        let room = PREFIX.saturating_sub(self.prefix.len());
        self.prefix.extend_from_slice(&chunk[..room.min(chunk.len())]);
        if self.overflow || self.buf.len() + chunk.len() > self.cap {
            self.overflow = true;
            self.buf = Vec::new();
            return;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// What the whole body said (call at end of stream).
    pub fn finish(&mut self) -> Observation {
        let mut seen = Observation::default();
        match payload(&self.buf) {
            Some(p) => {
                seen.task_id = p.task_id.map(Cow::into_owned);
                seen.message_id = p.message_id.map(Cow::into_owned);
                seen.id = p.id.map(Cow::into_owned);
                seen.job_id = p.job_id.map(Cow::into_owned);
                seen.usage = p.metadata.and_then(|m| m.usage);
                if seen.usage.is_some() {
                    seen.terminal = Some(EventKind::MessageEnd);
                }
            }
            None if self.overflow => seen.id = leading_id(&self.prefix).map(String::from),
            None => {}
        }
        self.buf = Vec::new();
        seen
    }
}

/// The `id` a JSON object starts with (`{"id": "..."` in any spacing), read from a prefix of the body.
fn leading_id(prefix: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(prefix).ok().or_else(|| {
        let valid = std::str::from_utf8(prefix).err()?.valid_up_to();
        std::str::from_utf8(&prefix[..valid]).ok()
    })?;
    let rest = text.trim_start().strip_prefix('{')?.trim_start();
    let rest = rest
        .strip_prefix("\"id\"")?
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let rest = rest.strip_prefix('"')?;
    let id = &rest[..rest.find('"')?];
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')).then_some(id)
}

#[cfg(test)]
#[path = "observer_tests.rs"]
mod tests;
