//! A tenant's limits as configured (`[tenants.limits]` in the file, `"limits"` in the admin API):
//! the same object in both, every key optional. Checked strictly: a zero, negative or unknown limit
//! is refused by key path. Pure.

use serde::{Deserialize, Serialize};

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
            }
        }
        if let Some(c) = self.cost_per_month
            && !(c.is_finite() && c > 0.0)
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
    }
}
