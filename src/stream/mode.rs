//! Whether a request will be answered by a stream (request step 4, `request_filter`), so that its
//! upstream reads get `upstream.stream_idle_timeout` instead of the blocking `read_timeout`.
//! Text-to-audio always streams; a completion streams when its body says `"response_mode":
//! "streaming"`, which is read here for bodies Pingora can replay (up to 64 KiB; larger or unsized
//! bodies keep the blocking timeout).

use crate::admit::route::Endpoint;
use bytes::BytesMut;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// Largest body read before the upstream is chosen (Pingora replays at most 64 KiB).
const PEEK_LIMIT: u64 = 60 * 1024;

/// Decides whether `endpoint`'s answer will be a stream; may read (and buffer for replay) the body.
/// Returns `(streams, body_was_read)`.
pub async fn expects_stream(session: &mut Session, endpoint: Endpoint) -> pingora::Result<(bool, bool)> {
    match endpoint {
        Endpoint::TextToAudio => Ok((true, false)),
        Endpoint::CompletionMessages => {
            let len = session
                .req_header()
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
            if !len.is_some_and(|n| n > 0 && n <= PEEK_LIMIT) {
                return Ok((false, false));
            }
            if expects_continue(session) {
                let cont = ResponseHeader::build(100, Some(0))?;
                session.write_response_header(Box::new(cont), false).await?;
            }
            session.enable_retry_buffering();
            let mut body = BytesMut::new();
            while let Some(chunk) = session.read_request_body().await? {
                body.extend_from_slice(&chunk);
            }
            Ok((is_streaming(&body), true))
        }
        _ => Ok((false, false)),
    }
}

fn expects_continue(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"))
}

/// Whether a completion body asks for `"response_mode": "streaming"`.
pub fn is_streaming(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Mode<'a> {
        #[serde(borrow, default)]
        response_mode: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Mode<'_>>(body).is_ok_and(|m| m.response_mode.as_deref() == Some("streaming"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_response_mode() {
        assert!(is_streaming(
            br#"{"inputs": {}, "response_mode": "streaming", "user": "u"}"#
        ));
        assert!(!is_streaming(br#"{"inputs": {}, "response_mode": "blocking"}"#));
        assert!(!is_streaming(br#"{"inputs": {}}"#));
        assert!(!is_streaming(b"not json"));
    }
}
