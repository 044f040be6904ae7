//! Classifies what went wrong while proxying (Pingora's `fail_to_connect` / `fail_to_proxy`, and
//! failed cache fills): the bounded [`UpstreamFailure`] kind of metrics and logs, and the envelope the
//! client gets.

use super::error::{ErrorKind, GatewayError, default_message};
use pingora::{ErrorSource, ErrorType};

/// Which way an upstream failure went: the bounded `kind` label of upstream error metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamFailure {
    /// Connection refused or no route.
    Refused,
    /// Connect timed out.
    ConnectTimeout,
    /// A read or write timed out.
    Timeout,
    /// TLS handshake or certificate failure.
    Tls,
    /// Connection closed or broken, or an invalid response.
    Broken,
    /// Name resolution failed.
    Resolve,
    /// No Dify replica is healthy.
    NoneHealthy,
    /// Every healthy replica is at `max_inflight_per_replica`, past the wait.
    Saturated,
}

impl From<crate::upstream::NoReplica> for UpstreamFailure {
    fn from(e: crate::upstream::NoReplica) -> Self {
        match e {
            crate::upstream::NoReplica::NoneHealthy => Self::NoneHealthy,
            crate::upstream::NoReplica::Saturated => Self::Saturated,
        }
    }
}

impl UpstreamFailure {
    /// Every kind, for metric pre-creation.
    pub const ALL: [UpstreamFailure; 8] = [
        Self::Refused,
        Self::ConnectTimeout,
        Self::Timeout,
        Self::Tls,
        Self::Broken,
        Self::Resolve,
        Self::NoneHealthy,
        Self::Saturated,
    ];

    /// What the client is told.
    pub fn answer(self) -> GatewayError {
        let (kind, msg) = match self {
            Self::Refused => (
                ErrorKind::BadGateway,
                "Dify refused the connection or is unreachable",
            ),
            Self::Resolve => (ErrorKind::BadGateway, "Dify's address could not be resolved"),
            Self::NoneHealthy => (ErrorKind::BadGateway, "No Dify replica is healthy"),
            Self::Saturated => (
                ErrorKind::ServiceUnavailable,
                "Every Dify replica is at its limit of requests in flight; retry shortly",
            ),
            Self::ConnectTimeout => (
                ErrorKind::GatewayTimeout,
                "Dify did not accept the connection in time",
            ),
            Self::Timeout => (ErrorKind::GatewayTimeout, "Dify did not answer in time"),
            Self::Tls => (ErrorKind::BadGateway, "TLS handshake with Dify failed"),
            Self::Broken => (
                ErrorKind::BadGateway,
                "Dify closed the connection or sent an invalid response",
            ),
        };
        GatewayError::new(kind, msg)
    }

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::ConnectTimeout => "connect_timeout",
            Self::Timeout => "timeout",
            Self::Tls => "tls",
            Self::Broken => "broken",
            Self::Resolve => "resolve",
            Self::NoneHealthy => "none_healthy",
            Self::Saturated => "saturated",
        }
    }
}

/// How a Pingora error is answered: `None` when the client connection is already gone.
pub fn classify(etype: &ErrorType, source: &ErrorSource) -> (Option<GatewayError>, Option<UpstreamFailure>) {
    use ErrorType as E;
    let gw = GatewayError::new;
    if let E::HTTPStatus(413) = etype {
        let msg = "Request body is larger than the gateway accepts";
        return (Some(gw(ErrorKind::RequestTooLarge, msg)), None);
    }
    if let E::HTTPStatus(code) = etype {
        let kind = match code {
            400 => ErrorKind::BadRequest,
            502 => ErrorKind::BadGateway,
            504 => ErrorKind::GatewayTimeout,
            _ => ErrorKind::Internal,
        };
        return (Some(gw(kind, default_message(kind))), None);
    }
    match source {
        ErrorSource::Downstream => match etype {
            E::ReadError | E::WriteError | E::ConnectionClosed => (None, None),
            E::ReadTimedout => (
                Some(gw(ErrorKind::BadRequest, "Request body was not received in time")),
                None,
            ),
            _ => (
                Some(gw(ErrorKind::BadRequest, default_message(ErrorKind::BadRequest))),
                None,
            ),
        },
        ErrorSource::Upstream => {
            let f = upstream_failure(etype);
            (Some(f.answer()), Some(f))
        }
        ErrorSource::Internal | ErrorSource::Unset => match etype {
            E::ConnectTimedout | E::ConnectRefused | E::ConnectNoRoute | E::ConnectError => {
                classify(etype, &ErrorSource::Upstream)
            }
            _ => (
                Some(gw(ErrorKind::Internal, default_message(ErrorKind::Internal))),
                None,
            ),
        },
    }
}

/// The kind of an upstream failure reported by Pingora.
pub fn upstream_failure(etype: &ErrorType) -> UpstreamFailure {
    use ErrorType as E;
    match etype {
        E::ConnectTimedout => UpstreamFailure::ConnectTimeout,
        E::ReadTimedout | E::WriteTimedout | E::TLSHandshakeTimedout => UpstreamFailure::Timeout,
        E::ConnectRefused | E::ConnectNoRoute | E::ConnectError | E::BindError | E::SocketError => {
            UpstreamFailure::Refused
        }
        E::TLSHandshakeFailure | E::InvalidCert | E::HandshakeError | E::TLSWantX509Lookup => {
            UpstreamFailure::Tls
        }
        E::Custom("resolve") => UpstreamFailure::Resolve,
        E::Custom("none_healthy") => UpstreamFailure::NoneHealthy,
        E::Custom("saturated") => UpstreamFailure::Saturated,
        _ => UpstreamFailure::Broken,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_upstream_failures() {
        let (e, f) = classify(&ErrorType::ConnectRefused, &ErrorSource::Upstream);
        assert_eq!(
            (e.map(|e| e.kind), f),
            (Some(ErrorKind::BadGateway), Some(UpstreamFailure::Refused))
        );
        let (e, _) = classify(&ErrorType::ReadTimedout, &ErrorSource::Upstream);
        assert_eq!(e.map(|e| e.kind), Some(ErrorKind::GatewayTimeout));
        let (e, _) = classify(&ErrorType::HTTPStatus(413), &ErrorSource::Internal);
        assert_eq!(e.map(|e| e.kind.status()), Some(413));
        let (e, _) = classify(&ErrorType::WriteError, &ErrorSource::Downstream);
        assert!(e.is_none());
    }
}
