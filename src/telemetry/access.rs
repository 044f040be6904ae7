//! The access log: one structured line per request (the `logging` phase), under the `access` target.
//! It names the tenant, app, endpoint, status, duration, sizes, tokens, cache outcome and trace id;
//! never a key, token or user.

use super::finished::Finished;

/// Writes the access line of a finished request.
pub fn log(done: &Finished<'_>, trace_id: Option<String>) {
    let usage = done.usage.as_ref();
    let (tenant, app) = done.labels();
    tracing::info!(
        target: "access",
        request_id = %done.request_id,
        tenant,
        app,
        endpoint = done.endpoint,
        method = done.method,
        status = done.status,
        duration_ms = done.elapsed.as_secs_f64() * 1000.0,
        request_bytes = done.request_bytes,
        response_bytes = done.response_bytes,
        auth_failure = done.auth_failure,
        cache = done.cache,
        trace_id,
        prompt_tokens = usage.map(|u| u.prompt_tokens),
        completion_tokens = usage.map(|u| u.completion_tokens),
        upstream_failure = done.upstream_failure,
        error = done.error,
    );
}
