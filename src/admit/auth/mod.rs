//! Authentication of tenant calls (request step 1, `request_filter`): reads `Authorization: Bearer`,
//! verifies the JWT and yields the caller's [`Identity`]. Failures become 401 and never reach Dify.

pub mod bearer;
pub mod error;
pub mod header;
pub mod jwt;
pub mod mint;
#[cfg(test)]
mod tests;

pub use bearer::bearer_token;
pub use error::AuthError;
pub use jwt::{Identity, JwtPolicy, JwtVerifier, VerifyKey};
use std::sync::Arc;

/// Authenticates a call from its `Authorization` header value at time `now` (Unix seconds).
pub fn authenticate(
    header: Option<&[u8]>,
    verifier: &JwtVerifier,
    now: u64,
) -> Result<Arc<Identity>, AuthError> {
    verifier.verify(bearer_token(header)?, now)
}
