//! Loading the configuration and running the gateway (start-up): every problem is printed by key
//! path and a bad config exits 64 before any port is bound.

use crate::config::{self, EXIT_BAD_CONFIG, ProcessEnv, Settings};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

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

/// `check`: validates the file, prints warnings, exits 0 or 64.
pub fn check(path: &Path) -> ExitCode {
    match load_or_report(path) {
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

/// Runs the gateway until a signal stops it.
pub fn serve(settings: Settings, config_path: Option<PathBuf>) -> ExitCode {
    crate::telemetry::logging::init_logging(&settings.telemetry);
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

/// Prints a usage error and returns exit code 64.
pub fn usage(msg: &str) -> ExitCode {
    eprintln!("dify-gateway: {msg}");
    ExitCode::from(EXIT_BAD_CONFIG as u8)
}
