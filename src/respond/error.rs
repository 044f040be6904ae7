//! Errors the gateway itself raises, in Dify's envelope `{"code", "message", "status"}` (every step of
//! the request flow ends here on failure): a closed [`ErrorKind`] decides the status, the code and the
//! client-safe message.

use bytes::Bytes;
use std::borrow::Cow;

/// What went wrong, as far as the client and the metrics are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: the request could not be read.
    BadRequest,
    /// 400: a parameter Dify would refuse, or one the gateway cannot pass on safely.
    InvalidParam,
    /// 400: an upload without a readable file part.
    NoFileUploaded,
    /// 415: a JSON endpoint called with another content type.
    UnsupportedMediaType,
    /// 401: no valid tenant JWT.
    Unauthorized,
    /// 403: tenant or app not allowed.
    Forbidden,
    /// 404: not a served endpoint.
    NotFound,
    /// 405: served path, other method.
    MethodNotAllowed,
    /// 413: body over `server.max_request_body`.
    RequestTooLarge,
    /// 429: a tenant limit is reached.
    TooManyRequests,
    /// 503: the limits cannot be checked (Redis fails, `on_redis_error = "closed"`).
    ServiceUnavailable,
    /// 502: Dify refused, is unreachable, or broke the connection.
    BadGateway,
    /// 504: Dify did not answer in time.
    GatewayTimeout,
    /// 500: a fault of the gateway.
    Internal,
}

impl ErrorKind {
    /// HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest | Self::InvalidParam | Self::NoFileUploaded => 400,
            Self::UnsupportedMediaType => 415,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::RequestTooLarge => 413,
            Self::TooManyRequests => 429,
            Self::ServiceUnavailable => 503,
            Self::BadGateway => 502,
            Self::GatewayTimeout => 504,
            Self::Internal => 500,
        }
    }

    /// The envelope's `code`.
    pub fn code(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::InvalidParam => "invalid_param",
            Self::NoFileUploaded => "no_file_uploaded",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::RequestTooLarge => "request_too_large",
            Self::TooManyRequests => "too_many_requests",
            Self::ServiceUnavailable => "service_unavailable",
            Self::BadGateway => "bad_gateway",
            Self::GatewayTimeout => "gateway_timeout",
            Self::Internal => "internal_server_error",
        }
    }
}

/// An error answered by the gateway: a kind plus a message safe to show the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    /// Classification.
    pub kind: ErrorKind,
    /// Client-safe message; never contains keys, tokens or internal addresses.
    pub message: Cow<'static, str>,
}

impl GatewayError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The JSON body, formatted as Dify formats its own (`json.dumps` spacing, trailing newline).
    pub fn body(&self) -> Bytes {
        envelope(self.kind.code(), &self.message, self.kind.status())
    }
}

/// Dify's error envelope: `{"code": ..., "message": ..., "status": N}` plus `\n`.
pub fn envelope(code: &str, message: &str, status: u16) -> Bytes {
    let q = |s: &str| serde_json::Value::from(s).to_string();
    Bytes::from(format!(
        "{{\"code\": {}, \"message\": {}, \"status\": {status}}}\n",
        q(code),
        q(message)
    ))
}

/// The generic message for a kind.
pub fn default_message(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::BadRequest => "The request could not be understood",
        ErrorKind::InvalidParam => "A parameter is not valid",
        ErrorKind::NoFileUploaded => "Please upload your file.",
        ErrorKind::UnsupportedMediaType => "The request content type is not supported",
        ErrorKind::Unauthorized => "A valid tenant token is required",
        ErrorKind::Forbidden => "Not allowed",
        ErrorKind::NotFound => "The requested URL was not found on the gateway",
        ErrorKind::MethodNotAllowed => "The method is not allowed for the requested URL",
        ErrorKind::RequestTooLarge => "Request body is larger than the gateway accepts",
        ErrorKind::TooManyRequests => "A limit of this tenant is reached",
        ErrorKind::ServiceUnavailable => "The gateway cannot check this tenant's limits right now",
        ErrorKind::BadGateway => "Dify could not be reached",
        ErrorKind::GatewayTimeout => "Dify did not answer in time",
        ErrorKind::Internal => "The gateway failed to handle the request",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_matches_difys_format() {
        let e = GatewayError::new(ErrorKind::Unauthorized, "Access token has \"expired\"");
        assert_eq!(
            &e.body()[..],
            b"{\"code\": \"unauthorized\", \"message\": \"Access token has \\\"expired\\\"\", \"status\": 401}\n"
        );
    }
}
