//! A finished request as telemetry sees it (built once in `logging`, the last step): plain, bounded
//! facts that the metrics, the spans and the access log all read.

use std::time::Duration;

/// Token usage and cost as Dify reported them.
#[derive(Debug, Clone, Copy)]
pub struct UsageFacts<'a> {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
    /// Total price, when Dify gave a readable one.
    pub price: Option<f64>,
    /// Its currency.
    pub currency: &'a str,
}

/// Everything recorded about one finished request.
#[derive(Debug)]
pub struct Finished<'a> {
    /// The request id.
    pub request_id: &'a str,
    /// Endpoint label (`unmatched` when none).
    pub endpoint: &'static str,
    /// Route template, when the endpoint is known.
    pub template: Option<&'static str>,
    /// The endpoint is a completion.
    pub completion: bool,
    /// HTTP method.
    pub method: &'a str,
    /// Final status (0 when none was sent).
    pub status: u16,
    /// The caller's tenant and app, when admission resolved them.
    pub caller: Option<(&'a str, &'a str)>,
    /// The answer was a stream.
    pub streaming: bool,
    /// The answer was a completion stream (observed by the SSE observer).
    pub sse: bool,
    /// Time since the request started.
    pub elapsed: Duration,
    /// Request body bytes.
    pub request_bytes: u64,
    /// Response body bytes.
    pub response_bytes: usize,
    /// Usage Dify reported.
    pub usage: Option<UsageFacts<'a>>,
    /// Time to the first `message` event of a stream.
    pub first_token: Option<Duration>,
    /// The message id Dify gave.
    pub message_id: Option<&'a str>,
    /// Why authentication failed.
    pub auth_failure: Option<&'static str>,
    /// How the cache answered.
    pub cache: Option<&'static str>,
    /// Why the upstream failed.
    pub upstream_failure: Option<&'static str>,
    /// Pingora's error type, when the request ended in one.
    pub error: Option<&'a str>,
}

impl Finished<'_> {
    /// Tenant and app labels: the configured names, or `none`.
    pub fn labels(&self) -> (&str, &str) {
        self.caller.unwrap_or(("none", "none"))
    }
}
