//! Gateway API keys (request step 1): `dgw-` and 256 random bits, sent exactly where a JWT goes (so
//! both official SDKs use them as their API key). Looked up by the SHA-256 of the key, which is all
//! the store keeps; an expired key is refused; a key bound to an app always selects it.

use super::error::AuthError;
use super::{Identity, Via};
use crate::admit::snapshot::Snapshot;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Prefix of gateway API keys.
pub const API_KEY_PREFIX: &str = "dgw-";

/// What is kept of a gateway API key: its SHA-256. The key has 256 random bits, so a slow KDF adds
/// nothing and would cost every request; the lookup by hash reveals nothing about the key.
pub fn api_key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The identity a gateway API key stands for at `now`.
pub fn identify(token: &str, snap: &Snapshot, now: u64) -> Result<Arc<Identity>, AuthError> {
    let key = snap
        .api_keys
        .get(&api_key_hash(token))
        .ok_or(AuthError::UnknownApiKey)?;
    if key.expires_at.is_some_and(|e| now >= e) {
        return Err(AuthError::ApiKeyExpired);
    }
    Ok(Arc::new(Identity {
        tenant: key.tenant.clone(),
        app: key.app.clone(),
        exp: key.expires_at.unwrap_or(u64::MAX),
        via: Via::ApiKey {
            id: key.id.clone(),
            created_at: key.created_at,
        },
    }))
}
