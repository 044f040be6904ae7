//! Validation of `[auth]` (start-up step 2): claim names, leeway, and every key parsed and pinned to
//! its algorithm.

use super::problems::{Problems, one_of};
use crate::admit::auth::{JwtPolicy, VerifyKey};
use crate::config::file::{AuthSection, KeySection};
use crate::config::{Purpose, units};
use crate::secret::Secret;
use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

/// Shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size).
const MIN_HS_SECRET: usize = 32;

/// HS256 secrets printed in this repository (the reference config's development default): anyone
/// can mint tokens with them, so only `dify-gateway demo` may run with one.
pub const PUBLISHED_SECRETS: &[&str] = &["dev-only-secret-change-me-0123456789abcdef"];

pub(super) type AuthParts = (Vec<VerifyKey>, JwtPolicy, Option<(String, Secret)>);

pub(super) fn auth(p: &mut Problems, a: &AuthSection, base: &Path, purpose: Purpose) -> AuthParts {
    for (key, val) in [
        ("auth.tenant_claim", &a.tenant_claim),
        ("auth.app_claim", &a.app_claim),
    ] {
        if val.is_empty() {
            p.add(key, "must not be empty");
        }
    }
    if a.token_cache_entries == 0 {
        p.add("auth.token_cache_entries", "must be at least 1");
    }
    let policy = JwtPolicy {
        tenant_claim: a.tenant_claim.clone(),
        app_claim: a.app_claim.clone(),
        issuer: a.issuer.clone().filter(|s| !s.is_empty()),
        audience: a.audience.clone().filter(|s| !s.is_empty()),
        leeway: units::duration(&a.leeway).unwrap_or_else(|e| {
            p.add("auth.leeway", e);
            Duration::ZERO
        }),
    };
    if a.keys.is_empty() {
        p.add("auth.keys", "at least one key is required");
    }
    let mut ids = HashSet::new();
    let mut keys = Vec::new();
    let mut signing = None;
    for (i, k) in a.keys.iter().enumerate() {
        let path = format!("auth.keys[{i}]");
        if k.id.is_empty() {
            p.add(format!("{path}.id"), "must not be empty");
        } else if !ids.insert(k.id.clone()) {
            p.add(format!("{path}.id"), format!("`{}` is used by another key", k.id));
        }
        if let Some((alg, dk, secret)) = key(p, &path, k, base, purpose) {
            if alg == Algorithm::HS256 && signing.is_none() {
                signing = secret.map(|s| (k.id.clone(), s));
            }
            keys.push(VerifyKey::new(k.id.clone(), alg, dk, &policy));
        }
    }
    (keys, policy, signing)
}

pub(super) fn key(
    p: &mut Problems,
    path: &str,
    k: &KeySection,
    base: &Path,
    purpose: Purpose,
) -> Option<(Algorithm, DecodingKey, Option<Secret>)> {
    let alg = match k.algorithm.as_str() {
        "HS256" => Algorithm::HS256,
        "RS256" => Algorithm::RS256,
        "ES256" => Algorithm::ES256,
        other => {
            p.add(
                format!("{path}.algorithm"),
                format!("`{other}` is not one of HS256, RS256, ES256"),
            );
            return None;
        }
    };
    if alg == Algorithm::HS256 {
        if k.public_key.is_some() || k.public_key_file.is_some() {
            p.add(
                format!("{path}.public_key"),
                "is for RS256/ES256 keys; HS256 takes secret",
            );
        }
        let secret = one_of(
            p,
            path,
            ("secret", &k.secret),
            ("secret_file", &k.secret_file),
            base,
        )?;
        if PUBLISHED_SECRETS.contains(&secret.as_str()) && purpose != Purpose::Demo {
            let msg = "is the published development secret of config/gateway.toml, with which anyone \
                       can sign tokens: set GW_JWT_SECRET (only `dify-gateway demo` runs with it)";
            p.add(format!("{path}.secret"), msg);
            return None;
        }
        if secret.len() < MIN_HS_SECRET {
            p.add(
                format!("{path}.secret"),
                format!("must be at least {MIN_HS_SECRET} bytes"),
            );
            return None;
        }
        let dk = DecodingKey::from_secret(secret.as_bytes());
        return Some((alg, dk, Some(Secret::new(secret))));
    }
    if k.secret.is_some() || k.secret_file.is_some() {
        p.add(
            format!("{path}.secret"),
            "is for HS256 keys; RS256/ES256 take public_key",
        );
    }
    let pem = one_of(
        p,
        path,
        ("public_key", &k.public_key),
        ("public_key_file", &k.public_key_file),
        base,
    )?;
    let parsed = if alg == Algorithm::RS256 {
        DecodingKey::from_rsa_pem(pem.as_bytes())
    } else {
        DecodingKey::from_ec_pem(pem.as_bytes())
    };
    match parsed {
        Ok(dk) => Some((alg, dk, None)),
        Err(e) => {
            p.add(
                format!("{path}.public_key"),
                format!("is not a PEM {} public key ({e})", k.algorithm),
            );
            None
        }
    }
}
