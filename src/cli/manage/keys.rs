//! `dify-gateway keys ...`: a tenant's gateway API keys (list, create: the key is printed once,
//! revoke) and its JWT keys (list, add a secret, a public key or a key set URL, delete).

use super::client::{Client, Failure};
use super::table::{cell, render, time};
use super::{pretty, secret_from};
use serde_json::{Value, json};
use std::path::PathBuf;

/// What to do with keys.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCmd {
    /// List a tenant's gateway API keys (never the keys themselves).
    List {
        /// Tenant id.
        tenant: String,
    },
    /// Create a gateway API key (`dgw-...`), printed once: use it where a JWT goes.
    Create {
        /// Tenant id.
        tenant: String,
        /// A name for people.
        #[arg(long)]
        name: Option<String>,
        /// The app the key always selects.
        #[arg(long)]
        app: Option<String>,
        /// Lifetime, e.g. 90d; unset = no expiry.
        #[arg(long)]
        expires_in: Option<String>,
    },
    /// Revoke (delete) a gateway API key by its id.
    Revoke {
        /// Tenant id.
        tenant: String,
        /// Key id (from `keys list`).
        id: String,
    },
    /// List a tenant's JWT keys and key sets.
    JwtList {
        /// Tenant id.
        tenant: String,
    },
    /// Add a JWT key bound to the tenant: an HS256 secret, an RS256/ES256 public key, or a key set URL.
    JwtAdd {
        /// Tenant id.
        tenant: String,
        /// Key id (the tokens' `kid`); for a key set, a name.
        #[arg(long)]
        id: Option<String>,
        /// HS256, RS256 or ES256.
        #[arg(long)]
        algorithm: Option<String>,
        /// Variable holding the HS256 secret.
        #[arg(long)]
        secret_env: Option<String>,
        /// File holding the HS256 secret.
        #[arg(long)]
        secret_file: Option<PathBuf>,
        /// File holding the PEM public key.
        #[arg(long)]
        public_key_file: Option<PathBuf>,
        /// The identity provider's key set URL.
        #[arg(long)]
        jwks_url: Option<String>,
    },
    /// Delete a JWT key or key set: tokens it verified are refused from now on.
    JwtDelete {
        /// Tenant id.
        tenant: String,
        /// Key id.
        id: String,
    },
}

fn rows(v: &Value, f: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    v["data"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(f)
        .collect()
}

fn list(c: &Client, path: &str) -> Result<(Value, String), Failure> {
    let v = c.call("GET", path, None)?;
    let r = rows(&v, |k| {
        let last4 = format!("…{}", cell(&k["last4"]));
        vec![
            cell(&k["id"]),
            cell(&k["name"]),
            cell(&k["app"]),
            last4,
            time(&k["created_at"]),
            time(&k["expires_at"]),
        ]
    });
    let t = render(&["ID", "NAME", "APP", "KEY", "CREATED", "EXPIRES"], &r);
    Ok((v, t))
}

fn create(c: &Client, tenant: &str, path: &str, body: &Value) -> Result<(Value, String), Failure> {
    let v = c.call("POST", path, Some(body))?;
    let expires = match time(&v["expires_at"]).as_str() {
        "-" => "no expiry".to_string(),
        t => format!("expires {t}"),
    };
    let t = format!(
        "API key {} for tenant {tenant} ({expires}). It is shown this once; keep it now:\n\n{}",
        cell(&v["id"]),
        cell(&v["key"])
    );
    Ok((v, t))
}

/// Runs a keys command.
pub fn run(c: &Client, json: bool, cmd: KeysCmd) -> Result<String, Failure> {
    use KeysCmd as K;
    let base = |t: &str, kind: &str| format!("/admin/tenants/{t}/{kind}");
    let (v, table) = match cmd {
        K::List { tenant } => list(c, &base(&tenant, "api-keys"))?,
        K::Create {
            tenant,
            name,
            app,
            expires_in,
        } => {
            let mut body = serde_json::Map::new();
            for (k, v) in [("name", name), ("app", app), ("expires_in", expires_in)] {
                if let Some(v) = v {
                    body.insert(k.into(), json!(v));
                }
            }
            create(c, &tenant, &base(&tenant, "api-keys"), &Value::Object(body))?
        }
        K::Revoke { tenant, id } => {
            c.call("DELETE", &format!("{}/{id}", base(&tenant, "api-keys")), None)?;
            (
                Value::Null,
                format!("API key {id} revoked: it is refused from now on"),
            )
        }
        K::JwtList { tenant } => {
            let v = c.call("GET", &base(&tenant, "jwt-keys"), None)?;
            let r = rows(&v, |k| {
                vec![
                    cell(&k["id"]),
                    cell(&k["algorithm"]),
                    cell(&k["jwks_url"]),
                    time(&k["created_at"]),
                ]
            });
            let t = render(&["ID", "ALGORITHM", "KEY SET", "CREATED"], &r);
            (v, t)
        }
        K::JwtAdd {
            tenant,
            id,
            algorithm,
            secret_env,
            secret_file,
            public_key_file,
            jwks_url,
        } => {
            let mut body = json!({});
            if let Some(i) = id {
                body["id"] = json!(i);
            }
            if let Some(u) = jwks_url {
                body["jwks_url"] = json!(u);
            } else {
                body["algorithm"] = json!(algorithm.unwrap_or_default());
                match public_key_file {
                    Some(f) => body["public_key"] = json!(secret_from("public key", None, Some(&f))?),
                    None => {
                        body["secret"] = json!(secret_from(
                            "secret",
                            secret_env.as_deref(),
                            secret_file.as_deref()
                        )?)
                    }
                }
            }
            let v = c.call("POST", &base(&tenant, "jwt-keys"), Some(&body))?;
            let t = format!(
                "JWT key {} ({}) added for tenant {tenant}",
                cell(&v["id"]),
                cell(&v["algorithm"])
            );
            (v, t)
        }
        K::JwtDelete { tenant, id } => {
            c.call("DELETE", &format!("{}/{id}", base(&tenant, "jwt-keys")), None)?;
            (
                Value::Null,
                format!("JWT key {id} deleted: tokens it signed are refused from now on"),
            )
        }
    };
    Ok(if json { pretty(&v) } else { table })
}
