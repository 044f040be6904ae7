//! `POST /v1/completion-messages` (blocking JSON and SSE streaming) and `POST .../{task_id}/stop` (§3.1, §3.2, §4).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::HeaderMap;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_stream::wrappers::UnboundedReceiverStream;

use crate::generator::{self, ERROR_MESSAGE, GenEvent, Plan, Timing};
use crate::json::{ApiError, compact, py_dumps, raw_response, restx};
use crate::pydantic::Validation;
use crate::routes::Req;
use crate::state::{AppEntry, MessageRec, Shared, SlotGuard, new_uuid, unix_now};
use crate::usage::{PROMPT_OVERHEAD, Usage};
use crate::validate::{ValidatedInputs, get_json, user_from_json, validate_inputs};
use crate::{SimConfig, TaskOutcome, TaskRecord};

/// Generation knobs: `SimConfig` values overridden by `x-sim-*` request headers.
pub(crate) struct Knobs {
    pub events: usize,
    pub timing: Timing,
    pub error_after: Option<usize>,
    /// `x-sim-answer-bytes`: each text delta is padded with spaces to at least this many bytes.
    pub answer_bytes: usize,
    /// `x-sim-chunk-bytes`: each SSE frame is written in pieces of this many bytes, 1 ms apart.
    pub chunk_bytes: usize,
}

impl Knobs {
    pub fn from_headers(headers: &HeaderMap, cfg: &SimConfig) -> Knobs {
        let ms =
            |name: &str, default: Duration| header_u64(headers, name).map_or(default, Duration::from_millis);
        let error_after = match header_str(headers, "x-sim-error-after") {
            Some(v) => v.trim().parse::<usize>().ok(),
            None => cfg.error_after,
        };
        Knobs {
            events: header_u64(headers, "x-sim-events").map_or(cfg.events, |n| n as usize),
            timing: Timing {
                first: ms("x-sim-first-event-delay-ms", cfg.first_event_delay),
                interval: ms("x-sim-event-interval-ms", cfg.event_interval),
                ping: ms("x-sim-ping-interval-ms", cfg.ping_interval),
            },
            error_after,
            answer_bytes: header_u64(headers, "x-sim-answer-bytes").map_or(0, |n| n as usize),
            chunk_bytes: header_u64(headers, "x-sim-chunk-bytes").map_or(0, |n| n as usize),
        }
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name).and_then(|v| v.trim().parse().ok())
}

struct Payload {
    inputs: Map<String, Value>,
    query: String,
    streaming: bool,
}

/// The identifiers of a started generation.
struct Ids {
    task_id: String,
    message_id: String,
    created_at: u64,
}

pub(crate) async fn create(shared: &Arc<Shared>, app: &AppEntry, req: &Req) -> Result<Response, ApiError> {
    let body = get_json(req.headers(), &req.body)?;
    let user = user_from_json(&body, true)?.unwrap_or_default();
    let end_user_id = shared.end_user_id(&app.key, &user);
    let payload = parse_payload(&body)?;
    let knobs = Knobs::from_headers(req.headers(), &shared.cfg);
    let guard = acquire_slot(shared, app)?;
    let inputs = validate_inputs(&payload.inputs).map_err(|e| ApiError::invalid_param(&e))?;
    let owner = (user, end_user_id);
    let (rx, ids) = start(shared, app, owner, &payload, &inputs, &knobs);
    if payload.streaming {
        Ok(sse_response(rx, ids, guard, knobs.chunk_bytes))
    } else {
        blocking_response(rx, ids, guard).await
    }
}

fn parse_payload(body: &Value) -> Result<Payload, ApiError> {
    let mut v = Validation::new("CompletionRequestPayload", body);
    let mut out = Payload {
        inputs: Map::new(),
        query: String::new(),
        streaming: false,
    };
    if let Some(map) = v.object() {
        out.inputs = v.req_dict(map, "inputs").unwrap_or_default();
        out.query = v.str_or(map, "query", "").replace('\0', "");
        v.opt_list_of_dicts(map, "files");
        let mode = v.opt_literal(map, "response_mode", &["blocking", "streaming"]);
        out.streaming = mode.as_deref() == Some("streaming");
        v.str_or(map, "retriever_from", "dev");
    }
    v.finish()?;
    Ok(out)
}

