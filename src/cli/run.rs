//! Loading the configuration and running the gateway (start-up): every problem is printed by key
//! path and a bad config exits 64 before any port is bound.

use crate::config::{EXIT_BAD_CONFIG, ProcessEnv, Purpose, Settings, Source};
use std::path::Path;
use std::process::ExitCode;

/// Loads the config or prints every problem and returns the exit code for bad config.
pub fn load_or_report(source: &Source) -> Result<Settings, ExitCode> {
    source.load(&ProcessEnv).map_err(|problems| {
        eprintln!("{}: invalid configuration:", source.path.display());
        for p in problems {
            eprintln!("  {p}");
        }
        ExitCode::from(EXIT_BAD_CONFIG as u8)
    })
}

/// `check`: validates the file, prints warnings, exits 0 or 64.
pub fn check(path: &Path) -> ExitCode {
    match load_or_report(&serving(path)) {
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

/// The config at `path`, loaded to serve tenants.
pub fn serving(path: &Path) -> Source {
    Source {
        path: path.to_path_buf(),
        purpose: Purpose::Serve,
    }
}

/// Runs the gateway until a signal stops it; SIGHUP reloads `source`.
pub fn serve(settings: Settings, source: Source) -> ExitCode {
    crate::telemetry::logging::init_logging(&settings.telemetry);
    for w in &settings.warnings {
        tracing::warn!(message = "Configuration warning.", warning = %w);
    }
    match crate::server::build(settings, Some(source)) {
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
