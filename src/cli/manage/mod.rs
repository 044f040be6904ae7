//! `dify-gateway tenants ...` and `dify-gateway keys ...`: operators manage tenants, apps and keys
//! of a running gateway through its admin API ([`client`]), with tables by default ([`table`]) and
//! the API's JSON with `--json`, so nobody has to hand-write curl.

pub mod client;
pub mod keys;
pub mod table;
pub mod tenants;

use client::{AdminArgs, Client, Failure};
use serde_json::Value;
use std::process::ExitCode;

/// Runs `work` with a client made from `args`, printing its output or its failure.
pub fn run(args: &AdminArgs, work: impl FnOnce(&Client, bool) -> Result<String, Failure>) -> ExitCode {
    let outcome = Client::new(args).and_then(|c| work(&c, args.json));
    match outcome {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            ExitCode::SUCCESS
        }
        Err(f) => f.report(),
    }
}

/// The JSON as the API gave it (for `--json`).
pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// A secret from exactly one of an environment variable and a file (never the command line, which
/// `ps` shows to everyone on the machine).
pub fn secret_from(what: &str, env: Option<&str>, file: Option<&std::path::Path>) -> Result<String, Failure> {
    let found = match (env, file) {
        (Some(var), None) => std::env::var(var).map_err(|_| Failure::Usage(format!("{var} is not set")))?,
        (None, Some(f)) => std::fs::read_to_string(f)
            .map_err(|e| Failure::Usage(format!("{}: {e}", f.display())))?
            .trim()
            .to_string(),
        _ => {
            return Err(Failure::Usage(format!(
                "give the {what} exactly once (-env VAR or -file FILE)"
            )));
        }
    };
    if found.is_empty() {
        return Err(Failure::Usage(format!("the {what} is empty")));
    }
    Ok(found)
}
