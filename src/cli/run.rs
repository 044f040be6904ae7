//! Loading the configuration and running the gateway (start-up): every problem is printed by key
//! path and a bad config exits 64 before any port is bound.

use crate::config::{EXIT_BAD_CONFIG, ProcessEnv, Purpose, Settings, Source};
use crate::server::StoreStart;
use crate::store::StoreHandle;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// Exit code when the store cannot be reached at start and nothing can be served without it
/// (`EX_UNAVAILABLE`).
pub const EXIT_STORE_UNAVAILABLE: u8 = 69;

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
    let store = match open_store(&settings) {
        Ok(store) => store,
        Err(code) => return code,
    };
    match crate::server::build(settings, Some(source), store) {
        Ok((server, signals)) => {
            server.run(signals);
            ExitCode::SUCCESS
        }
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

/// Opens and reads the store before any port is bound. Unreachable: exit 69, unless the file's
/// tenants can serve alone; then the gateway starts with them, `/readyz` says the store is missing,
/// and the store service keeps trying. Opened with another encryption key than it was written with:
/// exit 64.
pub fn open_store(settings: &Settings) -> Result<Option<StoreStart>, ExitCode> {
    let Some(store) = &settings.store else {
        return Ok(None);
    };
    let handle = Arc::new(StoreHandle::new(store.clone(), replica_name()));
    let read = handle.open_blocking().and_then(|s| s.load_blocking());
    match read {
        Ok(data) => {
            tracing::info!(message = "Store opened.", backend = ?handle.backend(), tenants = data.tenants.len(), version = data.version);
            Ok(Some(StoreStart {
                handle,
                data: Some(data),
            }))
        }
        Err(e @ crate::store::StoreError::WrongKey) => {
            eprintln!(
                "dify-gateway: {e}: start it with the store's key (a wrong key would fail on every secret)"
            );
            Err(ExitCode::from(EXIT_BAD_CONFIG as u8))
        }
        Err(e) if !settings.declared.tenants.is_empty() => {
            handle.set_up(false);
            tracing::warn!(message = "Store unreachable at start: serving the configuration file's tenants only, not ready, retrying.", error = %e);
            Ok(Some(StoreStart { handle, data: None }))
        }
        Err(e) => {
            eprintln!(
                "dify-gateway: the store cannot be reached ({e}), and the configuration file declares no tenant to serve without it"
            );
            Err(ExitCode::from(EXIT_STORE_UNAVAILABLE))
        }
    }
}

/// This process in the audit log: the host name (a pod's name on Kubernetes) and the process id.
fn replica_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}
