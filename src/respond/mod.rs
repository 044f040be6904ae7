//! The answers the gateway gives itself instead of Dify's (refusals in `request_filter` and the body
//! filters, failures in `fail_to_proxy`, preflights): Dify's JSON envelope or a Dify-shaped local
//! answer, the request id and any extra headers, written to the client here.

pub mod classify;
pub mod cors;
pub mod error;

pub use classify::{UpstreamFailure, classify};
pub use error::{ErrorKind, GatewayError, default_message, envelope};

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use std::time::Duration;

/// After refusing a request whose body is still arriving, how long the gateway keeps reading (and
/// discarding) it before closing. Closing with unread data makes the kernel send a reset that can
/// destroy the refusal before the client reads it (nginx's "lingering close").
const LINGER: Duration = Duration::from_secs(2);

/// Whether a step let the request go on or answered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on to the next step.
    Next,
    /// A response was written; the request ends here.
    Answered,
}

/// A complete response the gateway gives instead of Dify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAnswer {
    /// HTTP status.
    pub status: u16,
    /// Body, already formatted as Dify formats it.
    pub body: Bytes,
    /// Extra headers.
    pub headers: Vec<(&'static str, String)>,
}

impl LocalAnswer {
    /// Dify's body for a stop it accepted (also what it says for a task that is not the caller's).
    pub fn stop_success() -> Self {
        Self::json(200, "{\"result\": \"success\"}\n")
    }

    /// Dify's answer to text-to-audio for a message it cannot find: `200 null`.
    pub fn tts_unknown_message() -> Self {
        Self::json(200, "null\n")
    }

    /// Dify's 404 for an annotation id it does not know.
    pub fn annotation_not_found() -> Self {
        Self::json(
            404,
            "{\"code\": \"not_found\", \"message\": \"Annotation not found\", \"status\": 404}\n",
        )
    }

    /// Dify's 400 for an annotation-reply job it does not know.
    pub fn job_not_found() -> Self {
        Self::json(
            400,
            "{\"code\": \"invalid_param\", \"message\": \"The job does not exist.\", \"status\": 400}\n",
        )
    }

    fn json(status: u16, body: &'static str) -> Self {
        Self {
            status,
            body: Bytes::from_static(body.as_bytes()),
            headers: Vec::new(),
        }
    }
}

impl From<&GatewayError> for LocalAnswer {
    fn from(err: &GatewayError) -> Self {
        Self {
            status: err.kind.status(),
            body: err.body(),
            headers: Vec::new(),
        }
    }
}

/// Writes `answer` as the whole response, then drains what is left of the request body for at
/// most [`LINGER`]. The connection is not reused.
pub async fn send(session: &mut Session, answer: &LocalAnswer, request_id: &str) -> pingora::Result<()> {
    let mut resp = ResponseHeader::build(answer.status, Some(7 + answer.headers.len()))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header("content-length", answer.body.len().to_string())?;
    resp.insert_header("x-request-id", request_id)?;
    for (k, v) in &answer.headers {
        resp.insert_header(*k, v.as_str())?;
    }
    // A page's fetch() can read the gateway's own answers as it reads Dify's.
    let origin = session.req_header().headers.get(http::header::ORIGIN).cloned();
    cors::add(&mut resp, origin.as_ref())?;
    session.set_keepalive(None);
    let head_only = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(resp), head_only).await?;
    if !head_only {
        session
            .write_response_body(Some(answer.body.clone()), true)
            .await?;
    }
    if !session.is_body_done() {
        let _ = tokio::time::timeout(LINGER, session.drain_request_body()).await;
    }
    Ok(())
}
