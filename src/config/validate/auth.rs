//! Validation of `[auth]` (start-up step 2): claim names, leeway, the token lifetime cap, every key
//! parsed, pinned to its algorithm and bound to its tenants, and the identity providers' key sets.

use super::problems::{Problems, one_of};
use crate::admit::auth::jwks::JwksSource;
use crate::admit::auth::keys::{Binding, JwtPolicy, VerifyKey, decoding_key, fingerprint, pinned_algorithm};
use crate::config::file::{AuthSection, JwksSection, KeySection};
use crate::config::{Purpose, units};
use crate::secret::Secret;
use jsonwebtoken::Algorithm;
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use crate::admit::auth::keys::PUBLISHED_SECRETS;

/// What `[auth]` compiles to.
pub(super) struct AuthParts {
    /// `[[auth.keys]]`.
    pub keys: Vec<Arc<VerifyKey>>,
    /// `[[auth.jwks]]`.
    pub jwks: Vec<JwksSource>,
    /// Claim names and checks.
    pub policy: JwtPolicy,
    /// The first HS256 key of every tenant (id, secret), for development tokens.
    pub signing: Option<(String, Secret)>,
}

/// `others` says whether tenants may come from elsewhere than keys in this file (a store).
pub(super) fn auth(
    p: &mut Problems,
    a: &AuthSection,
    base: &Path,
    purpose: Purpose,
    others: bool,
) -> AuthParts {
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
        max_lifetime: a
            .max_token_lifetime
            .as_deref()
            .map(|t| p.duration("auth.max_token_lifetime", t)),
    };
    if a.keys.is_empty() && a.jwks.is_empty() && !others {
        p.add(
            "auth.keys",
            "at least one key (or an [[auth.jwks]] key set, or a [store]) is required",
        );
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
        let binding = binding(p, &path, k.tenants.as_deref());
        if let Some((alg, key, material)) = key(p, &path, k, base, purpose) {
            let origin = format!("config:{}@{}", k.id, fingerprint(material.expose().as_bytes()));
            if alg == Algorithm::HS256 && signing.is_none() && binding == Binding::Any {
                signing = Some((k.id.clone(), material));
            }
            keys.push(Arc::new(VerifyKey {
                id: k.id.clone(),
                algorithm: alg,
                binding,
                origin: Arc::from(origin),
                key,
            }));
        }
    }
    let jwks = a
        .jwks
        .iter()
        .enumerate()
        .filter_map(|(i, j)| jwks_source(p, i, j))
        .collect();
    AuthParts {
        keys,
        jwks,
        policy,
        signing,
    }
}

/// `tenants = [...]` of a key or key set: unset = every tenant; set = at least one, none empty.
fn binding(p: &mut Problems, path: &str, tenants: Option<&[String]>) -> Binding {
    match tenants {
        None => Binding::Any,
        Some([]) => {
            let msg = "must name at least one tenant (leave it out for a key of every tenant)";
            p.add(format!("{path}.tenants"), msg);
            Binding::Any
        }
        Some(list) => {
            if list.iter().any(String::is_empty) {
                p.add(format!("{path}.tenants"), "must not hold an empty id");
            }
            Binding::Tenants(Arc::from(list.to_vec()))
        }
    }
}

fn jwks_source(p: &mut Problems, i: usize, j: &JwksSection) -> Option<JwksSource> {
    let path = format!("auth.jwks[{i}]");
    let binding = binding(p, &path, j.tenants.as_deref());
    let refresh = p.duration(&format!("{path}.refresh"), &j.refresh);
    if let Err(e) = http_url(&j.url) {
        p.add(format!("{path}.url"), e);
        return None;
    }
    Some(JwksSource {
        id: Arc::from(format!("config:jwks[{i}]")),
        url: j.url.clone(),
        binding,
        refresh,
    })
}

/// An `http://` or `https://` URL with a host (key sets, and anything else the gateway fetches).
pub fn http_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url.parse().map_err(|_| format!("`{url}` is not a URL"))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(format!("`{url}` must start with http:// or https://"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("must not hold credentials (user:password@)".into());
    }
    if url.contains('#') {
        return Err("must not hold a fragment (#)".into());
    }
    Ok(())
}

pub(super) fn key(
    p: &mut Problems,
    path: &str,
    k: &KeySection,
    base: &Path,
    purpose: Purpose,
) -> Option<(Algorithm, jsonwebtoken::DecodingKey, Secret)> {
    let Some(alg) = pinned_algorithm(&k.algorithm) else {
        p.add(
            format!("{path}.algorithm"),
            format!("`{}` is not one of HS256, RS256, ES256", k.algorithm),
        );
        return None;
    };
    let (material, field) = if alg == Algorithm::HS256 {
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
        if PUBLISHED_SECRETS.contains(&secret.as_str()) && purpose == Purpose::Demo {
            let key = jsonwebtoken::DecodingKey::from_secret(secret.as_bytes());
            return Some((alg, key, Secret::new(secret)));
        }
        (secret, "secret")
    } else {
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
        (pem, "public_key")
    };
    match decoding_key(alg, &material) {
        Ok(key) => Some((alg, key, Secret::new(material))),
        Err(e) if PUBLISHED_SECRETS.contains(&material.as_str()) => {
            let msg = format!("{e}: set GW_JWT_SECRET (only `dify-gateway demo` runs with it)");
            p.add(format!("{path}.{field}"), msg);
            None
        }
        Err(e) => {
            p.add(format!("{path}.{field}"), e);
            None
        }
    }
}
