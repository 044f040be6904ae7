//! Compiles the raw [`FileConfig`] into [`Settings`] (start-up step 2), collecting every problem as
//! `key.path: message` instead of stopping at the first. One file per section.

mod auth;
mod problems;
mod sections;
mod server;
mod tenants;

pub use sections::CACHED_ENDPOINTS;
pub use server::parse_origin;

use super::Settings;
use super::file::FileConfig;
use crate::admit::auth::JwtVerifier;
use crate::admit::snapshot::Snapshot;
use crate::secret::Secret;
use problems::Problems;
use std::path::Path;

/// Validates the whole tree. `base` resolves relative `*_file` paths.
pub fn validate(raw: FileConfig, base: &Path) -> Result<Settings, Vec<String>> {
    let mut p = Problems::default();
    let server = server::server(&mut p, &raw.server);
    let upstream = server::upstream(&mut p, &raw.upstream);
    let telemetry = sections::telemetry(&mut p, &raw);
    let streams = sections::streams(&mut p, &raw);
    let cache = sections::cache(&mut p, &raw);
    let admin_token = match raw.admin.token.as_deref() {
        Some(t) if t.len() < 16 => {
            p.add("admin.token", "must be at least 16 characters");
            None
        }
        Some(t) => Some(Secret::new(t)),
        None => None,
    };
    let (keys, policy, signing_key) = auth::auth(&mut p, &raw.auth, base);
    let tenants = tenants::tenants(&mut p, &raw, base);
    if !p.0.is_empty() {
        return Err(p.0);
    }
    let verifier = JwtVerifier::new(keys, policy, raw.auth.token_cache_entries);
    let warnings = sections::warnings(&upstream);
    Ok(Settings {
        warnings,
        server,
        upstream,
        streams,
        cache,
        admin_token,
        telemetry,
        signing_key,
        snapshot: Snapshot::new(tenants, verifier),
    })
}
