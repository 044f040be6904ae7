//! Route classification (request step 1, `request_filter`): the closed set of Dify completion-app
//! endpoints the gateway serves. Anything else, and any path with tricks in it, is refused here and
//! never reaches Dify.

/// Every endpoint the gateway forwards. `name()` is the bounded `endpoint` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /v1/completion-messages`
    CompletionMessages,
    /// `POST /v1/completion-messages/{task_id}/stop`
    Stop,
    /// `GET /v1/apps/annotations`
    AnnotationsList,
    /// `POST /v1/apps/annotations`
    AnnotationCreate,
    /// `PUT /v1/apps/annotations/{annotation_id}`
    AnnotationUpdate,
    /// `DELETE /v1/apps/annotations/{annotation_id}`
    AnnotationDelete,
    /// `POST /v1/apps/annotation-reply/{action}`
    AnnotationReply,
    /// `GET /v1/apps/annotation-reply/{action}/status/{job_id}`
    AnnotationReplyStatus,
    /// `POST /v1/text-to-audio`
    TextToAudio,
    /// `POST /v1/messages/{message_id}/feedbacks`
    MessageFeedback,
    /// `GET /v1/app/feedbacks`
    AppFeedbacks,
    /// `POST /v1/files/upload`
    FileUpload,
    /// `GET /v1/info`
    Info,
    /// `GET /v1/parameters`
    Parameters,
    /// `GET /v1/site`
    Site,
    /// `GET /v1/meta`
    Meta,
    /// `GET /files/{file_id}/file-preview`, `/files/{file_id}/image-preview`,
    /// `/files/tools/{file_id}.{ext}`: Dify's signed file links (no credentials; Dify's signature
    /// authorizes them).
    FilePreview,
}

impl Endpoint {
    /// All endpoints, for metric pre-registration and docs.
    pub const ALL: [Endpoint; 17] = [
        Self::CompletionMessages,
        Self::Stop,
        Self::AnnotationsList,
        Self::AnnotationCreate,
        Self::AnnotationUpdate,
        Self::AnnotationDelete,
        Self::AnnotationReply,
        Self::AnnotationReplyStatus,
        Self::TextToAudio,
        Self::MessageFeedback,
        Self::AppFeedbacks,
        Self::FileUpload,
        Self::Info,
        Self::Parameters,
        Self::Site,
        Self::Meta,
        Self::FilePreview,
    ];

    /// Whether the endpoint acts on the whole Dify app (all its tenants' data), not on one end user.
    pub fn app_wide(self) -> bool {
        matches!(
            self,
            Self::AnnotationsList
                | Self::AnnotationCreate
                | Self::AnnotationUpdate
                | Self::AnnotationDelete
                | Self::AnnotationReply
                | Self::AnnotationReplyStatus
                | Self::AppFeedbacks
        )
    }

