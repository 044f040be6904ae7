//! Request bodies on their way to Dify (request step 4, `request_body_filter`): JSON bodies that carry
//! `user` are held (they are small) and rewritten at their end; uploads are rewritten as they stream;
//! everything else passes untouched.

use crate::error::{ErrorKind, GatewayError};
use crate::route::Endpoint;
use crate::scope::json::inspect;
use crate::scope::multipart::{Malformed, MultipartScoper, boundary};
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
}

impl BodyPlan {
    /// The plan for `endpoint` with request `content_type`, for `tenant`.
    pub fn choose(endpoint: Endpoint, content_type: &str, tenant: &str, scope: bool) -> Self {
        let json = content_type
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/json");
        match endpoint {
            Endpoint::CompletionMessages | Endpoint::Stop | Endpoint::MessageFeedback if json => Self::Json {
                buf: Vec::new(),
                scope,
                default_user: false,
            },
            Endpoint::TextToAudio if json => Self::Json {
                buf: Vec::new(),
                scope,
                default_user: true,
            },
            Endpoint::FileUpload if scope => match boundary(content_type) {
                Some(b) => Self::Multipart(Box::new(MultipartScoper::new(b, tenant))),
                None => Self::Pass,
            },
            _ => Self::Pass,
        }
    }

    /// Whether the body's length may change (the upstream request must then be chunked).
    pub fn rewrites(&self) -> bool {
        matches!(self, Self::Json { scope: true, .. } | Self::Multipart(_))
    }
}

/// What the end of a held JSON body told the gateway.
#[derive(Debug, Default)]
pub struct BodyFacts {
    /// `user` as Dify will see it.
    pub dify_user: Option<String>,
    /// `message_id` named by the body.
    pub message_id: Option<String>,
}

fn refuse(msg: &'static str) -> GatewayError {
    GatewayError::new(ErrorKind::BadRequest, msg)
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
            let seen = inspect(&held, tenant, *scope, *default_user)
                .map_err(|e| GatewayError::new(ErrorKind::BadRequest, e.to_string()))?;
            *body = Some(Bytes::from(seen.rewritten.unwrap_or(held)));
            Ok(Some(BodyFacts {
                dify_user: seen.dify_user,
                message_id: seen.message_id,
            }))
        }
        BodyPlan::Multipart(scoper) => {
            let mut out = Vec::new();
            let malformed = |_: Malformed| refuse("The multipart body could not be read");
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
            }))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn json_is_held_then_rewritten() {
        let mut plan = BodyPlan::choose(Endpoint::CompletionMessages, "application/json", "acme", true);
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
    fn json_over_the_cap_is_413_and_odd_users_400() {
        let mut plan = BodyPlan::choose(Endpoint::Stop, "application/json", "acme", true);
        let mut body = Some(Bytes::from(vec![b' '; 2048]));
        assert_eq!(
            filter(&mut plan, &mut body, false, "acme", 1024)
                .unwrap_err()
                .kind,
            ErrorKind::RequestTooLarge
        );
        let mut plan = BodyPlan::choose(Endpoint::Stop, "application/json", "acme", true);
        let mut body = Some(Bytes::from_static(b"{\"user\": {\"a\": 1}}"));
        assert_eq!(
            filter(&mut plan, &mut body, true, "acme", 1024).unwrap_err().kind,
            ErrorKind::BadRequest
        );
    }

    #[test]
    fn other_bodies_pass() {
        for (e, ct) in [
            (Endpoint::CompletionMessages, "text/plain"),
            (Endpoint::AnnotationCreate, "application/json"),
            (Endpoint::FileUpload, "application/json"),
        ] {
            assert!(
                matches!(BodyPlan::choose(e, ct, "acme", true), BodyPlan::Pass),
                "{e:?} {ct}"
            );
        }
        let plan = BodyPlan::choose(Endpoint::CompletionMessages, "application/json", "acme", false);
        assert!(!plan.rewrites(), "unscoped JSON keeps its length");
    }
}
