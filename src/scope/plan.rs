//! How a request body goes to Dify (chosen in `request_filter`, run in `request_body_filter`): JSON
//! bodies that carry `user` or ids are held (they are small), read the way Dify reads them and
//! rewritten at their end; uploads are rewritten as they stream; everything else passes untouched. A
//! body the gateway cannot read the way Dify would is refused, never passed on unread. Pure.

use super::json::{BodyError, inspect};
use super::multipart::{Malformed, MultipartScoper, boundary};
use crate::admit::route::Endpoint;
use crate::respond::{ErrorKind, GatewayError};
use bytes::Bytes;

/// How a request body is handled.
#[derive(Debug, Default)]
pub enum BodyPlan {
    /// Passed on untouched.
    #[default]
    Pass,
    /// A JSON body held until its end, then read (and rewritten when `scope`).
    Json {
        /// Bytes so far.
        buf: Vec<u8>,
        /// Rewrite `user`.
        scope: bool,
        /// A missing `user` becomes the tenant's `DEFAULT-USER`.
        default_user: bool,
    },
    /// An upload whose `user` field is rewritten as it streams.
    Multipart(Box<MultipartScoper>),
    /// The whole body, read and run through its plan in `request_filter`: what Pingora replays is
    /// dropped, and this goes at its end.
    Ready(Bytes),
}

