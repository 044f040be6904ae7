//! `dify-gateway tenants ...`: list, show, create, enable/disable, set limits, delete tenants; set
//! (create or rotate) and delete their apps; revoke their tokens; read the audit log.

use super::client::{Client, Failure};
use super::table::{cell, limits, render, time};
use super::{pretty, secret_from};
use serde_json::{Value, json};
use std::path::PathBuf;

/// What to do with tenants.
#[derive(Debug, clap::Subcommand)]
pub enum TenantsCmd {
    /// List every tenant (the configuration file's and the store's).
    List,
    /// Show one tenant with its apps.
    Show {
        /// Tenant id.
        id: String,
    },
    /// Create a tenant in the store.
    Create {
        /// Tenant id.
        id: String,
        /// Create it disabled.
        #[arg(long)]
        disabled: bool,
        /// Limits as JSON, e.g. '{"requests_per_minute": 600}'.
        #[arg(long)]
        limits: Option<String>,
    },
    /// Refuse the tenant's calls (403) until enabled again.
    Disable {
        /// Tenant id.
        id: String,
    },
    /// Accept the tenant's calls again.
    Enable {
        /// Tenant id.
        id: String,
    },
    /// Replace the tenant's limits (JSON; '{}' = none).
    SetLimits {
        /// Tenant id.
        id: String,
        /// Limits as JSON.
        limits: String,
    },
    /// Delete a tenant with its apps and keys.
    Delete {
        /// Tenant id.
        id: String,
    },
    /// Create an app or replace its Dify key (rotation: the next request uses the new key).
    SetApp {
        /// Tenant id.
        tenant: String,
        /// App name.
        app: String,
        /// Variable holding the Dify app key (a key on the command line would show in `ps`).
        #[arg(long)]
        api_key_env: Option<String>,
        /// File holding the Dify app key.
        #[arg(long)]
        api_key_file: Option<PathBuf>,
        /// Do not prefix Dify's `user` with the tenant id.
        #[arg(long)]
        no_scope_users: bool,
        /// Open (true) or close (false) the app-wide endpoints.
        #[arg(long)]
        app_wide_endpoints: Option<bool>,
        /// What one completion reserves against the token limits.
        #[arg(long)]
        max_tokens_per_request: Option<u64>,
    },
    /// Delete an app.
    DeleteApp {
        /// Tenant id.
        tenant: String,
        /// App name.
        app: String,
    },
    /// Refuse a token by its `jti`, or every token issued before a time.
    Revoke {
        /// Tenant id.
        tenant: String,
        /// The token's `jti`.
        #[arg(long)]
        jti: Option<String>,
        /// Unix seconds, or `now`.
        #[arg(long)]
        issued_before: Option<String>,
    },
    /// The audit log, newest first.
    Audit {
        /// How many entries.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

fn json_arg(what: &str, text: &str) -> Result<Value, Failure> {
    serde_json::from_str(text).map_err(|e| Failure::Usage(format!("{what} is not JSON: {e}")))
}

fn apps_table(t: &Value) -> String {
    let empty = vec![];
    let apps = t["apps"].as_array().unwrap_or(&empty);
    let rows: Vec<Vec<String>> = apps
        .iter()
        .map(|a| {
            vec![
                cell(&a["name"]),
                format!("…{}", cell(&a["key_last4"])),
                cell(&a["scope_users"]),
                cell(&a["app_wide_endpoints"]),
                cell(&a["max_tokens_per_request"]),
            ]
        })
        .collect();
    render(
        &["APP", "DIFY KEY", "SCOPE USERS", "APP-WIDE", "MAX TOKENS"],
        &rows,
    )
}

fn tenant_rows(list: &[Value]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|t| {
            let apps: Vec<String> = t["apps"]
                .as_array()
                .map(|a| a.iter().map(|x| cell(&x["name"])).collect())
                .unwrap_or_default();
            vec![
                cell(&t["id"]),
                cell(&t["source"]),
                if t["disabled"] == json!(true) {
                    "disabled"
                } else {
                    "enabled"
                }
                .into(),
                if apps.is_empty() {
                    "-".into()
                } else {
                    apps.join(",")
                },
                limits(&t["limits"]),
                time(&t["created_at"]),
            ]
        })
        .collect();
    render(&["TENANT", "SOURCE", "STATE", "APPS", "LIMITS", "CREATED"], &rows)
}

fn show(t: &Value) -> String {
    format!("{}\n\n{}", tenant_rows(std::slice::from_ref(t)), apps_table(t))
}

/// Runs a tenants command.
pub fn run(c: &Client, json: bool, cmd: TenantsCmd) -> Result<String, Failure> {
    use TenantsCmd as T;
    let path = |id: &str| format!("/admin/tenants/{id}");
    let (v, table) = match cmd {
        T::List => {
            let v = c.call("GET", "/admin/tenants", None)?;
            let t = tenant_rows(v["data"].as_array().map_or(&[][..], Vec::as_slice));
            (v, t)
        }
        T::Show { id } => {
            let v = c.call("GET", &path(&id), None)?;
            let t = show(&v);
            (v, t)
        }
        T::Create { id, disabled, limits } => {
            let mut body = json!({"id": id, "disabled": disabled});
            if let Some(l) = limits {
                body["limits"] = json_arg("--limits", &l)?;
            }
            let v = c.call("POST", "/admin/tenants", Some(&body))?;
            let t = format!("{}\ncreated", tenant_rows(std::slice::from_ref(&v)));
            (v, t)
        }
        T::Disable { id } => patch(c, &path(&id), json!({"disabled": true}))?,
        T::Enable { id } => patch(c, &path(&id), json!({"disabled": false}))?,
        T::SetLimits { id, limits } => patch(c, &path(&id), json!({"limits": json_arg("limits", &limits)?}))?,
        T::Delete { id } => {
            c.call("DELETE", &path(&id), None)?;
            (
                Value::Null,
                format!("tenant {id} deleted: its tokens and API keys are refused from now on"),
            )
        }
        T::SetApp {
            tenant,
            app,
            api_key_env,
            api_key_file,
            no_scope_users,
            app_wide_endpoints,
            max_tokens_per_request,
        } => {
            let key = secret_from("Dify key", api_key_env.as_deref(), api_key_file.as_deref())?;
            let mut body = json!({"api_key": key, "scope_users": !no_scope_users});
            if let Some(w) = app_wide_endpoints {
                body["app_wide_endpoints"] = json!(w);
            }
            if let Some(m) = max_tokens_per_request {
                body["max_tokens_per_request"] = json!(m);
            }
            set_app(c, &tenant, &app, &body)?
        }
        T::DeleteApp { tenant, app } => {
            c.call("DELETE", &format!("{}/apps/{app}", path(&tenant)), None)?;
            (Value::Null, format!("app {tenant}/{app} deleted"))
        }
        T::Revoke {
            tenant,
            jti,
            issued_before,
        } => revoke(c, &path(&tenant), jti, issued_before)?,
        T::Audit { limit } => audit(c, limit)?,
    };
    Ok(if json { pretty(&v) } else { table })
}

fn set_app(c: &Client, tenant: &str, app: &str, body: &Value) -> Result<(Value, String), Failure> {
    let v = c.call("PUT", &format!("/admin/tenants/{tenant}/apps/{app}"), Some(body))?;
    let t = format!(
        "app {tenant}/{app} set, Dify key …{}: the next request uses it",
        cell(&v["key_last4"])
    );
    Ok((v, t))
}

fn audit(c: &Client, limit: u32) -> Result<(Value, String), Failure> {
    let v = c.call("GET", &format!("/admin/audit?limit={limit}"), None)?;
    let rows: Vec<Vec<String>> = v["data"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .map(|e| {
            vec![
                time(&e["at"]),
                cell(&e["action"]),
                cell(&e["target"]),
                cell(&e["actor"]),
                cell(&e["replica"]),
            ]
        })
        .collect();
    let t = render(&["AT", "ACTION", "TARGET", "ACTOR", "REPLICA"], &rows);
    Ok((v, t))
}

fn patch(c: &Client, path: &str, body: Value) -> Result<(Value, String), Failure> {
    let v = c.call("PATCH", path, Some(&body))?;
    let t = tenant_rows(std::slice::from_ref(&v));
    Ok((v, t))
}

fn revoke(
    c: &Client,
    path: &str,
    jti: Option<String>,
    before: Option<String>,
) -> Result<(Value, String), Failure> {
    let body = match (jti, before) {
        (Some(j), None) => json!({"jti": j}),
        (None, Some(b)) => {
            let t = if b == "now" {
                crate::clock::unix_now()
            } else {
                b.parse()
                    .map_err(|_| Failure::Usage("--issued-before takes Unix seconds or `now`".into()))?
            };
            json!({"issued_before": t})
        }
        _ => {
            return Err(Failure::Usage(
                "give exactly one of --jti and --issued-before".into(),
            ));
        }
    };
    let v = c.call("POST", &format!("{path}/revocations"), Some(&body))?;
    Ok((v, "revoked: matching tokens are refused from now on".into()))
}
