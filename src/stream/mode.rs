//! Whether a request will be answered by a stream (request step 4, `request_filter`), so that its
//! upstream reads get `upstream.stream_idle_timeout` instead of the blocking `read_timeout`.
//! Text-to-audio always streams; a completion streams when its body says `"response_mode":
//! "streaming"`. A completion body Pingora can replay (up to 64 KiB) is read whole here, and scoped
//! at once by the scope step, which also reads its mode; larger or unsized bodies keep the blocking
//! timeout.

use crate::admit::route::Endpoint;
use crate::scope::BodyFacts;
use bytes::{Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

/// Largest body read before the upstream is chosen (Pingora replays at most 64 KiB).
const PEEK_LIMIT: u64 = 60 * 1024;

/// Reads `endpoint`'s whole body before the upstream is chosen, when it is a completion body of a
/// known size Pingora can replay; `None` leaves the body to stream through the body filter.
pub async fn read_early(session: &mut Session, endpoint: Endpoint) -> pingora::Result<Option<Bytes>> {
    if endpoint != Endpoint::CompletionMessages {
        return Ok(None);
    }
    let len = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    let Some(len) = len.filter(|n| *n > 0 && *n <= PEEK_LIMIT) else {
        return Ok(None);
    };
    if expects_continue(session) {
        let cont = ResponseHeader::build(100, Some(0))?;
        session.write_response_header(Box::new(cont), false).await?;
    }
    session.enable_retry_buffering();
    let mut body = BytesMut::with_capacity(len as usize);
    while let Some(chunk) = session.read_request_body().await? {
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body.freeze()))
}

/// Whether `endpoint`'s answer will be a stream, given what its body read early said.
pub fn expects_stream(endpoint: Endpoint, early: Option<&BodyFacts>) -> bool {
    match endpoint {
        Endpoint::TextToAudio => true,
        Endpoint::CompletionMessages => early.is_some_and(|f| f.streaming),
        _ => false,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_always_streams_and_a_completion_when_its_body_says_so() {
        let says = |streaming| BodyFacts {
            streaming,
            ..BodyFacts::default()
        };
        assert!(expects_stream(Endpoint::TextToAudio, None));
        assert!(expects_stream(Endpoint::CompletionMessages, Some(&says(true))));
        assert!(!expects_stream(Endpoint::CompletionMessages, Some(&says(false))));
        assert!(
            !expects_stream(Endpoint::CompletionMessages, None),
            "unread: blocking timeout"
        );
        assert!(!expects_stream(Endpoint::Stop, Some(&says(true))));
    }
}
