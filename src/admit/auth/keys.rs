//! The keys tenant JWTs are verified with (request step 1): each pinned to one algorithm, and bound
//! to the tenants it may sign for: every tenant (a `[[auth.keys]]` entry without `tenants`, one
//! trusted issuer) or only some (`tenants = [...]`, and every key added through the admin API).

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

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
    /// Longest `exp - iat` accepted (then `iat` is required); `None` = any.
    pub max_lifetime: Option<Duration>,
}

impl Default for JwtPolicy {
    fn default() -> Self {
        Self {
            tenant_claim: "tenant".into(),
            app_claim: "app".into(),
            issuer: None,
            audience: None,
            leeway: Duration::from_secs(30),
            max_lifetime: None,
        }
    }
}

impl JwtPolicy {
    /// The checks jsonwebtoken runs for a key of `algorithm`.
    pub fn validation(&self, algorithm: Algorithm) -> Validation {
        let mut v = Validation::new(algorithm);
        v.algorithms = vec![algorithm];
        v.leeway = self.leeway.as_secs();
        v.validate_exp = true;
        v.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(iss) = &self.issuer {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        match &self.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        v
    }
}

/// Which tenants a key may sign for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// Any tenant.
    Any,
    /// Only these.
    Tenants(Arc<[String]>),
}

impl Binding {
    /// Whether a token for `tenant` may be signed with the key.
    pub fn allows(&self, tenant: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Tenants(t) => t.iter().any(|x| x == tenant),
        }
    }
}

/// One verification key with its algorithm pinned.
pub struct VerifyKey {
    /// Matched against the JWT header `kid`.
    pub id: String,
    /// The only algorithm this key accepts.
    pub algorithm: Algorithm,
    /// The tenants it may sign for.
    pub binding: Binding,
    /// Where it comes from and what it is, unique across all keys (`config:dev@<fingerprint>`,
    /// `store:acme/kid-1@…`, `jwks:<source>#kid@…`): a cached verification stands only while this
    /// very key does.
    pub origin: Arc<str>,
    /// The key material.
    pub key: DecodingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("id", &self.id)
            .field("algorithm", &self.algorithm)
            .field("binding", &self.binding)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// The static keys in force (configuration and store), by origin and by id.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: Vec<Arc<VerifyKey>>,
    by_origin: HashMap<Arc<str>, Arc<VerifyKey>>,
}

impl KeyRing {
    /// A ring of `keys` (origins are unique; a repeated one keeps the first).
    pub fn new(keys: Vec<Arc<VerifyKey>>) -> Self {
        let mut by_origin = HashMap::new();
        for k in &keys {
            by_origin.entry(k.origin.clone()).or_insert_with(|| k.clone());
        }
        Self { keys, by_origin }
    }

    /// The keys a token with `kid` may be verified with (every key without a `kid`).
    pub fn candidates<'a>(&'a self, kid: Option<&'a str>) -> impl Iterator<Item = &'a Arc<VerifyKey>> + 'a {
        self.keys.iter().filter(move |k| kid.is_none_or(|id| k.id == id))
    }

    /// The key with `origin`, while it is in force.
    pub fn by_origin(&self, origin: &str) -> Option<&Arc<VerifyKey>> {
        self.by_origin.get(origin)
    }

    /// Every key.
    pub fn all(&self) -> &[Arc<VerifyKey>] {
        &self.keys
    }
}

/// A short fingerprint of key material (8 bytes of its SHA-256, hex): part of a key's origin, so
/// that a key replaced under the same id is a different key to the verified-token cache.
pub fn fingerprint(material: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(material)[..8])
}

/// Shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
pub const MIN_HS_SECRET: usize = 32;

/// HS256 secrets printed in this repository (the reference config's development default): anyone
/// can mint tokens with them, so only `dify-gateway demo` may run with one.
pub const PUBLISHED_SECRETS: &[&str] = &["dev-only-secret-change-me-0123456789abcdef"];

/// The algorithm called `name` among those a key may be pinned to.
pub fn pinned_algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "HS256" => Some(Algorithm::HS256),
        "RS256" => Some(Algorithm::RS256),
        "ES256" => Some(Algorithm::ES256),
        _ => None,
    }
}

/// Key material read for `algorithm`: an HS256 secret (long enough, never a published one) or a
/// PEM public key. `Err` says what is wrong with it, for the problem named after its field.
pub fn decoding_key(algorithm: Algorithm, material: &str) -> Result<DecodingKey, String> {
    match algorithm {
        Algorithm::HS256 if PUBLISHED_SECRETS.contains(&material) => Err(
            "is the published development secret of config/gateway.toml, with which anyone can sign tokens"
                .into(),
        ),
        Algorithm::HS256 if material.len() < MIN_HS_SECRET => {
            Err(format!("must be at least {MIN_HS_SECRET} bytes"))
        }
        Algorithm::HS256 => Ok(DecodingKey::from_secret(material.as_bytes())),
        Algorithm::RS256 => DecodingKey::from_rsa_pem(material.as_bytes())
            .map_err(|e| format!("is not a PEM RSA public key ({e})")),
        Algorithm::ES256 => DecodingKey::from_ec_pem(material.as_bytes())
            .map_err(|e| format!("is not a PEM P-256 public key ({e})")),
        other => Err(format!("{other:?} keys are not accepted")),
    }
}
