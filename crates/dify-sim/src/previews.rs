//! Dify's signed file links (`/files/...`, outside `/v1`, no app key): how uploads' `source_url`
//! and tool files are signed, and how `file-preview`, `image-preview` and `tools/{id}.{ext}` answer,
//! as in 1.14.1: signature = base64url(HMAC-SHA256(SECRET_KEY, "{kind}|{id}|{timestamp}|{nonce}"))
//! with its padding, valid for `FILES_ACCESS_TIMEOUT` (300 s); a bad or expired link is 404 (previews)
//! or 403 (tool files); `Range` is ignored (a full 200).

use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Map, Value};

use crate::json::{ApiError, raw_response};
use crate::pydantic::Validation;
use crate::routes::Req;
use crate::state::{Shared, new_uuid, unix_now};
use crate::tts::base64;

/// `FILES_ACCESS_TIMEOUT`.
const ACCESS_TIMEOUT: u64 = 300;
/// Extensions `image-preview` serves.
const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "webp", "gif", "svg"];

/// A stored file (an upload, or a file a tool produced).
#[derive(Clone, Debug)]
pub(crate) struct StoredFile {
    pub name: String,
    pub extension: String,
    pub mime_type: String,
    pub data: Bytes,
}

/// Which signed link.
pub(crate) enum Kind {
    File,
    Image,
    Tool,
}

/// base64url(HMAC-SHA256(secret, payload)), padding kept.
fn sign(secret: &str, payload: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, payload.as_bytes());
    base64(tag.as_ref()).replace('+', "-").replace('/', "_")
}

/// A fresh `(timestamp, nonce)`: Unix seconds, 16 random bytes in hex.
fn stamp() -> (u64, String) {
    (unix_now(), uuid::Uuid::new_v4().simple().to_string())
}

/// `get_signed_file_url`: `{FILES_URL}/files/{id}/{kind}?timestamp=..&nonce=..&sign=..`, urlencoded.
pub(crate) fn signed_url(shared: &Shared, id: &str, image: bool) -> String {
    let kind = if image { "image-preview" } else { "file-preview" };
    let (ts, nonce) = stamp();
    let sig = sign(&shared.cfg.secret_key, &format!("{kind}|{id}|{ts}|{nonce}"));
    let sig = sig.replace('=', "%3D");
    format!(
        "{}/files/{id}/{kind}?timestamp={ts}&nonce={nonce}&sign={sig}",
        shared.files_url()
    )
}

/// `sign_tool_file`: the path and query of a tool file's link (its payload is `file-preview|...`).
pub(crate) fn tool_path(shared: &Shared, id: &str, extension: &str) -> String {
    let (ts, nonce) = stamp();
    let sig = sign(&shared.cfg.secret_key, &format!("file-preview|{id}|{ts}|{nonce}"));
    format!("/files/tools/{id}.{extension}?timestamp={ts}&nonce={nonce}&sign={sig}")
}

/// Stores a file a tool produced; the path and query of its signed link.
pub(crate) fn add_tool_file(shared: &Shared, data: &[u8], mime_type: &str, extension: &str) -> String {
    let id = new_uuid();
    let file = StoredFile {
        name: format!("{id}.{extension}"),
        extension: extension.to_string(),
        mime_type: mime_type.to_string(),
        data: Bytes::copy_from_slice(data),
    };
    shared.db.lock().tool_files.insert(id.clone(), file);
    tool_path(shared, &id, extension)
}

/// `request.args.to_dict(flat=True)`: the first value of each name, percent-decoded.
fn args(req: &Req) -> Map<String, Value> {
    let mut out = Map::new();
    for pair in req.query().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (crate::routes::query_decode(k), crate::routes::query_decode(v));
        out.entry(k).or_insert(Value::String(v));
    }
    out
}

/// pydantic's lax bool.
fn lax_bool(v: Option<&Value>) -> Result<bool, ()> {
    match v.and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
        None => Ok(false),
        Some("1" | "true" | "yes" | "on" | "t" | "y") => Ok(true),
        Some("0" | "false" | "no" | "off" | "f" | "n") => Ok(false),
        Some(_) => Err(()),
    }
}

/// `urllib.parse.quote` (`/` kept).
fn quote(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Answers a signed file link.
pub(crate) fn serve(shared: &Shared, kind: &Kind, id: &str, req: &Req) -> Result<Response, ApiError> {
    let query = Value::Object(args(req));
    let model = match kind {
        Kind::Tool => "ToolFileQuery",
        Kind::Image => "FileSignatureQuery",
        Kind::File => "FilePreviewQuery",
    };
    let mut v = Validation::new(model, &query);
    let map = v.object().cloned().unwrap_or_default();
    let ts = v.req_str(&map, "timestamp");
    let nonce = v.req_str(&map, "nonce");
    let sig = v.req_str(&map, "sign");
    let attachment = lax_bool(map.get("as_attachment"));
    if attachment.is_err() && !matches!(kind, Kind::Image) {
        let input = map.get("as_attachment").cloned().unwrap_or(Value::Null);
        v.push(
            "as_attachment",
            "bool_parsing",
            "Input should be a valid boolean, unable to interpret input",
            &input,
        );
    }
    v.finish()?;
    let (ts, nonce, sig) = (
        ts.unwrap_or_default(),
        nonce.unwrap_or_default(),
        sig.unwrap_or_default(),
    );
    let payload = match kind {
        Kind::Image => "image-preview",
        Kind::File | Kind::Tool => "file-preview",
    };
    let expected = sign(&shared.cfg.secret_key, &format!("{payload}|{id}|{ts}|{nonce}"));
    let fresh = ts
        .parse::<i64>()
        .is_ok_and(|t| unix_now() as i64 - t <= ACCESS_TIMEOUT as i64);
    let valid = sig == expected && fresh;
    let attachment = attachment.unwrap_or(false);
    match kind {
        Kind::Tool => {
            if !valid {
                return Err(ApiError::dify(403, "forbidden", "Invalid request."));
            }
            let file = shared.db.lock().tool_files.get(id).cloned();
            let file = file.ok_or_else(|| ApiError::dify(404, "not_found", "file is not found"))?;
            Ok(answer(&file, &file.mime_type, attachment, false))
        }
        Kind::File | Kind::Image => {
            let found = valid.then(|| shared.db.lock().files.get(id).cloned()).flatten();
            let file = found
                .ok_or_else(|| ApiError::dify(404, "not_found", "File not found or signature is invalid"))?;
            if matches!(kind, Kind::Image) {
                if !IMAGE_EXTENSIONS.contains(&file.extension.as_str()) {
                    return Err(ApiError::dify(
                        415,
                        "unsupported_file_type",
                        "File type not allowed.",
                    ));
                }
                return Ok(answer(&file, &file.mime_type, false, false));
            }
            // 1.14.x sends every file preview as application/octet-stream.
            Ok(answer(&file, "application/octet-stream", attachment, true))
        }
    }
}

fn answer(file: &StoredFile, content_type: &str, attachment: bool, ranges: bool) -> Response {
    let mut resp = raw_response(200, "application/octet-stream", file.data.clone());
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    let media = ranges && (file.mime_type.starts_with("audio/") || file.mime_type.starts_with("video/"));
    if media {
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    let html = file.mime_type == "text/html" || matches!(file.extension.as_str(), "html" | "htm");
    if attachment || html {
        let value = format!("attachment; filename*=UTF-8''{}", quote(&file.name));
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
    }
    if html {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    }
    resp
}