    /// The method the endpoint takes (`HEAD` goes with `GET`).
    pub fn method(self) -> &'static str {
        TABLE
            .iter()
            .find(|(_, _, e)| *e == self)
            .map_or("GET", |(m, _, _)| *m)
    }

    /// Whether the endpoint answers with a stream (SSE, audio, or a file's bytes).
    pub fn streams(self) -> bool {
        matches!(
            self,
            Self::CompletionMessages | Self::TextToAudio | Self::FilePreview
        )
    }

    /// Whether the endpoint is called without tenant credentials: Dify's signed file links, which a
    /// browser opens as they are (an `<img src>` cannot send a token). No app key goes with them.
    pub fn public(self) -> bool {
        self == Self::FilePreview
    }

    /// The route template (`http.route` of spans).
    pub fn template(self) -> &'static str {
        match self {
            Self::CompletionMessages => "/v1/completion-messages",
            Self::Stop => "/v1/completion-messages/{task_id}/stop",
            Self::AnnotationsList | Self::AnnotationCreate => "/v1/apps/annotations",
            Self::AnnotationUpdate | Self::AnnotationDelete => "/v1/apps/annotations/{annotation_id}",
            Self::AnnotationReply => "/v1/apps/annotation-reply/{action}",
            Self::AnnotationReplyStatus => "/v1/apps/annotation-reply/{action}/status/{job_id}",
            Self::TextToAudio => "/v1/text-to-audio",
            Self::MessageFeedback => "/v1/messages/{message_id}/feedbacks",
            Self::AppFeedbacks => "/v1/app/feedbacks",
            Self::FileUpload => "/v1/files/upload",
            Self::Info => "/v1/info",
            Self::Parameters => "/v1/parameters",
            Self::Site => "/v1/site",
            Self::Meta => "/v1/meta",
            Self::FilePreview => "/files/{file_id}/{preview}",
        }
    }

    /// The route name used as a metric label.
    pub fn name(self) -> &'static str {
        match self {
            Self::CompletionMessages => "completion_messages",
            Self::Stop => "stop",
            Self::AnnotationsList => "annotations_list",
            Self::AnnotationCreate => "annotation_create",
            Self::AnnotationUpdate => "annotation_update",
            Self::AnnotationDelete => "annotation_delete",
            Self::AnnotationReply => "annotation_reply",
            Self::AnnotationReplyStatus => "annotation_reply_status",
            Self::TextToAudio => "text_to_audio",
            Self::MessageFeedback => "message_feedback",
            Self::AppFeedbacks => "app_feedbacks",
            Self::FileUpload => "file_upload",
            Self::Info => "info",
            Self::Parameters => "parameters",
            Self::Site => "site",
            Self::Meta => "meta",
            Self::FilePreview => "file_preview",
        }
    }
}

/// A classified request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// The path's id parameter (task, message, annotation or job id), when the route has one.
    pub id: Option<String>,
}

/// Why a request is refused before auth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// Not a served path (404).
    NotFound,
    /// A served path with another method (405); `allow` lists the methods it takes.
    MethodNotAllowed {
        /// Value for the `Allow` header.
        allow: String,
    },
}

#[derive(Clone, Copy)]
enum Seg {
    Lit(&'static str),
    Task,
    Uuid,
    Action,
}

use Seg::{Action, Lit, Task, Uuid};

const TABLE: &[(&str, &[Seg], Endpoint)] = &[
    (
        "POST",
        &[Lit("completion-messages")],
        Endpoint::CompletionMessages,
    ),
    (
        "POST",
        &[Lit("completion-messages"), Task, Lit("stop")],
        Endpoint::Stop,
    ),
    (
        "GET",
        &[Lit("apps"), Lit("annotations")],
        Endpoint::AnnotationsList,
    ),
    (
        "POST",
        &[Lit("apps"), Lit("annotations")],
        Endpoint::AnnotationCreate,
    ),
    (
        "PUT",
        &[Lit("apps"), Lit("annotations"), Uuid],
        Endpoint::AnnotationUpdate,
    ),
    (
        "DELETE",
        &[Lit("apps"), Lit("annotations"), Uuid],
        Endpoint::AnnotationDelete,
    ),
    (
        "POST",
        &[Lit("apps"), Lit("annotation-reply"), Action],
        Endpoint::AnnotationReply,
    ),
    (
        "GET",
        &[Lit("apps"), Lit("annotation-reply"), Action, Lit("status"), Uuid],
        Endpoint::AnnotationReplyStatus,
    ),
    ("POST", &[Lit("text-to-audio")], Endpoint::TextToAudio),
    (
        "POST",
        &[Lit("messages"), Uuid, Lit("feedbacks")],
        Endpoint::MessageFeedback,
    ),
    ("GET", &[Lit("app"), Lit("feedbacks")], Endpoint::AppFeedbacks),
    ("POST", &[Lit("files"), Lit("upload")], Endpoint::FileUpload),
    ("GET", &[Lit("info")], Endpoint::Info),
    ("GET", &[Lit("parameters")], Endpoint::Parameters),
    ("GET", &[Lit("site")], Endpoint::Site),
    ("GET", &[Lit("meta")], Endpoint::Meta),
];

/// The signed file link shapes Dify serves under `/files/` (exactly these; anything else is 404):
/// `{uuid}/file-preview`, `{uuid}/image-preview`, `tools/{uuid}.{ext}`; the file id.
fn file_link(rest: &str) -> Option<String> {
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        [id, "file-preview" | "image-preview"] if is_uuid(id) => Some(id.to_ascii_lowercase()),
        ["tools", name] => {
            let (id, ext) = name.split_once('.')?;
            let ext_ok = (1..=16).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric());
            (is_uuid(id) && ext_ok).then(|| id.to_ascii_lowercase())
        }
        _ => None,
    }
}

