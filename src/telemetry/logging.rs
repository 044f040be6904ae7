//! Log output (start-up): a tracing subscriber writing JSON or text lines, filtered by
//! `telemetry.log_level` or `RUST_LOG`, coloured only on a terminal. Pingora's own `log` lines are
//! bridged into it; their debug and trace levels, which print request headers, are compiled out.

use crate::config::{LogFormat, TelemetrySettings};
use std::sync::OnceLock;
use tracing_subscriber::EnvFilter;

/// The format of the installed output, for lines written beside the subscriber (the access log).
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// The log line format, once logging is set up.
pub fn format() -> Option<LogFormat> {
    FORMAT.get().copied()
}

/// Installs the global subscriber. Safe to call once per process; later calls do nothing.
pub fn init_logging(t: &TelemetrySettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&t.log_level));
    // Colour only on a terminal: a pipe or file gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = FORMAT.set(t.log_format);
    let _ = match t.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