/// Per-app concurrency limit (§6): 400 `invalid_param` as in 1.14.1, or 429 when configured.
fn acquire_slot(shared: &Arc<Shared>, app: &AppEntry) -> Result<SlotGuard, ApiError> {
    shared.try_acquire(&app.key).map_err(|limit| {
        let msg = format!(
            "Too many requests. Please try again later. The current maximum concurrent requests allowed for {} is {limit}.",
            app.app_id
        );
        if shared.cfg.concurrency_limit_as_429 {
            ApiError::dify(429, "too_many_requests", &msg)
        } else {
            ApiError::invalid_param(&msg)
        }
    })
}

/// Registers the task/message and spawns the worker.
fn start(
    shared: &Arc<Shared>,
    app: &AppEntry,
    (user, end_user_id): (String, String),
    payload: &Payload,
    inputs: &ValidatedInputs,
    knobs: &Knobs,
) -> (UnboundedReceiver<GenEvent>, Ids) {
    let task_id = new_uuid();
    let message_id = new_uuid();
    let prompt_tokens = PROMPT_OVERHEAD + inputs.text_len() as u64 + payload.query.chars().count() as u64;
    let record = TaskRecord {
        task_id: task_id.clone(),
        message_id: message_id.clone(),
        key: app.key.clone(),
        user: user.clone(),
        streaming: payload.streaming,
        outcome: TaskOutcome::Running,
        events_sent: 0,
    };
    let message = MessageRec {
        key: app.key.clone(),
        user,
        end_user_id,
        conversation_id: new_uuid(),
        answer: String::new(),
    };
    let stop = shared.register_task(record, message);
    let plan = Plan {
        task_id: task_id.clone(),
        message_id: message_id.clone(),
        deltas: answer_deltas(inputs.get_str("topic"), knobs.events)
            .into_iter()
            .map(|d| format!("{d:<width$}", width = knobs.answer_bytes))
            .collect(),
        prompt_tokens,
        timing: knobs.timing,
        error_after: knobs.error_after,
        tts: app.tts_autoplay,
    };
    let rx = generator::spawn(shared.clone(), plan, stop);
    let ids = Ids {
        task_id,
        message_id,
        created_at: unix_now(),
    };
    (rx, ids)
}

const WORDS: [&str; 12] = [
    " steeped", " at", " 75–80", " °C", " for", " 2", " minutes", " tastes", " calm", " and", " bright", ".",
];

/// Deterministic answer: the topic, then a fixed word cycle (with non-ASCII text to exercise escaping).
pub(crate) fn answer_deltas(topic: Option<&str>, n: usize) -> Vec<String> {
    let first = topic.map(str::trim).filter(|t| !t.is_empty()).unwrap_or("Tea");
    (0..n)
        .map(|i| match i {
            0 => first.to_string(),
            _ => WORDS[(i - 1) % WORDS.len()].to_string(),
        })
        .collect()
}

fn metadata(usage: &Usage, streaming: bool) -> Value {
    json!({"annotation_reply": null, "retriever_resources": [], "usage": usage.to_json(streaming)})
}

