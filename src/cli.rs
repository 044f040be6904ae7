//! The command line (start-up): `--config FILE` runs the gateway, `check` validates, `token` signs a
//! development JWT, `demo` runs the gateway in front of the bundled Dify simulator.

use crate::auth::mint::{MintRequest, mint};
use crate::auth::unix_now;
use crate::config::{self, EXIT_BAD_CONFIG, ProcessEnv, Settings};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Multi-tenant gateway for Dify's Completion-app Service API.
#[derive(Parser, Debug)]
#[command(name = "dify-gateway", version, about)]
pub struct Cli {
    /// Config file (TOML); runs the gateway in the foreground.
    #[arg(short, long, global = true)]
    pub config: Option<PathBuf>,
    /// What to do; without a command the gateway runs.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Sub-commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate the config and print every problem by key path (exit 0 or 64).
    Check,
    /// Print a signed development JWT (first HS256 key of the config).
    Token {
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// App name to pin in the token.
        #[arg(long)]
        app: Option<String>,
        /// Lifetime, e.g. 15m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// Run the Dify simulator and the gateway on loopback and print a ready-to-paste curl line.
    Demo,
}

/// Loads the config or prints every problem and returns the exit code for bad config.
pub fn load_or_report(path: &Path) -> Result<Settings, ExitCode> {
    config::load(path, &ProcessEnv).map_err(|problems| {
        eprintln!("{}: invalid configuration:", path.display());
        for p in problems {
            eprintln!("  {p}");
        }
        ExitCode::from(EXIT_BAD_CONFIG as u8)
    })
}

/// Signs a token with the config's first HS256 key.
pub fn token_for(
    settings: &Settings,
    tenant: &str,
    app: Option<&str>,
    ttl: std::time::Duration,
) -> Result<String, String> {
    let (kid, secret) = settings
        .signing_key
        .as_ref()
        .ok_or("the config has no HS256 key in [[auth.keys]] to sign with")?;
    let req = MintRequest {
        secret,
        kid,
        policy: settings.snapshot.verifier.policy(),
        tenant,
        app,
        ttl,
        now: unix_now(),
    };
    mint(&req).map_err(|e| format!("cannot sign token: {e}"))
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let default_path = PathBuf::from("config/gateway.toml");
    match cli.command {
        #[cfg(feature = "demo")]
        Some(Command::Demo) => crate::demo::run(cli.config.as_deref().unwrap_or(&default_path)),
        #[cfg(not(feature = "demo"))]
        Some(Command::Demo) => {
            let _ = default_path;
            usage("this build has no demo (built without the `demo` feature)")
        }
        Some(Command::Check) => {
            let Some(path) = cli.config else {
                return usage("check needs --config FILE");
            };
            match load_or_report(&path) {
                Ok(settings) => {
                    for w in &settings.warnings {
                        eprintln!("warning: {w}");
                    }
                    println!("{}: ok", path.display());
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            }
        }
        Some(Command::Token { tenant, app, ttl }) => {
            let Some(path) = cli.config else {
                return usage("token needs --config FILE");
            };
            let ttl = match config::units::duration(&ttl) {
                Ok(t) => t,
                Err(e) => return usage(&format!("--ttl: {e}")),
            };
            let settings = match load_or_report(&path) {
                Ok(s) => s,
                Err(code) => return code,
            };
            match token_for(&settings, &tenant, app.as_deref(), ttl) {
                Ok(t) => {
                    println!("{t}");
                    ExitCode::SUCCESS
                }
                Err(e) => usage(&e),
            }
        }
        None => {
            let Some(path) = cli.config else {
                return usage("give --config FILE (or a command; see --help)");
            };
            match load_or_report(&path) {
                Ok(settings) => serve(settings, Some(path)),
                Err(code) => code,
            }
        }
    }
}

/// Runs the gateway until a signal stops it.
pub fn serve(settings: Settings, config_path: Option<PathBuf>) -> ExitCode {
    crate::telemetry::init_logging(&settings.telemetry);
    for w in &settings.warnings {
        tracing::warn!(message = "Configuration warning.", warning = %w);
    }
    match crate::server::build(settings, config_path) {
        Ok(server) => server.run_forever(),
        Err(e) => {
            eprintln!("dify-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("dify-gateway: {msg}");
    ExitCode::from(EXIT_BAD_CONFIG as u8)
}
