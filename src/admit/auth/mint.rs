//! Signs development JWTs for `dify-gateway token` and `demo` (not on the request path).

use crate::secret::Secret;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Map, Value};
use std::time::Duration;

/// What to put in a development token.
pub struct MintRequest<'a> {
    /// HS256 secret and its key id.
    pub secret: &'a Secret,
    /// Header `kid`.
    pub kid: &'a str,
    /// Claim names and issuer/audience to include.
    pub policy: &'a super::JwtPolicy,
    /// Tenant id.
    pub tenant: &'a str,
    /// App name, if the token should pin one.
    pub app: Option<&'a str>,
    /// Lifetime.
    pub ttl: Duration,
    /// Issue time, Unix seconds.
    pub now: u64,
}

/// Signs an HS256 token for `req`.
pub fn mint(req: &MintRequest<'_>) -> Result<String, jsonwebtoken::errors::Error> {
    let mut claims = Map::new();
    claims.insert(req.policy.tenant_claim.clone(), Value::from(req.tenant));
    if let Some(app) = req.app {
        claims.insert(req.policy.app_claim.clone(), Value::from(app));
    }
    claims.insert("iat".into(), Value::from(req.now));
    // A token id, so that this one token can be revoked.
    claims.insert("jti".into(), Value::from(uuid::Uuid::new_v4().to_string()));
    claims.insert("exp".into(), Value::from(req.now + req.ttl.as_secs()));
    if let Some(iss) = &req.policy.issuer {
        claims.insert("iss".into(), Value::from(iss.as_str()));
    }
    if let Some(aud) = &req.policy.audience {
        claims.insert("aud".into(), Value::from(aud.as_str()));
    }
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(req.kid.to_string());
    encode(
        &header,
        &claims,
        &EncodingKey::from_secret(req.secret.expose().as_bytes()),
    )
}
