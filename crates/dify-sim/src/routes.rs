//! Router: records requests, matches routes like Flask (HTML 404, JSON 405, OPTIONS), auth, CORS, dispatch.

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::json::{ApiError, raw_response};
use crate::pyrepr::{py_str, truthy};
use crate::state::AppEntry;
use crate::state::Shared;
use crate::{
    RecordedRequest, annotations, app_meta, auth, completion, feedback, files, previews, tts, validate,
};

/// Bodies above this get nginx's 413 (`client_max_body_size 100M` plus multipart overhead).
const MAX_BODY: usize = 100 * 1024 * 1024 + 64 * 1024;

/// A fully buffered request.
pub(crate) struct Req {
    pub parts: Parts,
    pub body: Bytes,
}

impl Req {
    pub fn headers(&self) -> &HeaderMap {
        &self.parts.headers
    }

    pub fn query(&self) -> &str {
        self.parts.uri.query().unwrap_or("")
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .fallback(dispatch)
        .layer(DefaultBodyLimit::disable())
        .with_state(shared)
}

async fn dispatch(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Some(body) = read_body(body, &shared.body_bytes).await else {
        return raw_response(413, "text/html", NGINX_413);
    };
    let req = Req { parts, body };
    let path = req.parts.uri.path().to_string();
    // Liveness probes (the gateway's health checks) are not API calls: not recorded.
    if path == "/health" {
        return app_meta::health(&shared);
    }
    shared.record_request(record(&req).await);
    if path == "/v1" {
        return redirect_v1(&req);
    }
    let Some(route) = Route::parse(&path) else {
        return *ApiError::html_404().0;
    };
    let mut resp = respond(&shared, &route, &req).await;
    add_cors(&mut resp, &req);
    // Dify's after_request adds these to every answer.
    let h = resp.headers_mut();
    h.insert("x-version", HeaderValue::from_static("1.14.1"));
    h.insert("x-env", HeaderValue::from_static("PRODUCTION"));
    resp
}

/// Reads a whole body like Dify's server does, counting its bytes as they arrive (so tests can see
/// that a body reaches Dify before its sender has finished). `None` past [`MAX_BODY`].
async fn read_body(body: axum::body::Body, counter: &std::sync::atomic::AtomicU64) -> Option<Bytes> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut out = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.ok()?.into_data() else {
            continue;
        };
        counter.fetch_add(data.len() as u64, std::sync::atomic::Ordering::AcqRel);
        if out.len() + data.len() > MAX_BODY {
            return None;
        }
        out.extend_from_slice(&data);
    }
    Some(out.freeze())
}

const NGINX_413: &str = "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

async fn respond(shared: &Arc<Shared>, route: &Route, req: &Req) -> Response {
    let method = &req.parts.method;
    if method == Method::OPTIONS {
        return options_response(route, req);
    }
    if !route.allows(method) {
        return *ApiError::method_not_allowed(&route.allow_header()).0;
    }
    handle(shared, route, req).await.unwrap_or_else(|e| *e.0)
}

