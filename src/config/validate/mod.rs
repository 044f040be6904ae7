//! Compiles the raw [`FileConfig`] into [`Settings`] (start-up step 2), collecting every problem as
//! `key.path: message` instead of stopping at the first. One file per section.

mod auth;
mod problems;
mod sections;
mod server;
mod store;
pub mod tenants;

pub use sections::CACHED_ENDPOINTS;
pub use server::parse_origin;

pub use auth::{PUBLISHED_SECRETS, http_url};

use super::file::FileConfig;
use super::{Purpose, Settings};
use crate::secret::Secret;
use crate::tenancy::Declared;
use problems::Problems;
use std::path::Path;
use std::sync::Arc;

/// Validates the whole tree for `purpose`. `base` resolves relative `*_file` paths.
pub fn validate(raw: FileConfig, base: &Path, purpose: Purpose) -> Result<Settings, Vec<String>> {
    let mut p = Problems::default();
    let server = server::server(&mut p, &raw.server, base);
    let upstream = server::upstream(&mut p, &raw.upstream);
    let telemetry = sections::telemetry(&mut p, &raw);
    let streams = sections::streams(&mut p, &raw);
    let cache = sections::cache(&mut p, &raw);
    let redis = sections::redis(&mut p, &raw, base, cache.redis_timeout);
    let admin_token = token(&mut p, "admin.token", raw.admin.token.as_deref());
    let metrics_token = token(&mut p, "admin.metrics_token", raw.admin.metrics_token.as_deref());
    let store = store::store(&mut p, &raw.store, base);
    let limits = sections::limits(&mut p, &raw);
    let has_store = raw.store.url.is_some();
    let auth = auth::auth(&mut p, &raw.auth, base, purpose, has_store);
    let (tenants, apps) = tenants::tenants(&mut p, &raw, base, has_store);
    if !p.0.is_empty() {
        return Err(p.0);
    }
    let mut warnings = sections::warnings(&upstream);
    warnings.append(&mut p.1);
    Ok(Settings {
        warnings,
        server,
        upstream,
        streams,
        cache,
        redis,
        admin_token,
        metrics_token,
        telemetry,
        signing_key: auth.signing,
        token_cache_entries: raw.auth.token_cache_entries,
        store,
        limits,
        declared: Declared {
            tenants,
            apps,
            keys: auth.keys,
            jwks: auth.jwks,
            policy: Arc::new(auth.policy),
        },
    })
}

/// A bearer token of the admin listener: at least 16 characters when set.
fn token(p: &mut Problems, path: &str, value: Option<&str>) -> Option<Secret> {
    match value.filter(|t| !t.is_empty()) {
        Some(t) if t.len() < 16 => {
            p.add(path, "must be at least 16 characters");
            None
        }
        t => t.map(Secret::new),
    }
}
