//! The access log: one structured line per request (the `logging` phase), under the `access` target.
//! It names the tenant, app, endpoint, status, duration, sizes, tokens, cache outcome and trace id;
//! never a key, token or user. The line has the shape of the tracing formatter's (JSON or text, as
//! `telemetry.log_format` says) and obeys the same filter, but is built by hand in a per-thread
//! buffer: through the formatter it cost a tenth of a proxied completion's instructions.

use super::finished::Finished;
use super::line::Line;
use super::logging;
use crate::config::LogFormat;
use std::cell::RefCell;
use std::io::Write;
use std::time::SystemTime;

/// The access log's target.
pub const TARGET: &str = "access";

/// A buffer larger than this after a line is let go rather than kept for the next.
const KEEP_BUFFER: usize = 16 * 1024;

thread_local! {
    static BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Writes the access line of a finished request to the log output, when logging is set up and
/// its filter lets `access` lines through.
pub fn log(done: &Finished<'_>, trace_id: Option<&str>) {
    let Some(format) = logging::format() else { return };
    if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        return;
    }
    let _ = BUF.try_with(|cell| {
        let Ok(mut buf) = cell.try_borrow_mut() else {
            return;
        };
        line(&mut buf, format, SystemTime::now(), done, trace_id);
        // One write: lines from other threads never interleave with it.
        let _ = std::io::stderr().write_all(&buf);
        if buf.capacity() > KEEP_BUFFER {
            *buf = Vec::new();
        }
    });
}

/// The access line of `done` at `now`, into `buf`.
fn line(buf: &mut Vec<u8>, format: LogFormat, now: SystemTime, done: &Finished<'_>, trace_id: Option<&str>) {
    let usage = done.usage.as_ref();
    let (tenant, app) = done.labels();
    Line::info(buf, format, now, TARGET)
        .display("request_id", done.request_id)
        .str("tenant", tenant)
        .str("app", app)
        .str("endpoint", done.endpoint)
        .str("method", done.method)
        .u64("status", u64::from(done.status))
        .f64("duration_ms", done.elapsed.as_secs_f64() * 1000.0)
        .u64("request_bytes", done.request_bytes)
        .u64("response_bytes", done.response_bytes as u64)
        .opt_str("auth_failure", done.auth_failure)
        .opt_str("cache", done.cache)
        .opt_str("trace_id", trace_id)
        .opt_u64("prompt_tokens", usage.map(|u| u.prompt_tokens))
        .opt_u64("completion_tokens", usage.map(|u| u.completion_tokens))
        .opt_str("upstream_failure", done.upstream_failure)
        .opt_str("error", done.error)
        .end();
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