async fn handle(shared: &Arc<Shared>, route: &Route, req: &Req) -> Result<Response, ApiError> {
    match route {
        Route::Welcome => return Ok(app_meta::welcome()),
        // Signed links: the signature is the authorization; no app key.
        Route::FilePreview(id) => return previews::serve(shared, &previews::Kind::File, id, req),
        Route::ImagePreview(id) => return previews::serve(shared, &previews::Kind::Image, id, req),
        Route::ToolFile(id) => return previews::serve(shared, &previews::Kind::Tool, id, req),
        _ => {}
    }
    let app = auth::authenticate(shared, req.headers())?;
    forced_status(req.headers())?;
    let is_get = req.parts.method != Method::POST && req.parts.method != Method::PUT;
    match route {
        Route::Welcome => Ok(app_meta::welcome()),
        Route::Completion => completion::create(shared, app, req).await,
        Route::Stop(task_id) => completion::stop(shared, app, req, task_id),
        Route::Annotations if is_get => Ok(annotations::list(shared, app, req)),
        Route::Annotations => annotations::create(shared, app, req),
        Route::Annotation(id) if req.parts.method == Method::PUT => annotations::update(shared, req, id),
        Route::Annotation(id) => annotations::delete(shared, id),
        Route::ReplyAction(action) => annotations::reply_action(shared, app, req, action),
        Route::ReplyStatus(action, job) => annotations::reply_status(shared, action, job),
        Route::TextToAudio => tts::text_to_audio(shared, app, req).await,
        Route::Feedback(id) => feedback::create(shared, app, req, id),
        Route::AppFeedbacks => feedback::list(shared, app, req),
        Route::Upload => files::upload(shared, app, req).await,
        Route::Info | Route::Parameters | Route::Site | Route::Meta
            if !shared.cfg.metadata_delay.is_zero() =>
        {
            tokio::time::sleep(shared.cfg.metadata_delay).await;
            Ok(metadata(shared, route, app))
        }
        Route::Info => Ok(app_meta::info(app)),
        Route::Parameters => Ok(app_meta::parameters(shared, app)),
        Route::Site => Ok(app_meta::site(app)),
        Route::Meta => Ok(app_meta::meta()),
        Route::ChatPost => chat_only(req, true),
        Route::ChatGet => chat_only(req, false),
        Route::FilePreview(_) | Route::ImagePreview(_) | Route::ToolFile(_) => Err(ApiError::html_404()),
    }
}

/// Chat-only routes answer a completion key with `400 not_chat_app` (after the `user` check for POSTs).
fn chat_only(req: &Req, json_user: bool) -> Result<Response, ApiError> {
    if json_user {
        let body = validate::get_json(req.headers(), &req.body)?;
        validate::user_from_json(&body, true)?;
    }
    Err(ApiError::dify(
        400,
        "not_chat_app",
        "Please check if your app mode matches the right API route.",
    ))
}

/// `x-sim-status: NNN` forces an error envelope with that status (for proxy pass-through tests).
fn forced_status(headers: &HeaderMap) -> Result<(), ApiError> {
    let code = headers
        .get("x-sim-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u16>().ok())
        .filter(|c| (400..=599).contains(c));
    let Some(code) = code else { return Ok(()) };
    Err(match code {
        401 => ApiError::unauthorized("Access token is invalid"),
        429 => ApiError::dify(
            429,
            "too_many_requests",
            "Too many requests. Please try again later.",
        ),
        500 => ApiError::dify(
            500,
            "internal_server_error",
            "The server encountered an internal error and was unable to complete your request. Either the server is overloaded or there is an error in the application.",
        ),
        _ => {
            let reason = crate::json::status(code).canonical_reason().unwrap_or("error");
            let snake = reason
                .to_ascii_lowercase()
                .replace([' ', '-'], "_")
                .replace('\'', "");
            ApiError::dify(
                code,
                &snake,
                &format!("Simulated {code} {reason} (x-sim-status)."),
            )
        }
    })
}

/// werkzeug strict slashes: `/v1` redirects to `/v1/`.
fn redirect_v1(req: &Req) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let target = format!("http://{host}/v1/");
    let body = format!(
        "<!doctype html>\n<html lang=en>\n<title>Redirecting...</title>\n<h1>Redirecting...</h1>\n<p>You should be redirected automatically to the target URL: <a href=\"{target}\">{target}</a>. If not, click the link.\n"
    );
    let mut resp = raw_response(308, "text/html; charset=utf-8", body);
    if let Ok(v) = HeaderValue::from_str(&target) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// Flask's automatic OPTIONS answer (flask-cors adds the preflight headers).
fn options_response(route: &Route, req: &Req) -> Response {
    let mut resp = raw_response(200, "text/html; charset=utf-8", "");
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&route.allow_header()) {
        h.insert(header::ALLOW, v);
    }
    if req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("DELETE, GET, OPTIONS, PATCH, POST, PUT"),
        );
        let allowed = requested_cors_headers(req.headers());
        if let Ok(v) = HeaderValue::from_str(&allowed)
            && !allowed.is_empty()
        {
            h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
    }
    resp
}

