//! Tenant isolation of Dify end users (request step 2: planned in `request_filter`, applied in
//! `request_body_filter`). Dify ties conversations, feedback, stop and uploaded files to (app key,
//! `user`); when tenants share an app, the gateway makes `user` tenant-specific (`acme:bob`) in JSON
//! bodies and in the multipart `user` field of uploads, so tenant A's `bob` is never tenant B's. The
//! Pingora side is in [`pingora`].

pub mod json;
pub mod multipart;
pub mod params;
pub mod pingora;
pub mod plan;
pub mod user;
#[cfg(any(test, feature = "models"))]
pub mod werkzeug;

pub use plan::{BodyFacts, BodyPlan};
pub use user::{DEFAULT_USER, scoped};

/// The request body's progress (filled by this step).
#[derive(Debug, Default)]
pub struct BodyState {
    /// How the body is handled.
    pub plan: BodyPlan,
    /// Bytes received so far.
    pub bytes: u64,
    /// The body was read in `request_filter` and is replayed from Pingora's buffer.
    pub read_early: bool,
}
