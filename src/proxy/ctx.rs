//! Per-request state carried through the Pingora phases, grouped by concern. Created in `new_ctx`
//! (the snapshot is loaded once here and used to the end of the request).

use crate::auth::AuthError;
use crate::error::UpstreamFailure;
use crate::route::Route;
use crate::state::{App, Snapshot, Tenant};
use std::sync::Arc;
use std::time::Instant;

/// What one request has learned so far.
pub struct RequestCtx {
    /// The snapshot this request uses from start to end.
    pub snapshot: Arc<Snapshot>,
    /// When the request started.
    pub start: Instant,
    /// The request id returned to the client and sent to Dify.
    pub request_id: String,
    /// The classified endpoint, once known.
    pub route: Option<Route>,
    /// The caller's tenant and app, once resolved.
    pub tenant: Option<(Arc<Tenant>, Arc<App>)>,
    /// Request body bytes forwarded so far.
    pub body_bytes: u64,
    /// The response is a stream (SSE or audio) and counted in `active_streams`.
    pub streaming: bool,
    /// Why auth refused the call, for metrics.
    pub auth_failure: Option<AuthError>,
    /// Why the upstream failed, for metrics.
    pub upstream_failure: Option<UpstreamFailure>,
}

impl RequestCtx {
    /// A fresh context over `snapshot`.
    pub fn new(snapshot: Arc<Snapshot>) -> Self {
        Self {
            snapshot,
            start: Instant::now(),
            request_id: String::new(),
            route: None,
            tenant: None,
            body_bytes: 0,
            streaming: false,
            auth_failure: None,
            upstream_failure: None,
        }
    }

    /// Endpoint label.
    pub fn endpoint(&self) -> &'static str {
        self.route
            .as_ref()
            .map(|r| r.endpoint.name())
            .unwrap_or("unmatched")
    }

    /// Tenant and app labels (configured names only, else `none`).
    pub fn tenant_app(&self) -> (&str, &str) {
        match &self.tenant {
            Some((t, a)) => (t.id.as_str(), a.name.as_str()),
            None => ("none", "none"),
        }
    }
}
