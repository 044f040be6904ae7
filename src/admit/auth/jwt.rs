//! Tenant JWT verification (request step 1): the header names the key (`kid`) and algorithm, which
//! must be the key's pinned one (`none` and HS/RS confusion are refused by name); then jsonwebtoken
//! checks the signature, `exp` (required), `nbf`, `iss` and `aud`; then the claims are read, and
//! the key's tenant binding and `auth.max_token_lifetime` applied. Pure.

use super::AuthError;
use super::header::JwtHeader;
use super::keys::{JwtPolicy, VerifyKey};
use jsonwebtoken::{Algorithm, decode, errors::ErrorKind};
use serde_json::{Map, Value};
use std::sync::Arc;

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// Value of the tenant claim.
    pub tenant: String,
    /// Value of the app claim, when the token carries one.
    pub app: Option<String>,
    /// `exp`, Unix seconds.
    pub exp: u64,
    /// `iat`, Unix seconds, when present.
    pub iat: Option<u64>,
    /// `jti`, when present.
    pub jti: Option<String>,
}

/// The algorithm the header names, among those jsonwebtoken knows (`none` is not one).
pub fn algorithm(header: &JwtHeader) -> Result<Algorithm, AuthError> {
    header.alg.parse().map_err(|_| AuthError::AlgorithmNotAllowed)
}

/// Verifies `token` (whose header says `alg`) against `candidates`: the first key of that algorithm
/// whose signature matches decides; its binding and the lifetime policy are applied.
pub fn verify<'a>(
    token: &str,
    alg: Algorithm,
    candidates: impl Iterator<Item = &'a Arc<VerifyKey>>,
    policy: &JwtPolicy,
) -> Result<(Claims, Arc<VerifyKey>), AuthError> {
    let mut last = AuthError::AlgorithmNotAllowed;
    let mut any = false;
    for key in candidates {
        any = true;
        if key.algorithm != alg {
            continue;
        }
        match decode::<Map<String, Value>>(token, &key.key, &policy.validation(alg)) {
            Ok(data) => {
                let claims = claims(&data.claims, policy)?;
                check(&claims, key, policy)?;
                return Ok((claims, key.clone()));
            }
            Err(e) => {
                last = map_error(e.kind());
                if last != AuthError::BadSignature {
                    return Err(last);
                }
            }
        }
    }
    if !any {
        return Err(AuthError::UnknownKeyId);
    }
    Err(last)
}

/// The key's tenant binding and the lifetime policy.
pub fn check(claims: &Claims, key: &VerifyKey, policy: &JwtPolicy) -> Result<(), AuthError> {
    if !key.binding.allows(&claims.tenant) {
        return Err(AuthError::WrongTenant);
    }
    if let Some(max) = policy.max_lifetime {
        let iat = claims.iat.ok_or(AuthError::LifetimeTooLong)?;
        if claims.exp.saturating_sub(iat) > max.as_secs() {
            return Err(AuthError::LifetimeTooLong);
        }
    }
    Ok(())
}

fn claims(map: &Map<String, Value>, policy: &JwtPolicy) -> Result<Claims, AuthError> {
    let tenant = match map.get(&policy.tenant_claim) {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        _ => return Err(AuthError::MissingTenant),
    };
    let app = match map.get(&policy.app_claim) {
        None | Some(Value::Null) => None,
        Some(Value::String(a)) if !a.is_empty() => Some(a.clone()),
        Some(_) => return Err(AuthError::Malformed),
    };
    let exp = map
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or(AuthError::Malformed)?;
    let iat = match map.get("iat") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or(AuthError::Malformed)?),
    };
    let jti = match map.get("jti") {
        None | Some(Value::Null) => None,
        Some(Value::String(j)) => Some(j.clone()),
        Some(_) => return Err(AuthError::Malformed),
    };
    Ok(Claims {
        tenant,
        app,
        exp,
        iat,
        jti,
    })
}

fn map_error(kind: &ErrorKind) -> AuthError {
    match kind {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => AuthError::AlgorithmNotAllowed,
        ErrorKind::MissingRequiredClaim(c) if c == "exp" => AuthError::MissingExp,
        ErrorKind::MissingRequiredClaim(c) if c == "iss" => AuthError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => AuthError::WrongAudience,
        _ => AuthError::Malformed,
    }
}