fn requested_cors_headers(headers: &HeaderMap) -> String {
    const ALLOWED: [&str; 4] = ["content-type", "x-app-code", "x-app-passport", "authorization"];
    let requested = headers
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let list: Vec<String> = requested
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| ALLOWED.contains(&s.as_str()))
        .collect();
    list.join(", ")
}

/// flask-cors on the /v1 blueprint: echo the Origin, no credentials.
fn add_cors(resp: &mut Response, req: &Req) {
    let Some(origin) = req.headers().get(header::ORIGIN).cloned() else {
        return;
    };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if req.parts.method != Method::OPTIONS {
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("X-Version, X-Env, X-Trace-Id"),
        );
    }
}

async fn record(req: &Req) -> RecordedRequest {
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let path = match req.parts.uri.query() {
        Some(q) => format!("{}?{q}", req.parts.uri.path()),
        None => req.parts.uri.path().to_string(),
    };
    let authorization = headers
        .iter()
        .find(|(n, _)| n == "authorization")
        .map(|(_, v)| v.clone());
    RecordedRequest {
        method: req.parts.method.to_string(),
        path,
        headers,
        authorization,
        body: req.body.clone(),
        user: recorded_user(req).await,
    }
}

async fn recorded_user(req: &Req) -> Option<String> {
    if validate::is_json(req.headers()) {
        let v: Value = serde_json::from_slice(&req.body).ok()?;
        let u = v.get("user")?;
        return truthy(u).then(|| py_str(u));
    }
    let form = files::parse_form(req).await.ok()?;
    form.text("user").filter(|u| !u.is_empty()).map(str::to_string)
}

/// Matched route with its typed path parameters.
pub(crate) enum Route {
    Welcome,
    Completion,
    Stop(String),
    Annotations,
    Annotation(String),
    ReplyAction(String),
    ReplyStatus(String, String),
    TextToAudio,
    Feedback(String),
    AppFeedbacks,
    Upload,
    Info,
    Parameters,
    Site,
    Meta,
    ChatPost,
    ChatGet,
    /// `/files/<uuid>/file-preview`.
    FilePreview(String),
    /// `/files/<uuid>/image-preview`.
    ImagePreview(String),
    /// `/files/tools/<uuid>.<extension>`.
    ToolFile(String),
}

impl Route {
    /// Flask URL matching under `/v1`; `<uuid:...>` segments must be hyphenated UUIDs.
    pub fn parse(path: &str) -> Option<Route> {
        if let Some(files) = path.strip_prefix("/files/") {
            return match files.split('/').collect::<Vec<_>>().as_slice() {
                [id, "file-preview"] => Some(Route::FilePreview(uuid_seg(id)?)),
                [id, "image-preview"] => Some(Route::ImagePreview(uuid_seg(id)?)),
                ["tools", name] => {
                    let (id, ext) = name.split_once('.')?;
                    (!ext.is_empty() && !ext.contains('/')).then_some(())?;
                    Some(Route::ToolFile(uuid_seg(id)?))
                }
                _ => None,
            };
        }
        let rest = path.strip_prefix("/v1/")?;
        let segs: Vec<&str> = rest.split('/').collect();
        let route = match segs.as_slice() {
            [""] => Route::Welcome,
            ["completion-messages"] => Route::Completion,
            ["completion-messages", task, "stop"] if !task.is_empty() => Route::Stop(decode(task)),
            ["apps", "annotations"] => Route::Annotations,
            ["apps", "annotations", id] => Route::Annotation(uuid_seg(id)?),
            ["apps", "annotation-reply", action] if !action.is_empty() => Route::ReplyAction(decode(action)),
            ["apps", "annotation-reply", action, "status", job] if !action.is_empty() => {
                Route::ReplyStatus(decode(action), uuid_seg(job)?)
            }
            ["text-to-audio"] => Route::TextToAudio,
            ["messages", id, "feedbacks"] => Route::Feedback(uuid_seg(id)?),
            ["app", "feedbacks"] => Route::AppFeedbacks,
            ["files", "upload"] => Route::Upload,
            ["info"] => Route::Info,
            ["parameters"] => Route::Parameters,
            ["site"] => Route::Site,
            ["meta"] => Route::Meta,
            ["chat-messages"] => Route::ChatPost,
            ["chat-messages", task, "stop"] if !task.is_empty() => Route::ChatPost,
            ["messages"] | ["conversations"] => Route::ChatGet,
            ["messages", id, "suggested"] => {
                uuid_seg(id)?;
                Route::ChatGet
            }
            _ => return None,
        };
        Some(route)
    }

