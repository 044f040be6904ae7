//! The proxy's side of the limits (request step 1b in `request_filter`, the `RateLimit` header in
//! `response_filter` and cache answers, the release in `logging`): asks the [`Limiter`], answers a
//! refusal itself, and turns what Dify reported into what a completion spent.

use super::limiter::{Decision, Grant};
use super::{Limiter, Spent};
use crate::admit::Caller;
use crate::admit::route::{Endpoint, Route};
use crate::respond::{self, Flow};
use crate::telemetry::finished::UsageFacts;
use pingora::proxy::Session;

/// Checks the caller's limits before the body is read or Dify contacted; a refusal is answered here.
pub async fn check(
    limiter: &Limiter,
    session: &mut Session,
    route: &Route,
    caller: &Caller,
    request_id: &str,
) -> pingora::Result<(Option<Grant>, Flow)> {
    let completion = route.endpoint == Endpoint::CompletionMessages;
    match limiter.admit(&caller.tenant, &caller.app, completion).await {
        Decision::Unlimited => Ok((None, Flow::Next)),
        Decision::Admitted(grant) => Ok((Some(grant), Flow::Next)),
        Decision::Refused(answer) => {
            respond::send(session, &answer, request_id).await?;
            Ok((None, Flow::Answered))
        }
    }
}

/// What a finished completion spent: what Dify reported; when it reported nothing although it
/// produced output (a stream broken off before its end), what the completion reserved.
pub fn spent(usage: Option<&UsageFacts<'_>>, produced: bool, reserved: u64) -> Spent {
    match usage {
        Some(u) => Spent {
            tokens: u.prompt_tokens.saturating_add(u.completion_tokens),
            cost: u.price.filter(|p| p.is_finite() && *p > 0.0).unwrap_or(0.0),
        },
        None if produced => Spent {
            tokens: reserved,
            cost: 0.0,
        },
        None => Spent::default(),
    }
}
