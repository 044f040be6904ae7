//! A tenant's limits as configured (`[tenants.limits]` in the file, `"limits"` in the admin API):
//! the same object in both, every key optional. Checked strictly: a zero, negative or unknown limit
//! is refused by key path. Pure.

use serde::{Deserialize, Serialize};

/// The largest limit accepted (well inside the integers Redis's Lua counts exactly).
pub const MAX_COUNT: u64 = 1_000_000_000_000_000;

/// Per-tenant limits; `None` = no limit of that kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Requests of any endpoint per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    /// Completions (blocking and streaming) in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent_requests: Option<u64>,
    /// Prompt + completion tokens per minute, as Dify reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    /// Prompt + completion tokens per day (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<u64>,
    /// Cost per calendar month (UTC), in the currency Dify reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_per_month: Option<f64>,
}

impl Limits {
    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Each limit divided among `n` replicas enforcing it on their own (rounded up, at least 1):
    /// what one replica allows while Redis fails and `on_redis_error = "local"`.
    pub fn divided(&self, n: u64) -> Limits {
        let n = n.max(1);
        let part = |v: Option<u64>| v.map(|v| v.div_ceil(n).max(1));
        Limits {
            requests_per_minute: part(self.requests_per_minute),
            concurrent_requests: part(self.concurrent_requests),
            tokens_per_minute: part(self.tokens_per_minute),
            tokens_per_day: part(self.tokens_per_day),
            cost_per_month: self.cost_per_month.map(|c| c / n as f64),
        }
    }

    /// Every problem, as `(key, message)`; empty when all limits are positive.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        for (key, v) in [
            ("requests_per_minute", self.requests_per_minute),
            ("concurrent_requests", self.concurrent_requests),
            ("tokens_per_minute", self.tokens_per_minute),
            ("tokens_per_day", self.tokens_per_day),
        ] {
            if v == Some(0) {
                out.push((key, "must be at least 1 (leave it out for no limit)".to_string()));
            } else if v.is_some_and(|v| v > MAX_COUNT) {
                out.push((key, format!("must be at most {MAX_COUNT}")));
            }
        }
        if let Some(c) = self.cost_per_month
            && !(c.is_finite() && c > 0.0 && c <= MAX_COUNT as f64)
        {
            out.push((
                "cost_per_month",
                "must be a positive amount (leave it out for no limit)".into(),
            ));
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_strictly_and_names_each_bad_limit() {
        let l: Limits =
            serde_json::from_str(r#"{"requests_per_minute": 600, "cost_per_month": 50.0}"#).unwrap();
        assert!(l.problems().is_empty());
        assert_eq!(l.requests_per_minute, Some(600));
        let bad: Limits = serde_json::from_str(r#"{"tokens_per_day": 0, "cost_per_month": -1}"#).unwrap();
        let keys: Vec<_> = bad.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["tokens_per_day", "cost_per_month"]);
        assert!(serde_json::from_str::<Limits>(r#"{"requests_per_hour": 1}"#).is_err());
        assert!(serde_json::from_str::<Limits>(r#"{"requests_per_minute": -5}"#).is_err());
        assert!(Limits::default().is_empty());
        let split = l.divided(4);
        assert_eq!(
            (split.requests_per_minute, split.cost_per_month),
            (Some(150), Some(12.5))
        );
        assert_eq!(
            Limits {
                concurrent_requests: Some(1),
                ..Limits::default()
            }
            .divided(3)
            .concurrent_requests,
            Some(1)
        );
    }
}
