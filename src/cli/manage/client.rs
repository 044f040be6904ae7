//! The operators' client of a running gateway's admin API (`dify-gateway tenants ...` / `keys ...`):
//! one JSON call at a time to `--admin-url` with the admin token from `GW_ADMIN_TOKEN` or a file,
//! naming the operator (`X-Actor`) for the audit log. Errors come back in Dify's envelope.

use crate::outbound::{Outbound, to_url};
use bytes::Bytes;
use serde_json::Value;
use std::time::Duration;

/// Longest wait for the gateway.
const TIMEOUT: Duration = Duration::from_secs(15);
/// Largest answer read.
const MAX_ANSWER: usize = 16 << 20;

/// Where the admin API is and how to get in.
#[derive(Debug, Clone, clap::Args)]
pub struct AdminArgs {
    /// The gateway's admin listener.
    #[arg(
        long,
        env = "GW_ADMIN_URL",
        default_value = "http://127.0.0.1:9090",
        global = true
    )]
    pub admin_url: String,
    /// File holding the admin token (else the GW_ADMIN_TOKEN variable).
    #[arg(long, global = true)]
    pub admin_token_file: Option<std::path::PathBuf>,
    /// Print the API's JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

/// Why a call failed, with the process exit code it maps to.
#[derive(Debug)]
pub enum Failure {
    /// The command line or environment is unusable (64).
    Usage(String),
    /// The gateway could not be reached (69).
    Unreachable(String),
    /// The gateway refused (1): status, code and message.
    Refused(u16, String, String),
}

impl Failure {
    /// Prints the failure and gives the exit code.
    pub fn report(&self) -> std::process::ExitCode {
        let (code, text) = match self {
            Self::Usage(m) => (64, m.clone()),
            Self::Unreachable(m) => (69, format!("the admin API could not be reached: {m}")),
            Self::Refused(status, code, msg) => (1, format!("{status} {code}: {msg}")),
        };
        eprintln!("dify-gateway: {text}");
        std::process::ExitCode::from(code)
    }
}

/// A client of one gateway's admin API.
pub struct Client {
    base: String,
    token: String,
    actor: String,
    runtime: tokio::runtime::Runtime,
    outbound: Outbound,
}

impl Client {
    /// A client as `args` and the environment say.
    pub fn new(args: &AdminArgs) -> Result<Client, Failure> {
        let token = match &args.admin_token_file {
            Some(f) => std::fs::read_to_string(f)
                .map_err(|e| Failure::Usage(format!("--admin-token-file {}: {e}", f.display())))?
                .trim()
                .to_string(),
            None => std::env::var("GW_ADMIN_TOKEN").unwrap_or_default(),
        };
        if token.is_empty() {
            return Err(Failure::Usage(
                "set GW_ADMIN_TOKEN (or --admin-token-file) to the gateway's admin.token".into(),
            ));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::Usage(e.to_string()))?;
        Ok(Client {
            base: args.admin_url.trim_end_matches('/').to_string(),
            token,
            actor: std::env::var("USER").unwrap_or_else(|_| "cli".into()),
            runtime,
            outbound: Outbound::default(),
        })
    }

    /// `method` on `path` with `body`; the answer's JSON (`Null` for 204), or the refusal.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        self.runtime.block_on(self.send(method, path, body))
    }

    async fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.base);
        let (peer, mut head) = to_url(method, &url, TIMEOUT).await.map_err(Failure::Usage)?;
        let body = body.map(|b| Bytes::from(b.to_string()));
        let headers = [
            ("authorization", format!("Bearer {}", self.token)),
            ("x-actor", self.actor.clone()),
            ("accept", "application/json".into()),
            ("content-type", "application/json".into()),
            ("content-length", body.as_ref().map_or(0, Bytes::len).to_string()),
        ];
        for (name, value) in headers {
            head.insert_header(name, value)
                .map_err(|e| Failure::Usage(e.to_string()))?;
        }
        let reply = self
            .outbound
            .send(&peer, head, body, TIMEOUT, MAX_ANSWER)
            .await
            .map_err(|e| Failure::Unreachable(e.detail))?;
        let value: Value = if reply.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&reply.body)
                .map_err(|e| Failure::Unreachable(format!("the answer is not JSON ({e})")))?
        };
        if (200..300).contains(&reply.status) {
            return Ok(value);
        }
        let text = |k: &str| value.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        Err(Failure::Refused(reply.status, text("code"), text("message")))
    }
}
