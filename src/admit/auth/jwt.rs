//! Tenant JWT verification (request step 1, `request_filter`): algorithm pinned per key, `exp`
//! required, `nbf`/`iss`/`aud` checked, and verified tokens cached by a hash of the token until `exp`.

use super::AuthError;
use super::header::peek;
use crate::clock::unix_now;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, errors::ErrorKind};
use moka::sync::Cache;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Who a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Value of the tenant claim.
    pub tenant: String,
    /// Value of the app claim, when the token carries one.
    pub app: Option<String>,
    /// `exp`, Unix seconds.
    pub exp: u64,
}

/// One verification key with its algorithm pinned.
pub struct VerifyKey {
    /// Matched against the JWT header `kid`.
    pub id: String,
    /// The only algorithm this key accepts.
    pub algorithm: Algorithm,
    key: DecodingKey,
    validation: Validation,
}

/// Claim names and checks shared by every key.
#[derive(Debug, Clone)]
pub struct JwtPolicy {
    /// Claim that names the tenant.
    pub tenant_claim: String,
    /// Claim that names the app.
    pub app_claim: String,
    /// Required issuer.
    pub issuer: Option<String>,
    /// Required audience.
    pub audience: Option<String>,
    /// Clock leeway for `exp`/`nbf`.
    pub leeway: Duration,
}

impl VerifyKey {
    /// Builds a key; `validation` is derived from `policy` and pinned to `algorithm`.
    pub fn new(id: String, algorithm: Algorithm, key: DecodingKey, policy: &JwtPolicy) -> Self {
        let mut validation = Validation::new(algorithm);
        validation.algorithms = vec![algorithm];
        validation.leeway = policy.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(iss) = &policy.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        match &policy.audience {
            Some(aud) => {
                validation.set_audience(&[aud]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        Self {
            id,
            algorithm,
            key,
            validation,
        }
    }
}

/// Verifies tenant JWTs against the configured keys, with a cache of verified tokens.
pub struct JwtVerifier {
    keys: Vec<VerifyKey>,
    policy: JwtPolicy,
    cache: Cache<[u8; 32], Arc<Identity>>,
}

struct UntilExp;

impl moka::Expiry<[u8; 32], Arc<Identity>> for UntilExp {
    fn expire_after_create(&self, _k: &[u8; 32], v: &Arc<Identity>, _at: Instant) -> Option<Duration> {
        Some(Duration::from_secs(v.exp.saturating_sub(unix_now())))
    }
}

impl JwtVerifier {
    /// A verifier over `keys`, caching at most `cache_entries` verified tokens.
    pub fn new(keys: Vec<VerifyKey>, policy: JwtPolicy, cache_entries: u64) -> Self {
        let cache = Cache::builder()
            .max_capacity(cache_entries)
            .expire_after(UntilExp)
            .build();
        Self { keys, policy, cache }
    }

    /// The claim names and checks in force.
    pub fn policy(&self) -> &JwtPolicy {
        &self.policy
    }

    /// Verifies `token` at time `now` (Unix seconds). A token seen before and not yet at its `exp`
    /// is answered from the cache without a signature check.
    pub fn verify(&self, token: &str, now: u64) -> Result<Arc<Identity>, AuthError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(id) = self.cache.get(&digest)
            && now < id.exp
        {
            return Ok(id);
        }
        let id = Arc::new(self.verify_uncached(token)?);
        if now < id.exp {
            self.cache.insert(digest, id.clone());
        }
        Ok(id)
    }

    fn verify_uncached(&self, token: &str) -> Result<Identity, AuthError> {
        let header = peek(token)?;
        // `none` and every algorithm jsonwebtoken does not know are refused by name.
        let alg: Algorithm = header.alg.parse().map_err(|_| AuthError::AlgorithmNotAllowed)?;
        let named: Vec<&VerifyKey> = match &header.kid {
            Some(kid) => self.keys.iter().filter(|k| &k.id == kid).collect(),
            None => self.keys.iter().collect(),
        };
        if named.is_empty() {
            return Err(AuthError::UnknownKeyId);
        }
        let mut last = AuthError::AlgorithmNotAllowed;
        for key in named.into_iter().filter(|k| k.algorithm == alg) {
            match decode::<Map<String, Value>>(token, &key.key, &key.validation) {
                Ok(data) => return self.identity(&data.claims),
                Err(e) => {
                    last = map_error(e.kind());
                    if last != AuthError::BadSignature {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    fn identity(&self, claims: &Map<String, Value>) -> Result<Identity, AuthError> {
        let tenant = match claims.get(&self.policy.tenant_claim) {
            Some(Value::String(t)) if !t.is_empty() => t.clone(),
            _ => return Err(AuthError::MissingTenant),
        };
        let app = match claims.get(&self.policy.app_claim) {
            None | Some(Value::Null) => None,
            Some(Value::String(a)) if !a.is_empty() => Some(a.clone()),
            Some(_) => return Err(AuthError::Malformed),
        };
        let exp = claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or(AuthError::Malformed)?;
        Ok(Identity { tenant, app, exp })
    }
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
