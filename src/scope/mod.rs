//! Tenant isolation of Dify end users (request step 4, `request_body_filter`). Dify ties
//! conversations, feedback, stop and uploaded files to (app key, `user`); when tenants share an app,
//! the gateway makes `user` tenant-specific (`acme:bob`) in JSON bodies and in the multipart `user`
//! field of uploads, so tenant A's `bob` is never tenant B's.

pub mod json;
pub mod multipart;
pub mod params;

/// Dify's shared end user for requests without `user`; scoped per tenant like any other.
pub const DEFAULT_USER: &str = "DEFAULT-USER";

/// The `user` Dify sees for a tenant's `user`.
pub fn scoped(tenant: &str, user: &str) -> String {
    format!("{tenant}:{user}")
}