/// The JSON of one stream event with the exact key order of §4.2.
fn event_json(s: &Ids, ev: &GenEvent) -> Value {
    let (mid, at, tid) = (&s.message_id, s.created_at, &s.task_id);
    match ev {
        GenEvent::Message(answer) => {
            json!({"event": "message", "message_id": mid, "created_at": at, "task_id": tid, "id": mid, "answer": answer, "from_variable_selector": null})
        }
        GenEvent::End(u) => {
            json!({"event": "message_end", "message_id": mid, "created_at": at, "task_id": tid, "id": mid, "metadata": metadata(u, true), "files": null})
        }
        GenEvent::Tts(audio) => {
            json!({"event": "tts_message", "message_id": mid, "created_at": at, "task_id": tid, "audio": audio})
        }
        GenEvent::TtsEnd => {
            json!({"event": "tts_message_end", "message_id": mid, "created_at": at, "task_id": tid, "audio": ""})
        }
        GenEvent::Error => {
            json!({"event": "error", "message_id": mid, "created_at": at, "code": "completion_request_error", "status": 400, "message": ERROR_MESSAGE})
        }
        GenEvent::Ping => Value::Null,
    }
}

fn frame(s: &Ids, ev: &GenEvent) -> Bytes {
    match ev {
        GenEvent::Ping => Bytes::from_static(b"event: ping\n\n"),
        other => Bytes::from(format!("data: {}\n\n", compact(&event_json(s, other)))),
    }
}

/// 200 `text/event-stream`; each event is written as soon as the worker produces it (in pieces of
/// `chunk_bytes`, 1 ms apart, when that is not zero, to exercise readers of split frames).
fn sse_response(rx: UnboundedReceiver<GenEvent>, ids: Ids, guard: SlotGuard, chunk_bytes: usize) -> Response {
    let frames = UnboundedReceiverStream::new(rx).map(move |ev| {
        // The concurrency slot is held until the body finishes or the client goes away.
        let _slot = &guard;
        frame(&ids, &ev)
    });
    if chunk_bytes == 0 {
        let stream = frames.map(Ok::<Bytes, Infallible>);
        return raw_response(200, "text/event-stream; charset=utf-8", Body::from_stream(stream));
    }
    let pieces = frames
        .flat_map(move |f| {
            let parts: Vec<Bytes> = (0..f.len())
                .step_by(chunk_bytes)
                .map(|i| f.slice(i..(i + chunk_bytes).min(f.len())))
                .collect();
            futures_util::stream::iter(parts)
        })
        .then(|piece| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok::<Bytes, Infallible>(piece)
        });
    raw_response(200, "text/event-stream; charset=utf-8", Body::from_stream(pieces))
}

/// Collects the worker's events into the blocking JSON body (or the HTTP error of a failed run).
async fn blocking_response(
    mut rx: UnboundedReceiver<GenEvent>,
    ids: Ids,
    guard: SlotGuard,
) -> Result<Response, ApiError> {
    let _slot = guard;
    let mut answer = String::new();
    while let Some(ev) = rx.recv().await {
        match ev {
            GenEvent::Message(delta) => answer.push_str(&delta),
            GenEvent::End(usage) => return Ok(blocking_body(&ids, &answer, &usage)),
            GenEvent::Error => {
                return Err(ApiError::dify(400, "completion_request_error", ERROR_MESSAGE));
            }
            _ => {}
        }
    }
    Err(ApiError::unknown())
}

fn blocking_body(s: &Ids, answer: &str, usage: &Usage) -> Response {
    let body = json!({
        "event": "message",
        "task_id": s.task_id,
        "id": s.message_id,
        "message_id": s.message_id,
        "mode": "completion",
        "answer": answer,
        "metadata": metadata(usage, false),
        "created_at": s.created_at,
    });
    raw_response(200, "application/json; charset=utf-8", py_dumps(&body))
}

/// `POST /v1/completion-messages/{task_id}/stop`: always `{"result": "success"}`.
pub(crate) fn stop(shared: &Shared, app: &AppEntry, req: &Req, task_id: &str) -> Result<Response, ApiError> {
    let body = get_json(req.headers(), &req.body)?;
    let user = user_from_json(&body, true)?.unwrap_or_default();
    shared.end_user_id(&app.key, &user);
    shared.stop_task(task_id, &app.key, &user);
    Ok(restx(200, &json!({"result": "success"})))
}
