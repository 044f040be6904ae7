//! `POST /v1/text-to-audio` (§3.9) and the fake MP3 audio shared with `tts_message` events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use crate::completion::Knobs;
use crate::json::{ApiError, raw_response, restx};
use crate::pydantic::Validation;
use crate::routes::Req;
use crate::state::{AppEntry, DEFAULT_USER, Shared};
use crate::validate::{get_json, payload_or_empty, user_from_json};

/// Number of body chunks of a text-to-audio answer.
const AUDIO_CHUNKS: usize = 4;
/// Bytes per body chunk.
const AUDIO_CHUNK_LEN: usize = 1024;

pub(crate) async fn text_to_audio(
    shared: &Arc<Shared>,
    app: &AppEntry,
    req: &Req,
) -> Result<Response, ApiError> {
    let body = get_json(req.headers(), &req.body)?;
    let user = user_from_json(&body, false)?;
    shared.end_user_id(&app.key, user.as_deref().unwrap_or(DEFAULT_USER));
    let payload = payload_or_empty(body);
    let (message_id, text) = parse_payload(&payload)?;
    let text = match message_id.filter(|m| !m.is_empty()) {
        Some(id) => match message_answer(shared, &id) {
            Some(answer) => answer,
            None => return Ok(restx(200, &Value::Null)),
        },
        None => text
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::invalid_param("Text is required"))?,
    };
    let interval = Knobs::from_headers(req.headers(), &shared.cfg).timing.interval;
    Ok(audio_response(text.len(), interval))
}

fn parse_payload(payload: &Value) -> Result<(Option<String>, Option<String>), ApiError> {
    let mut v = Validation::new("TextToAudioPayload", payload);
    let mut out = (None, None);
    if let Some(map) = v.object() {
        out.0 = v.opt_str(map, "message_id");
        v.opt_str(map, "voice");
        out.1 = v.opt_str(map, "text");
        v.opt_bool(map, "streaming");
    }
    v.finish()?;
    Ok(out)
}

/// Answer of a message of any app; `None` for non-UUIDs, unknown ids and empty answers.
fn message_answer(shared: &Shared, id: &str) -> Option<String> {
    let id = uuid::Uuid::parse_str(id).ok()?.to_string();
    let db = shared.db.lock();
    db.messages
        .get(&id)
        .map(|m| m.answer.clone())
        .filter(|a| !a.is_empty())
}

/// `200 audio/mpeg`, chunked: several chunks written over time.
fn audio_response(seed: usize, interval: Duration) -> Response {
    let stream = futures_util::stream::unfold(0usize, move |i| async move {
        if i >= AUDIO_CHUNKS {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(interval).await;
        }
        let chunk = Bytes::from(fake_mp3(seed + i, AUDIO_CHUNK_LEN));
        Some((Ok::<Bytes, Infallible>(chunk), i + 1))
    });
    raw_response(200, "audio/mpeg", Body::from_stream(stream))
}

/// `len` bytes starting with an MPEG-2 Layer III frame header, filled deterministically from `seed`.
pub(crate) fn fake_mp3(seed: usize, len: usize) -> Vec<u8> {
    let mut out = vec![0xFF, 0xF3, 0x64, 0xC4];
    let mut x = (seed as u32).wrapping_mul(2_654_435_761).wrapping_add(12_345);
    while out.len() < len {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        out.push((x >> 16) as u8);
    }
    out.truncate(len);
    out
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub(crate) fn base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_known_values() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foob"), "Zm9vYg==");
    }
}
