//! What Dify's `user` becomes for a tenant (request step 7): `{tenant}:{user}`, and the tenant's own
//! `DEFAULT-USER` where Dify would fall back to the end user shared by everyone. Pure.

/// Dify's shared end user for requests without `user`; scoped per tenant like any other.
pub const DEFAULT_USER: &str = "DEFAULT-USER";

/// The `user` Dify sees for a tenant's `user`.
pub fn scoped(tenant: &str, user: &str) -> String {
    format!("{tenant}:{user}")
}
