//! `dify-gateway token`: signs a development JWT with the config's first HS256 key (also used by the
//! demo's banner).

use super::run::{load_or_report, serving, usage};
use crate::admit::auth::mint::{MintRequest, mint};
use crate::clock::unix_now;
use crate::config::{Settings, units};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// Signs a token with the config's first HS256 key.
pub fn token_for(
    settings: &Settings,
    tenant: &str,
    app: Option<&str>,
    ttl: Duration,
) -> Result<String, String> {
    let (kid, secret) = settings
        .signing_key
        .as_ref()
        .ok_or("the config has no HS256 key in [[auth.keys]] to sign with")?;
    let req = MintRequest {
        secret,
        kid,
        policy: &settings.declared.policy,
        tenant,
        app,
        ttl,
        now: unix_now(),
    };
    mint(&req).map_err(|e| format!("cannot sign token: {e}"))
}

/// The `token` command: prints the token or exits 64.
pub fn command(path: &Path, tenant: &str, app: Option<&str>, ttl: &str) -> ExitCode {
    let ttl = match units::duration(ttl) {
        Ok(t) => t,
        Err(e) => return usage(&format!("--ttl: {e}")),
    };
    let settings = match load_or_report(&serving(path)) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match token_for(&settings, tenant, app, ttl) {
        Ok(t) => {
            println!("{t}");
            ExitCode::SUCCESS
        }
        Err(e) => usage(&e),
    }
}