    fn methods(&self) -> &'static [&'static str] {
        match self {
            Route::Welcome
            | Route::AppFeedbacks
            | Route::Info
            | Route::Parameters
            | Route::Site
            | Route::Meta
            | Route::ReplyStatus(..)
            | Route::ChatGet
            | Route::FilePreview(_)
            | Route::ImagePreview(_)
            | Route::ToolFile(_) => &["GET"],
            Route::Annotations => &["GET", "POST"],
            Route::Annotation(_) => &["PUT", "DELETE"],
            _ => &["POST"],
        }
    }

    fn allows(&self, method: &Method) -> bool {
        let m = if method == Method::HEAD {
            "GET"
        } else {
            method.as_str()
        };
        self.methods().contains(&m)
    }

    /// Sorted `Allow` value including Flask's automatic HEAD/OPTIONS.
    fn allow_header(&self) -> String {
        let mut all: Vec<&str> = self.methods().to_vec();
        if all.contains(&"GET") {
            all.push("HEAD");
        }
        all.push("OPTIONS");
        all.sort_unstable();
        all.join(", ")
    }
}

/// werkzeug's UUID converter: 8-4-4-4-12 hex, normalised to lower case.
fn uuid_seg(seg: &str) -> Option<String> {
    let ok = seg.len() == 36
        && seg.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    ok.then(|| seg.to_ascii_lowercase())
}

/// Percent-decoding (`+` becomes a space only in query strings).
fn percent_decode(s: &str, plus_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (b, hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
                continue;
            }
            (b'+', _) if plus_space => out.push(b' '),
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A query string piece, percent-decoded (`+` is a space).
pub(crate) fn query_decode(s: &str) -> String {
    percent_decode(s, true)
}

fn decode(seg: &str) -> String {
    percent_decode(seg, false)
}

/// Query string pairs in order (werkzeug `request.args`).
pub(crate) fn query_args(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// `request.args.to_dict()`: first value per key, as JSON strings.
pub(crate) fn query_dict(query: &str) -> Map<String, Value> {
    let mut map = Map::new();
    for (k, v) in query_args(query) {
        map.entry(k).or_insert(Value::String(v));
    }
    map
}

/// The four metadata answers (after any configured delay).
fn metadata(shared: &Shared, route: &Route, app: &AppEntry) -> Response {
    match route {
        Route::Parameters => app_meta::parameters(shared, app),
        Route::Site => app_meta::site(app),
        Route::Meta => app_meta::meta(),
        _ => app_meta::info(app),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_flask() {
        assert!(matches!(Route::parse("/v1/"), Some(Route::Welcome)));
        assert!(Route::parse("/v1/info/").is_none());
        assert!(Route::parse("/v1/messages/not-a-uuid/feedbacks").is_none());
        let id = "9DA23599-E713-473B-982C-4328D4F5C78A";
        let got = match Route::parse(&format!("/v1/messages/{id}/feedbacks")) {
            Some(Route::Feedback(x)) => Some(x),
            _ => None,
        };
        assert_eq!(got, Some(id.to_ascii_lowercase()));
        assert_eq!(Route::Annotations.allow_header(), "GET, HEAD, OPTIONS, POST");
        assert_eq!(query_dict("a=1&a=2&b=x+y%21")["b"], "x y!");
    }
}