/// Classifies `method` + raw request `path` (no query). Pure; the whole route table lives here.
pub fn classify(method: &str, path: &str) -> Result<Route, RouteError> {
    if let Some(rest) = path.strip_prefix("/files/") {
        let id = file_link(rest).ok_or(RouteError::NotFound)?;
        return match method {
            "GET" | "HEAD" => Ok(Route {
                endpoint: Endpoint::FilePreview,
                id: Some(id),
            }),
            _ => Err(RouteError::MethodNotAllowed {
                allow: "GET, HEAD, OPTIONS".into(),
            }),
        };
    }
    let rest = path.strip_prefix("/v1/").ok_or(RouteError::NotFound)?;
    if !rest.split('/').all(safe_segment) {
        return Err(RouteError::NotFound);
    }
    let segs: Vec<&str> = rest.split('/').collect();
    let lookup = if method == "HEAD" { "GET" } else { method };
    let mut allow: Vec<&str> = Vec::new();
    for (m, pattern, endpoint) in TABLE {
        let Some(id) = matches(pattern, &segs) else {
            continue;
        };
        if *m == lookup {
            return Ok(Route {
                endpoint: *endpoint,
                id,
            });
        }
        allow.push(m);
        if *m == "GET" {
            allow.push("HEAD");
        }
    }
    if allow.is_empty() {
        return Err(RouteError::NotFound);
    }
    allow.push("OPTIONS");
    Err(RouteError::MethodNotAllowed {
        allow: allow.join(", "),
    })
}

/// A segment made only of unreserved URL characters and not `.`/`..`: no percent-encoding (so no
/// encoded slashes or dots), no empty segments, no backslashes.
fn safe_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

fn matches(pattern: &[Seg], segs: &[&str]) -> Option<Option<String>> {
    if pattern.len() != segs.len() {
        return None;
    }
    let mut id = None;
    for (p, s) in pattern.iter().zip(segs) {
        let ok = match p {
            Lit(l) => l == s,
            Action => *s == "enable" || *s == "disable",
            Task => {
                s.len() <= 128
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            }
            Uuid => is_uuid(s),
        };
        if !ok {
            return None;
        }
        if matches!(p, Task | Uuid) {
            id = Some(s.to_string());
        }
    }
    Some(id)
}

