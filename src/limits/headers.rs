//! What a limit decision looks like to the client (request step 1b): the 429 in Dify's envelope
//! naming the limit, with `Retry-After`, and the IETF httpapi rate-limit headers: `RateLimit-Policy`
//! lists the tenant's rate limits (`"name";q=quota;w=window`, with `qu` for the units that are not
//! requests), `RateLimit` says what is left of one (`"name";r=remaining;t=seconds`): on refusals the
//! limit reached, on admitted answers the tightest. The monthly budget and an app's share are not
//! rates with an integer quota: they appear in the 429's message and `Retry-After` only. Pure.

use super::window::{Window, seconds_left};
use super::{LimitKind, Limits, Remaining};
use crate::respond::{ErrorKind, GatewayError, LocalAnswer};

/// `(quota, window seconds)` of `kind` in `limits` (`None` when unset; no window for concurrency).
fn quota(limits: &Limits, kind: LimitKind) -> Option<(f64, Option<u64>)> {
    match kind {
        LimitKind::Requests => limits.requests_per_minute.map(|q| (q as f64, Some(60))),
        LimitKind::Concurrency => limits.concurrent_requests.map(|q| (q as f64, None)),
        LimitKind::TokensPerMinute => limits.tokens_per_minute.map(|q| (q as f64, Some(60))),
        LimitKind::TokensPerDay => limits.tokens_per_day.map(|q| (q as f64, Some(86_400))),
        LimitKind::CostPerMonth => limits.cost_per_month.map(|q| (q, Some(30 * 86_400))),
        LimitKind::Share => None,
    }
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}

/// The quota unit of `kind` in the headers (`None`: requests, the draft's default; the budget and
/// shares have none and stay out of the headers).
fn unit(kind: LimitKind) -> Option<Option<&'static str>> {
    match kind {
        LimitKind::Requests => Some(None),
        LimitKind::Concurrency => Some(Some("concurrent-requests")),
        LimitKind::TokensPerMinute | LimitKind::TokensPerDay => Some(Some("tokens")),
        LimitKind::CostPerMonth | LimitKind::Share => None,
    }
}

/// `RateLimit-Policy`: every rate limit the tenant has.
pub fn policy(limits: &Limits) -> Option<String> {
    let items: Vec<String> = LimitKind::ALL
        .iter()
        .filter_map(|k| {
            let qu = unit(*k)?;
            let (q, w) = quota(limits, *k)?;
            let w = w.map(|w| format!(";w={w}")).unwrap_or_default();
            let qu = qu.map(|u| format!(";qu=\"{u}\"")).unwrap_or_default();
            Some(format!("\"{}\";q={}{w}{qu}", k.label(), q as u64))
        })
        .collect();
    (!items.is_empty()).then(|| items.join(", "))
}

/// `RateLimit` for one rate limit: `remaining` left, restored in `reset` seconds (no reset for
/// concurrency: a completion ending frees a place).
pub fn ratelimit(kind: LimitKind, remaining: f64, reset: u64) -> String {
    let t = if kind == LimitKind::Concurrency {
        String::new()
    } else {
        format!(";t={reset}")
    };
    format!("\"{}\";r={}{t}", kind.label(), remaining.max(0.0) as u64)
}

/// Seconds until `kind` is whole again, as far as the gateway can tell at `now_ms`.
fn reset(kind: LimitKind, limits: &Limits, remaining: f64, now_ms: u64) -> u64 {
    match kind {
        LimitKind::Requests => {
            let q = limits.requests_per_minute.unwrap_or(1).max(1) as f64;
            ((q - remaining).max(0.0) * 60.0 / q).ceil() as u64
        }
        LimitKind::TokensPerMinute => seconds_left(now_ms, Window::Minute),
        LimitKind::TokensPerDay => seconds_left(now_ms, Window::Day),
        LimitKind::CostPerMonth => seconds_left(now_ms, Window::Month),
        LimitKind::Concurrency | LimitKind::Share => 0,
    }
}

/// `RateLimit` for the admitted request's tightest limit (least left for its quota).
pub fn tightest(limits: &Limits, rem: &Remaining, now_ms: u64) -> Option<String> {
    let (kind, r) = rem
        .by_kind()
        .into_iter()
        .filter_map(|(k, r)| {
            let (q, _) = quota(limits, k)?;
            Some((k, r?, q))
        })
        .min_by(|a, b| (a.1 / a.2).total_cmp(&(b.1 / b.2)))
        .map(|(k, r, _)| (k, r))?;
    Some(ratelimit(kind, r, reset(kind, limits, r, now_ms)))
}

/// The 429 for a request `kind` refused, to be retried after `retry_after` seconds.
pub fn refusal(kind: LimitKind, retry_after: u64, limits: &Limits) -> LocalAnswer {
    let what = match quota(limits, kind) {
        Some((q, _)) => format!("{} ({})", kind.label(), number(q)),
        None => format!(
            "{} (this tenant's share of a Dify app it shares with others)",
            kind.label()
        ),
    };
    let msg = format!("Tenant limit {what} reached; retry in {retry_after} s");
    let mut answer = LocalAnswer::from(&GatewayError::new(ErrorKind::TooManyRequests, msg));
    answer.headers.push(("retry-after", retry_after.to_string()));
    if let Some(p) = policy(limits) {
        answer.headers.push(("ratelimit-policy", p));
    }
    if unit(kind).is_some() {
        answer
            .headers
            .push(("ratelimit", ratelimit(kind, 0.0, retry_after)));
    }
    answer
}

/// The 503 when the limits cannot be checked and the policy is `closed`.
pub fn unavailable() -> LocalAnswer {
    let msg = "The gateway cannot check this tenant's limits right now; retry shortly";
    let mut answer = LocalAnswer::from(&GatewayError::new(ErrorKind::ServiceUnavailable, msg));
    answer.headers.push(("retry-after", "1".into()));
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_follow_the_draft_and_name_the_limit() {
        let l = Limits {
            requests_per_minute: Some(600),
            concurrent_requests: Some(20),
            cost_per_month: Some(50.0),
            ..Limits::default()
        };
        assert_eq!(
            policy(&l).as_deref(),
            Some(
                "\"requests_per_minute\";q=600;w=60, \"concurrent_requests\";q=20;qu=\"concurrent-requests\""
            )
        );
        let r = Remaining {
            requests: Some(590),
            concurrency: Some(2),
            cost_per_month: Some(40.0),
            ..Remaining::default()
        };
        assert_eq!(
            tightest(&l, &r, 0).as_deref(),
            Some("\"concurrent_requests\";r=2")
        );
        let spent = refusal(LimitKind::CostPerMonth, 60, &l);
        assert!(
            spent.headers.iter().all(|(k, _)| *k != "ratelimit"),
            "no RateLimit for the budget"
        );
        assert!(String::from_utf8_lossy(&spent.body).contains("cost_per_month (50)"));
        let a = refusal(LimitKind::Requests, 7, &l);
        assert_eq!(a.status, 429);
        let body = String::from_utf8_lossy(&a.body);
        assert!(
            body.contains("\"too_many_requests\"") && body.contains("requests_per_minute (600)"),
            "{body}"
        );
        assert!(a.headers.contains(&("retry-after", "7".into())));
        assert!(
            a.headers
                .contains(&("ratelimit", "\"requests_per_minute\";r=0;t=7".into()))
        );
        assert_eq!(policy(&Limits::default()), None);
        assert_eq!(unavailable().status, 503);
    }
}
