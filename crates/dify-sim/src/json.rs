//! Python `json.dumps`-style serialization (", "/": " separators, `\uXXXX` escapes) and Dify/Flask response helpers.

use std::io;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;
use serde_json::ser::Formatter;

/// `serde_json` formatter reproducing Python's `json.dumps(obj)` defaults (`ensure_ascii=True`).
pub(crate) struct PyFormatter;

impl Formatter for PyFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        write_ascii_escaped(w, fragment)
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(py_float_repr(value).as_bytes())
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        w.write_all(py_float_repr(f64::from(value)).as_bytes())
    }
}

/// Writes `s`, escaping everything outside printable ASCII (incl. DEL) as lower-case `\uXXXX` (surrogate pairs).
fn write_ascii_escaped<W: ?Sized + io::Write>(w: &mut W, s: &str) -> io::Result<()> {
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if (c as u32) < 0x7f {
            continue;
        }
        w.write_all(&s.as_bytes()[start..i])?;
        let mut units = [0u16; 2];
        for unit in c.encode_utf16(&mut units) {
            write!(w, "\\u{:04x}", unit)?;
        }
        start = i + c.len_utf8();
    }
    w.write_all(&s.as_bytes()[start..])
}

/// Python `repr(float)`: shortest round-trip digits, fixed for 1e-4 <= |x| < 1e16, else `1e-05` style.
pub(crate) fn py_float_repr(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    let sci = format!("{:e}", v.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let sign = if v < 0.0 { "-" } else { "" };
    if (-4..16).contains(&exp) {
        format!("{sign}{}", fixed_notation(&digits, exp))
    } else {
        let (head, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{head}{frac}e{esign}{:02}", exp.abs())
    }
}

fn fixed_notation(digits: &str, exp: i32) -> String {
    if exp < 0 {
        let zeros = "0".repeat((-exp - 1) as usize);
        return format!("0.{zeros}{digits}");
    }
    let int_len = (exp + 1) as usize;
    if digits.len() <= int_len {
        let pad = "0".repeat(int_len - digits.len());
        format!("{digits}{pad}.0")
    } else {
        let (int, frac) = digits.split_at(int_len);
        format!("{int}.{frac}")
    }
}

/// `json.dumps(value)` exactly as Python prints it.
pub(crate) fn py_dumps(value: &Value) -> String {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
    if value.serialize(&mut ser).is_err() {
        return "null".into();
    }
    String::from_utf8(out).unwrap_or_else(|_| "null".into())
}

/// orjson-like compact JSON (no spaces, raw UTF-8) for SSE `data:` payloads.
pub(crate) fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

pub(crate) fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A response with a body and a static content type.
pub(crate) fn raw_response(code: u16, content_type: &'static str, body: impl Into<Body>) -> Response {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status(code);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// flask-restx success output: `json.dumps(data) + "\n"`, `Content-Type: application/json`.
pub(crate) fn restx(code: u16, value: &Value) -> Response {
    raw_response(code, "application/json", format!("{}\n", py_dumps(value)))
}

/// An error that is already a complete HTTP response.
pub(crate) struct ApiError(pub Box<Response>);

impl ApiError {
    /// Dify/werkzeug error envelope `{"code", "message", "status"}`.
    pub fn dify(code_status: u16, code: &str, message: &str) -> ApiError {
        let body = serde_json::json!({"code": code, "message": message, "status": code_status});
        ApiError(Box::new(restx(code_status, &body)))
    }

    pub fn invalid_param(message: &str) -> ApiError {
        ApiError::dify(400, "invalid_param", message)
    }

    pub fn not_found(message: &str) -> ApiError {
        ApiError::dify(404, "not_found", message)
    }

    /// 401 with `WWW-Authenticate: Bearer realm="api"`.
    pub fn unauthorized(message: &str) -> ApiError {
        let mut resp = ApiError::dify(401, "unauthorized", message).0;
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"api\""),
        );
        ApiError(resp)
    }

    /// Uncaught non-HTTP exception: `{"message": "Internal Server Error", "code": "unknown", "status": 500}`.
    pub fn unknown() -> ApiError {
        let body = serde_json::json!({"message": "Internal Server Error", "code": "unknown", "status": 500});
        ApiError(Box::new(restx(500, &body)))
    }

    pub fn bad_request() -> ApiError {
        ApiError::dify(
            400,
            "bad_request",
            "The browser (or proxy) sent a request that this server could not understand.",
        )
    }

    pub fn unsupported_media_type() -> ApiError {
        ApiError::dify(
            415,
            "unsupported_media_type",
            "Did not attempt to load JSON data because the request Content-Type was not 'application/json'.",
        )
    }

    /// Werkzeug's default HTML 404 (unmatched route or non-UUID path segment).
    pub fn html_404() -> ApiError {
        ApiError(Box::new(raw_response(404, "text/html; charset=utf-8", HTML_404)))
    }

    /// JSON 405 with an `Allow` header.
    pub fn method_not_allowed(allow: &str) -> ApiError {
        let mut resp = ApiError::dify(
            405,
            "method_not_allowed",
            "The method is not allowed for the requested URL.",
        )
        .0;
        if let Ok(v) = HeaderValue::from_str(allow) {
            resp.headers_mut().insert(header::ALLOW, v);
        }
        ApiError(resp)
    }
}

const HTML_404: &str = "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.</p>\n";

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dumps_like_python() {
        let v = serde_json::json!({"a": [1, 2.5, null], "b": "75–80 °C 🍵", "c": "\u{7f}\n"});
        assert_eq!(
            py_dumps(&v),
            r#"{"a": [1, 2.5, null], "b": "75\u201380 \u00b0C \ud83c\udf75", "c": "\u007f\n"}"#
        );
    }

    #[test]
    fn float_repr_like_python() {
        assert_eq!(py_float_repr(0.768237), "0.768237");
        assert_eq!(py_float_repr(1e-5), "1e-05");
        assert_eq!(py_float_repr(1e16), "1e+16");
        assert_eq!(py_float_repr(12.5e15), "1.25e+16");
        assert_eq!(py_float_repr(100.0), "100.0");
        assert_eq!(py_float_repr(0.0001), "0.0001");
        assert_eq!(py_float_repr(-2.5), "-2.5");
    }
}
