//! The command line (start-up): `--config FILE` runs the gateway, `check` validates, `token` signs a
//! development JWT, `demo` runs the gateway in front of the bundled Dify simulator, `tenants` and
//! `keys` manage a running gateway through its admin API. This module parses and dispatches; [`run`]
//! loads and serves, [`token`] signs, [`demo`] starts the simulator first, [`manage`] calls the API.

#[cfg(feature = "demo")]
pub mod demo;
pub mod manage;
pub mod run;
pub mod token;

use clap::{Parser, Subcommand};
use run::{load_or_report, serve, serving, usage};
use std::path::PathBuf;
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
    /// Manage the tenants and apps of a running gateway (its admin API; GW_ADMIN_URL, GW_ADMIN_TOKEN).
    Tenants {
        /// Where the admin API is.
        #[command(flatten)]
        admin: manage::client::AdminArgs,
        /// What to do.
        #[command(subcommand)]
        cmd: manage::tenants::TenantsCmd,
    },
    /// Manage a tenant's gateway API keys and JWT keys on a running gateway.
    Keys {
        /// Where the admin API is.
        #[command(flatten)]
        admin: manage::client::AdminArgs,
        /// What to do.
        #[command(subcommand)]
        cmd: manage::keys::KeysCmd,
    },
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Some(Command::Demo) => demo(cli.config),
        Some(Command::Tenants { admin, cmd }) => {
            manage::run(&admin, |c, json| manage::tenants::run(c, json, cmd))
        }
        Some(Command::Keys { admin, cmd }) => manage::run(&admin, |c, json| manage::keys::run(c, json, cmd)),
        Some(Command::Check) => match cli.config {
            Some(path) => run::check(&path),
            None => usage("check needs --config FILE"),
        },
        Some(Command::Token { tenant, app, ttl }) => match cli.config {
            Some(path) => token::command(&path, &tenant, app.as_deref(), &ttl),
            None => usage("token needs --config FILE"),
        },
        None => {
            let Some(path) = cli.config else {
                return usage("give --config FILE (or a command; see --help)");
            };
            let source = serving(&path);
            match load_or_report(&source) {
                Ok(settings) => serve(settings, source),
                Err(code) => code,
            }
        }
    }
}

#[cfg(feature = "demo")]
fn demo(config: Option<PathBuf>) -> ExitCode {
    demo::run(&config.unwrap_or_else(|| PathBuf::from("config/gateway.toml")))
}

#[cfg(not(feature = "demo"))]
fn demo(_config: Option<PathBuf>) -> ExitCode {
    usage("this build has no demo (built without the `demo` feature)")
}
