//! Per-tenant limits and budgets (request step 1b, right after admission and before the body is
//! read or Dify contacted): requests per minute, completions in flight, tokens per minute and per
//! day, cost per month, and a tenant's share of a Dify app it shares with others.
//!
//! Shared by the replicas through Redis, every limit of a tenant in one atomic script call
//! ([`script`], on Redis's clock, keys hash-tagged per tenant); without Redis in process
//! ([`state`]); when Redis fails, as `limits.on_redis_error` says ([`limiter`]). A completion holds a
//! lease (renewed while it runs, expiring after `limits.lease_ttl` if its replica dies) carrying its
//! token reservation; Dify's reported usage replaces the reservation when it ends. [`headers`] makes
//! the 429 and the `RateLimit` headers; [`pingora`] is the proxy's side.

pub mod headers;
pub mod limiter;
pub mod local;
pub mod pingora;
pub mod script;
pub mod state;
pub mod window;

pub use crate::admit::limits::Limits;
pub use limiter::Limiter;

/// One kind of limit (the `limit` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    /// `requests_per_minute`.
    Requests,
    /// `concurrent_requests`.
    Concurrency,
    /// `tokens_per_minute`.
    TokensPerMinute,
    /// `tokens_per_day`.
    TokensPerDay,
    /// `cost_per_month`.
    CostPerMonth,
    /// `max_share` of a shared Dify app.
    Share,
}

impl LimitKind {
    /// Every kind, in the order limits are checked.
    pub const ALL: [LimitKind; 6] = [
        Self::Requests,
        Self::Concurrency,
        Self::TokensPerMinute,
        Self::TokensPerDay,
        Self::CostPerMonth,
        Self::Share,
    ];

    /// The key of the limit in config and API, and its metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Requests => "requests_per_minute",
            Self::Concurrency => "concurrent_requests",
            Self::TokensPerMinute => "tokens_per_minute",
            Self::TokensPerDay => "tokens_per_day",
            Self::CostPerMonth => "cost_per_month",
            Self::Share => "max_share",
        }
    }

    /// The kinds `limits` sets (and `max_share`, when `share` is set).
    pub fn configured(limits: &Limits, share: bool) -> Vec<LimitKind> {
        let set = [
            limits.requests_per_minute.is_some(),
            limits.concurrent_requests.is_some(),
            limits.tokens_per_minute.is_some(),
            limits.tokens_per_day.is_some(),
            limits.cost_per_month.is_some(),
            share,
        ];
        Self::ALL
            .into_iter()
            .zip(set)
            .filter(|(_, on)| *on)
            .map(|(k, _)| k)
            .collect()
    }
}

/// A tenant's share of a Dify app several tenants use.
#[derive(Debug, Clone, Copy)]
pub struct Share<'a> {
    /// The app (a hash of its Dify key, never the key).
    pub app: &'a str,
    /// The fraction of the app's completions in flight the tenant may hold under contention.
    pub fraction: f64,
}

/// What one request asks of its tenant's limits.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// Tenant id.
    pub tenant: &'a str,
    /// The limits that apply.
    pub limits: &'a Limits,
    /// A completion: leased, and held to the token and cost limits.
    pub completion: bool,
    /// Tokens it reserves until Dify reports its usage (`max_tokens_per_request`, or 0).
    pub reserve: u64,
    /// Its lease id (completions).
    pub lease: &'a str,
    /// Its tenant's share of a shared app, when set.
    pub share: Option<Share<'a>>,
}

/// What is left of each limit after an admission (`None`: not limited).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Remaining {
    /// Requests this minute.
    pub requests: Option<u64>,
    /// Completions that may still start.
    pub concurrency: Option<u64>,
    /// Tokens this (sliding) minute.
    pub tokens_per_minute: Option<u64>,
    /// Tokens today.
    pub tokens_per_day: Option<u64>,
    /// Cost this month.
    pub cost_per_month: Option<f64>,
}

impl Remaining {
    /// What is left, by limit (for the headers and the gauges).
    pub fn by_kind(&self) -> [(LimitKind, Option<f64>); 5] {
        let n = |v: Option<u64>| v.map(|r| r as f64);
        [
            (LimitKind::Requests, n(self.requests)),
            (LimitKind::Concurrency, n(self.concurrency)),
            (LimitKind::TokensPerMinute, n(self.tokens_per_minute)),
            (LimitKind::TokensPerDay, n(self.tokens_per_day)),
            (LimitKind::CostPerMonth, self.cost_per_month),
        ]
    }
}

/// A decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Go on; what is left.
    Admitted(Remaining),
    /// Refused by `kind`; try again after this many seconds.
    Refused {
        /// The limit reached.
        kind: LimitKind,
        /// Seconds until it may pass.
        retry_after: u64,
    },
}

/// What a completion used, as Dify reported it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spent {
    /// Prompt and completion tokens.
    pub tokens: u64,
    /// Total price.
    pub cost: f64,
}

/// What a tenant uses now, window by window.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Usage {
    /// Requests in the last minute (as GCRA counts them).
    pub requests_per_minute: u64,
    /// Completions in flight.
    pub concurrent_requests: u64,
    /// Tokens in the sliding minute, reservations included.
    pub tokens_per_minute: u64,
    /// Tokens today (UTC), reservations included.
    pub tokens_per_day: u64,
    /// Cost this calendar month (UTC).
    pub cost_per_month: f64,
}