/// Whether werkzeug reads a body of this media type as JSON (`application/json`,
/// `application/*+json`), which is what Dify's `request.get_json()` requires.
pub fn is_json(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Dify's 415 for a JSON endpoint called with another content type.
fn unsupported_media_type() -> GatewayError {
    let msg =
        "Did not attempt to load JSON data because the request Content-Type was not 'application/json'.";
    GatewayError::new(ErrorKind::UnsupportedMediaType, msg)
}

impl BodyPlan {
    /// The plan for `endpoint` with request `content_type` (`None`: missing, repeated or unreadable)
    /// on behalf of `tenant`. JSON endpoints are always held and read (text-to-audio's `message_id` is
    /// checked even when users are not scoped); uploads are rewritten when `scope`.
    pub fn choose(
        endpoint: Endpoint,
        content_type: Option<&str>,
        tenant: &str,
        scope: bool,
    ) -> Result<Self, GatewayError> {
        let json_endpoint = matches!(
            endpoint,
            Endpoint::CompletionMessages | Endpoint::Stop | Endpoint::MessageFeedback | Endpoint::TextToAudio
        );
        if json_endpoint {
            let default_user = endpoint == Endpoint::TextToAudio;
            return match content_type {
                Some(ct) if is_json(ct) => Ok(Self::Json {
                    buf: Vec::new(),
                    scope,
                    default_user,
                }),
                _ => Err(unsupported_media_type()),
            };
        }
        if endpoint != Endpoint::FileUpload || !scope {
            return Ok(Self::Pass);
        }
        match content_type.and_then(boundary) {
            Some(b) => Ok(Self::Multipart(Box::new(MultipartScoper::new(&b, tenant)))),
            None => Err(GatewayError::new(
                ErrorKind::NoFileUploaded,
                "Please upload your file.",
            )),
        }
    }

    /// Whether the body's length may change (the upstream request must then be chunked).
    pub fn rewrites(&self) -> bool {
        matches!(self, Self::Json { scope: true, .. } | Self::Multipart(_))
    }

    /// The length of a body ready whole (sent with its own `Content-Length`).
    pub fn ready_len(&self) -> Option<usize> {
        match self {
            Self::Ready(b) => Some(b.len()),
            _ => None,
        }
    }
}

/// What the end of a held JSON body told the gateway.
#[derive(Debug, Default)]
pub struct BodyFacts {
    /// `user` as Dify will see it.
    pub dify_user: Option<String>,
    /// `message_id` named by the body.
    pub message_id: Option<String>,
    /// A JSON body asks for `"response_mode": "streaming"`.
    pub streaming: bool,
}

fn refusal(e: BodyError) -> GatewayError {
    match e {
        BodyError::NotJson => GatewayError::new(
            ErrorKind::BadRequest,
            "The browser (or proxy) sent a request that this server could not understand.",
        ),
        other => GatewayError::new(ErrorKind::InvalidParam, other.to_string()),
    }
}

/// Runs one chunk through `plan`. `body` is replaced by what goes to Dify now: an empty chunk when
/// nothing is to be sent yet (Pingora skips it; `None` would end the upstream body). At the end
/// (`eos`) of a JSON body the facts it holds are returned.
pub fn filter(
    plan: &mut BodyPlan,
    body: &mut Option<Bytes>,
    eos: bool,
    tenant: &str,
    max_json: usize,
) -> Result<Option<BodyFacts>, GatewayError> {
    match plan {
        BodyPlan::Pass => Ok(None),
        BodyPlan::Json {
            buf,
            scope,
            default_user,
        } => {
            if let Some(b) = body.take() {
                if buf.len() + b.len() > max_json {
                    let msg = "JSON request body is larger than the gateway accepts";
                    return Err(GatewayError::new(ErrorKind::RequestTooLarge, msg));
                }
                buf.extend_from_slice(&b);
            }
            if !eos {
                *body = Some(Bytes::new());
                return Ok(None);
            }
            let held = std::mem::take(buf);
            let seen = inspect(&held, tenant, *scope, *default_user).map_err(refusal)?;
            *body = Some(Bytes::from(seen.rewritten.unwrap_or(held)));
            Ok(Some(BodyFacts {
                dify_user: seen.dify_user,
                message_id: seen.message_id,
                streaming: seen.streaming,
            }))
        }
        BodyPlan::Multipart(scoper) => {
            let mut out = Vec::new();
            let malformed = |_: Malformed| {
                GatewayError::new(ErrorKind::BadRequest, "The multipart body could not be read")
            };
            if let Some(b) = body.take() {
                scoper.feed(&b, &mut out).map_err(malformed)?;
            }
            if eos {
                scoper.finish(&mut out).map_err(malformed)?;
            }
            *body = Some(Bytes::from(out));
            Ok(eos.then(|| BodyFacts {
                dify_user: scoper.dify_user.clone(),
                message_id: None,
                streaming: false,
            }))
        }
        BodyPlan::Ready(ready) => {
            // The replayed copy was read already: only the ready body goes, at the end (each
            // time: a connection retried on another replica replays it again).
            *body = Some(if eos { ready.clone() } else { Bytes::new() });
            Ok(None)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const JSON: Option<&str> = Some("application/json");

    #[test]
    fn json_is_held_then_rewritten() {
        let mut plan = BodyPlan::choose(Endpoint::CompletionMessages, JSON, "acme", true).unwrap();
        assert!(plan.rewrites());
        let mut body = Some(Bytes::from_static(b"{\"inputs\": {}, \"us"));
        assert!(
            filter(&mut plan, &mut body, false, "acme", 1024)
                .unwrap()
                .is_none()
        );
        assert_eq!(
            body.as_deref(),
            Some(&b""[..]),
            "nothing is sent before the end, and the body goes on"
        );
        let mut body = Some(Bytes::from_static(b"er\": \"bob\"}"));
        let facts = filter(&mut plan, &mut body, true, "acme", 1024).unwrap().unwrap();
        assert_eq!(facts.dify_user.as_deref(), Some("acme:bob"));
        assert_eq!(&body.unwrap()[..], b"{\"inputs\":{},\"user\":\"acme:bob\"}");
    }

    #[test]
    fn a_body_ready_whole_replaces_its_replay_at_every_end() {
        let mut plan = BodyPlan::Ready(Bytes::from_static(b"{\"user\":\"acme:bob\"}"));
        assert!(!plan.rewrites());
        assert_eq!(plan.ready_len(), Some(19));
        for _attempt in 0..2 {
            let mut body = Some(Bytes::from_static(b"{\"user\": \"bob\"}"));
            assert!(
                filter(&mut plan, &mut body, false, "acme", 1024)
                    .unwrap()
                    .is_none()
            );
            assert_eq!(body.as_deref(), Some(&b""[..]), "the replayed copy is dropped");
            let mut end = None;
            filter(&mut plan, &mut end, true, "acme", 1024).unwrap();
            assert_eq!(end.as_deref(), Some(&b"{\"user\":\"acme:bob\"}"[..]));
        }
    }

    #[test]
    fn what_dify_reads_as_json_is_held_and_the_rest_refused() {
        for ct in [
            "application/json; charset=utf-8",
            "application/vnd.api+json",
            "Application/JSON",
        ] {
            assert!(
                matches!(
                    BodyPlan::choose(Endpoint::Stop, Some(ct), "acme", true),
                    Ok(BodyPlan::Json { .. })
                ),
                "{ct}"
            );
        }
        for ct in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
        ] {
            let e = BodyPlan::choose(Endpoint::TextToAudio, ct, "acme", false).unwrap_err();
            assert_eq!(
                (e.kind.status(), e.kind.code()),
                (415, "unsupported_media_type"),
                "{ct:?}"
            );
        }
        let e =
            BodyPlan::choose(Endpoint::FileUpload, Some("multipart/form-data"), "acme", true).unwrap_err();
        assert_eq!(e.kind.code(), "no_file_uploaded");
    }

    #[test]
    fn unreadable_bodies_are_refused_never_passed() {
        for (bytes, code) in [
            (&b"{\"user\": \"x\", \"n\": NaN}"[..], "bad_request"),
            (b"\xef\xbb\xbf{\"user\": \"x\"}", "bad_request"),
            (b"[1]", "invalid_param"),
            (b"{\"user\": {\"a\": 1}}", "invalid_param"),
        ] {
            let mut plan = BodyPlan::choose(Endpoint::TextToAudio, JSON, "acme", true).unwrap();
            let mut body = Some(Bytes::copy_from_slice(bytes));
            let e = filter(&mut plan, &mut body, true, "acme", 1024).unwrap_err();
            assert_eq!(e.kind.code(), code, "{}", String::from_utf8_lossy(bytes));
        }
        let mut plan = BodyPlan::choose(Endpoint::Stop, JSON, "acme", true).unwrap();
        let mut body = Some(Bytes::from(vec![b' '; 2048]));
        assert_eq!(
            filter(&mut plan, &mut body, false, "acme", 1024)
                .unwrap_err()
                .kind,
            ErrorKind::RequestTooLarge
        );
    }

    #[test]
    fn other_bodies_pass() {
        for e in [Endpoint::AnnotationCreate, Endpoint::AnnotationUpdate] {
            assert!(
                matches!(BodyPlan::choose(e, JSON, "acme", true), Ok(BodyPlan::Pass)),
                "{e:?}"
            );
        }
        assert!(matches!(
            BodyPlan::choose(Endpoint::FileUpload, None, "acme", false),
            Ok(BodyPlan::Pass)
        ));
        let plan = BodyPlan::choose(Endpoint::CompletionMessages, JSON, "acme", false).unwrap();
        assert!(!plan.rewrites(), "unscoped JSON keeps its length");
    }
}