/// Dify's `<uuid:...>` converter: 8-4-4-4-12 hex digits.
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const U: &str = "9da23599-e713-473b-982c-4328d4f5c78a";

    #[test]
    fn serves_every_endpoint_with_its_method() {
        let cases = [
            (
                "POST",
                "/v1/completion-messages".to_string(),
                Endpoint::CompletionMessages,
            ),
            (
                "POST",
                "/v1/completion-messages/task-1/stop".into(),
                Endpoint::Stop,
            ),
            ("GET", "/v1/apps/annotations".into(), Endpoint::AnnotationsList),
            ("POST", "/v1/apps/annotations".into(), Endpoint::AnnotationCreate),
            (
                "PUT",
                format!("/v1/apps/annotations/{U}"),
                Endpoint::AnnotationUpdate,
            ),
            (
                "DELETE",
                format!("/v1/apps/annotations/{U}"),
                Endpoint::AnnotationDelete,
            ),
            (
                "POST",
                "/v1/apps/annotation-reply/enable".into(),
                Endpoint::AnnotationReply,
            ),
            (
                "GET",
                format!("/v1/apps/annotation-reply/disable/status/{U}"),
                Endpoint::AnnotationReplyStatus,
            ),
            ("POST", "/v1/text-to-audio".into(), Endpoint::TextToAudio),
            (
                "POST",
                format!("/v1/messages/{U}/feedbacks"),
                Endpoint::MessageFeedback,
            ),
            ("GET", "/v1/app/feedbacks".into(), Endpoint::AppFeedbacks),
            ("POST", "/v1/files/upload".into(), Endpoint::FileUpload),
            ("GET", "/v1/info".into(), Endpoint::Info),
            ("HEAD", "/v1/parameters".into(), Endpoint::Parameters),
            ("GET", "/v1/site".into(), Endpoint::Site),
            ("GET", "/v1/meta".into(), Endpoint::Meta),
        ];
        for (m, p, e) in cases {
            assert_eq!(classify(m, &p).unwrap().endpoint, e, "{m} {p}");
        }
        assert_eq!(
            classify("POST", "/v1/completion-messages/t1/stop")
                .unwrap()
                .id
                .as_deref(),
            Some("t1")
        );
    }

    #[test]
    fn signed_file_links_take_exactly_difys_shapes() {
        let id = "0e4f6b70-8c1a-4e1b-9a4e-2f1d5b7c9a01";
        for p in [
            format!("/files/{id}/file-preview"),
            format!("/files/{id}/image-preview"),
            format!("/files/tools/{id}.png"),
            format!("/files/{}/file-preview", id.to_uppercase()),
        ] {
            let r = classify("GET", &p).unwrap();
            assert_eq!(
                (r.endpoint, r.id.as_deref()),
                (Endpoint::FilePreview, Some(id)),
                "{p}"
            );
            assert!(classify("HEAD", &p).is_ok());
        }
        for p in [
            "/files/upload".to_string(),
            "/files/x/file-preview".into(),
            format!("/files/{id}/preview"),
            format!("/files/{id}"),
            format!("/files/tools/{id}"),
            format!("/files/tools/{id}."),
            format!("/files/tools/{id}.p%6Eg"),
            format!("/files/{id}/file-preview/"),
            format!("/files/tools/../{id}/file-preview"),
        ] {
            assert_eq!(classify("GET", &p).unwrap_err(), RouteError::NotFound, "{p}");
        }
        assert!(matches!(
            classify("POST", &format!("/files/{id}/file-preview")),
            Err(RouteError::MethodNotAllowed { .. })
        ));
        assert!(Endpoint::FilePreview.public() && !Endpoint::Info.public());
    }

    #[test]
    fn refuses_everything_else() {
        for p in [
            "/v1/chat-messages",
            "/v1/workflows/run",
            "/v1/datasets",
            "/console/api/apps",
            "/v1/",
            "/v1",
            "/",
            "/v1/info/",
            "/v1//info",
            "/v1/./info",
            "/v1/apps/../info",
            "/v1/../console/api",
            "/v1/apps%2fannotations",
            "/v1/%69nfo",
            "/v1/apps\\annotations",
            "/v1/messages/not-a-uuid/feedbacks",
            "/v1/apps/annotation-reply/other",
            "/v1/files/x/preview",
            "/v1/audio-to-text",
            "/V1/info",
        ] {
            assert_eq!(classify("GET", p).unwrap_err(), RouteError::NotFound, "{p}");
            assert_eq!(classify("POST", p).unwrap_err(), RouteError::NotFound, "{p}");
        }
    }

    #[test]
    fn wrong_method_lists_allowed_ones() {
        assert_eq!(
            classify("GET", "/v1/completion-messages").unwrap_err(),
            RouteError::MethodNotAllowed {
                allow: "POST, OPTIONS".into()
            }
        );
        assert_eq!(
            classify("DELETE", "/v1/apps/annotations").unwrap_err(),
            RouteError::MethodNotAllowed {
                allow: "GET, HEAD, POST, OPTIONS".into()
            }
        );
    }
}
