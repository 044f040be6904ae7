//! Every Prometheus metric the gateway exports, with its name and bounded labels, in one place
//! (recorded in the `logging` phase, the last step of every request). The [`Registry`] is created at
//! start-up and passed down; `/metrics` on the admin listener serves it. Label values come from
//! [`super::labels`] or the configuration, never from requests.

use super::labels::{currency_label, method_label, status_class};
use prometheus::{
    CounterVec, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// Metric name prefix.
pub const PREFIX: &str = "dify_gateway_";

/// Request duration buckets (seconds): sub-millisecond cache hits up to 20-minute completions.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
    300.0, 600.0, 1200.0,
];

/// Time-to-first-token buckets (seconds), as the OpenTelemetry GenAI semantic conventions recommend
/// for `gen_ai.server.time_to_first_token`.
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Stream lifetime buckets (seconds): short answers up to Dify's 1200 s limit.
const STREAM_BUCKETS: &[f64] = &[
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0,
];

/// Labels of a finished request. Every value is bounded: endpoint names come from the route table,
/// tenant and app from config (or `none`), method and status class from fixed sets.
pub struct RequestLabels<'a> {
    /// Route name, or `unmatched`.
    pub endpoint: &'a str,
    /// HTTP method, folded into a fixed set.
    pub method: &'a str,
    /// HTTP status code (0 when the client left before a response).
    pub status: u16,
    /// Configured tenant id, or `none`.
    pub tenant: &'a str,
    /// Configured app name, or `none`.
    pub app: &'a str,
    /// `blocking` or `streaming`.
    pub mode: &'a str,
}

/// The gateway's metric families.
#[derive(Clone)]
pub struct Metrics {
    requests: IntCounterVec,
    duration: HistogramVec,
    /// Streams (SSE or audio) open right now.
    pub active_streams: IntGauge,
    auth_failures: IntCounterVec,
    upstream_errors: IntCounterVec,
    stops: IntCounterVec,
    sse_events: IntCounterVec,
    cache_lookups: IntCounterVec,
    redis_errors: IntCounterVec,
    config_reloads: IntCounterVec,
    upstream_first_byte: HistogramVec,
    ttft: HistogramVec,
    stream_duration: HistogramVec,
    tokens: IntCounterVec,
    cost: CounterVec,
    /// 1 while Redis is configured, connected and its circuit closed.
    pub redis_up: IntGauge,
    /// 1 while the store's database answers (exposed only with a store).
    pub store_up: IntGauge,
    admin_changes: IntCounterVec,
    jwks_fetches: IntCounterVec,
    limit_decisions: IntCounterVec,
    limit_remaining: GaugeVec,
    limit_quota: GaugeVec,
    upstream_healthy: IntGaugeVec,
    upstream_inflight: IntGaugeVec,
    upstream_requests: IntCounterVec,
}

/// Registers families on one registry under the common prefix.
struct Families<'a>(&'a Registry);

impl Families<'_> {
    fn counter(&self, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
        let c = IntCounterVec::new(Opts::new(format!("{PREFIX}{name}"), help), labels)?;
        self.0.register(Box::new(c.clone()))?;
        Ok(c)
    }

    fn histogram(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
        labels: &[&str],
    ) -> prometheus::Result<HistogramVec> {
        let opts = HistogramOpts::new(format!("{PREFIX}{name}"), help).buckets(buckets.to_vec());
        let h = HistogramVec::new(opts, labels)?;
        self.0.register(Box::new(h.clone()))?;
        Ok(h)
    }

    fn float_gauge(&self, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<GaugeVec> {
        let g = GaugeVec::new(Opts::new(format!("{PREFIX}{name}"), help), labels)?;
        self.0.register(Box::new(g.clone()))?;
        Ok(g)
    }

    fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntGaugeVec> {
        let g = IntGaugeVec::new(Opts::new(format!("{PREFIX}{name}"), help), labels)?;
        self.0.register(Box::new(g.clone()))?;
        Ok(g)
    }

    fn gauge(&self, name: &str, help: &str) -> prometheus::Result<IntGauge> {
        let g = IntGauge::new(format!("{PREFIX}{name}"), help)?;
        self.0.register(Box::new(g.clone()))?;
        Ok(g)
    }
}

/// Label values known at start-up: every series a dashboard or alert reads is created from them at
/// zero, so panels show 0 instead of "no data" and `rate()` sees the first increment.
pub struct Known<'a> {
    /// Each endpoint label with its method, and whether it answers streams.
    pub endpoints: &'a [(&'static str, &'static str, bool)],
    /// `auth_failures_total` reasons.
    pub auth_reasons: &'a [&'static str],
    /// `upstream_errors_total` kinds.
    pub upstream_failures: &'a [&'static str],
    /// `stops_total` causes.
    pub stop_causes: &'a [&'static str],
    /// `sse_events_total` kinds.
    pub sse_kinds: &'a [&'static str],
    /// `cache_lookups_total`: endpoints, tiers and outcomes.
    pub cache: (&'a [&'static str], &'a [&'static str], &'a [&'static str]),
    /// `redis_errors_total`: operations and failure kinds.
    pub redis: (&'a [&'static str], &'a [&'static str]),
    /// `config_reloads_total` outcomes.
    pub reloads: &'a [&'static str],
    /// `admin_changes_total` actions.
    pub admin_actions: &'a [&'static str],
    /// `jwks_fetches_total` outcomes.
    pub jwks_outcomes: &'a [&'static str],
}

impl Metrics {
    /// Creates and registers every family on `reg`.
    pub fn register(reg: &Registry) -> prometheus::Result<Self> {
        let f = Families(reg);
        let by_caller = &["tenant", "app"];
        let m = Self {
            requests: f.counter(
                "requests_total",
                "Requests handled, by endpoint, method, status class, tenant and app.",
                &["endpoint", "method", "status_class", "tenant", "app"],
            )?,
            duration: f.histogram(
                "request_duration_seconds",
                "Time from request start to the end of the response, by endpoint and mode.",
                DURATION_BUCKETS,
                &["endpoint", "mode"],
            )?,
            active_streams: f.gauge("active_streams", "Streaming responses open now.")?,
            auth_failures: f.counter(
                "auth_failures_total",
                "Calls refused before reaching Dify, by reason.",
                &["reason"],
            )?,
            upstream_errors: f.counter("upstream_errors_total", "Failures talking to Dify, by kind.", &["kind"])?,
            stops: f.counter(
                "stops_total",
                "Stop calls sent to Dify, by cause (client, disconnect, shutdown, idle_timeout).",
                &["cause"],
            )?,
            sse_events: f.counter("sse_events_total", "Server-sent events passed to clients, by kind.", &["kind"])?,
            cache_lookups: f.counter(
                "cache_lookups_total",
                "Metadata cache lookups, by endpoint, tier (l1, l2) and outcome.",
                &["endpoint", "tier", "outcome"],
            )?,
            redis_errors: f.counter(
                "redis_errors_total",
                "Redis calls that failed, timed out, were skipped by the circuit breaker, or read values that did not verify.",
                &["op", "kind"],
            )?,
            config_reloads: f.counter(
                "config_reloads_total",
                "Configuration reloads (SIGHUP), by outcome (applied, rejected).",
                &["outcome"],
            )?,
            upstream_first_byte: f.histogram(
                "upstream_first_byte_seconds",
                "Time from sending a request to Dify to its response head, by endpoint.",
                DURATION_BUCKETS,
                &["endpoint"],
            )?,
            ttft: f.histogram(
                "time_to_first_token_seconds",
                "Time from request start to the first `message` event of a stream, by tenant and app.",
                TTFT_BUCKETS,
                by_caller,
            )?,
            stream_duration: f.histogram(
                "stream_duration_seconds",
                "Lifetime of completion streams, by tenant and app.",
                STREAM_BUCKETS,
                by_caller,
            )?,
            tokens: f.counter(
                "tokens_total",
                "Tokens Dify reported, by tenant, app and type (prompt, completion).",
                &["tenant", "app", "type"],
            )?,
            cost: {
                let opts = Opts::new(
                    format!("{PREFIX}cost_total"),
                    "Cost Dify reported (total_price), by tenant, app and currency.",
                );
                let c = CounterVec::new(opts, &["tenant", "app", "currency"])?;
                reg.register(Box::new(c.clone()))?;
                c
            },
            redis_up: f.gauge(
                "redis_up",
                "Whether Redis is connected with its circuit closed (1) or not (0).",
            )?,
            // Registered only with a store ([`Metrics::expose_store`]): absent means no store.
            store_up: IntGauge::new(
                format!("{PREFIX}store_up"),
                "Whether the store's database answers (1) or not (0).",
            )?,
            admin_changes: f.counter(
                "admin_changes_total",
                "Changes made through the admin API on this replica, by action.",
                &["action"],
            )?,
            jwks_fetches: f.counter(
                "jwks_fetches_total",
                "Fetches of identity providers' key sets, by outcome (ok, failed).",
                &["outcome"],
            )?,
            limit_decisions: f.counter(
                "limit_decisions_total",
                "Limit checks, by tenant, limit and outcome (admitted, refused, redis_error).",
                &["tenant", "limit", "outcome"],
            )?,
            limit_remaining: f.float_gauge(
                "limit_remaining",
                "What is left of a tenant's limit in its current window (shared by all replicas).",
                &["tenant", "limit"],
            )?,
            limit_quota: f.float_gauge(
                "limit_quota",
                "A tenant's configured limit.",
                &["tenant", "limit"],
            )?,
            upstream_healthy: f.gauge_vec(
                "upstream_healthy",
                "Whether a Dify replica is in the pool (1: passing its checks, not ejected) or not (0).",
                &["upstream"],
            )?,
            upstream_inflight: f.gauge_vec(
                "upstream_inflight",
                "Requests in flight to a Dify replica (streams count until they end).",
                &["upstream"],
            )?,
            upstream_requests: f.counter(
                "upstream_requests_total",
                "Requests sent to a Dify replica, by status class of the answer.",
                &["upstream", "status_class"],
            )?,
        };
        let build = IntGaugeVec::new(
            Opts::new(
                format!("{PREFIX}build_info"),
                "Build information; the value is always 1.",
            ),
            &["version"],
        )?;
        reg.register(Box::new(build.clone()))?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        Ok(m)
    }

    /// Exposes `store_up` on `reg` (a gateway with a store).
    pub fn expose_store(&self, reg: &Registry) -> prometheus::Result<()> {
        reg.register(Box::new(self.store_up.clone()))
    }

    /// Creates every series of `known` at zero.
    pub fn precreate(&self, known: &Known<'_>) {
        for (endpoint, method, streams) in known.endpoints {
            self.upstream_first_byte.with_label_values(&[endpoint]);
            self.duration.with_label_values(&[endpoint, "blocking"]);
            if *streams {
                self.duration.with_label_values(&[endpoint, "streaming"]);
            }
            for class in ["2xx", "4xx", "5xx"] {
                self.requests
                    .with_label_values(&[endpoint, method, class, "none", "none"]);
            }
        }
        let one =
            |v: &IntCounterVec, values: &[&str]| values.iter().for_each(|x| drop(v.with_label_values(&[x])));
        one(&self.auth_failures, known.auth_reasons);
        one(&self.upstream_errors, known.upstream_failures);
        one(&self.stops, known.stop_causes);
        one(&self.sse_events, known.sse_kinds);
        one(&self.config_reloads, known.reloads);
        one(&self.admin_changes, known.admin_actions);
        one(&self.jwks_fetches, known.jwks_outcomes);
        let (endpoints, tiers, outcomes) = known.cache;
        for e in endpoints {
            for t in tiers {
                for o in outcomes {
                    self.cache_lookups.with_label_values(&[e, t, o]);
                }
            }
        }
        let (ops, kinds) = known.redis;
        for o in ops {
            for k in kinds {
                self.redis_errors.with_label_values(&[o, k]);
            }
        }
    }

    /// Creates the per-caller series of `tenant`/`app` at zero: completions by status class, tokens,
    /// cost in USD, time to first token and stream lifetime.
    pub fn precreate_app(&self, tenant: &str, app: &str) {
        for class in ["2xx", "4xx", "5xx"] {
            self.requests
                .with_label_values(&["completion_messages", "POST", class, tenant, app]);
        }
        for kind in ["prompt", "completion"] {
            self.tokens.with_label_values(&[tenant, app, kind]);
        }
        self.cost.with_label_values(&[tenant, app, "USD"]);
        self.ttft.with_label_values(&[tenant, app]);
        self.stream_duration.with_label_values(&[tenant, app]);
    }

    /// Records a finished request.
    pub fn record_request(&self, l: &RequestLabels<'_>, seconds: f64) {
        self.requests
            .with_label_values(&[
                l.endpoint,
                method_label(l.method),
                status_class(l.status),
                l.tenant,
                l.app,
            ])
            .inc();
        let h: Histogram = self.duration.with_label_values(&[l.endpoint, l.mode]);
        h.observe(seconds);
    }

    /// Counts a refused call (`reason` from a closed set).
    pub fn auth_failure(&self, reason: &'static str) {
        self.auth_failures.with_label_values(&[reason]).inc();
    }

    /// Counts a stop sent to Dify (`cause` from a closed set).
    pub fn stop(&self, cause: &'static str) {
        self.stops.with_label_values(&[cause]).inc();
    }

    /// Counts `n` SSE events of `kind` (a closed set).
    pub fn sse_events(&self, kind: &'static str, n: u64) {
        if n > 0 {
            self.sse_events.with_label_values(&[kind]).inc_by(n);
        }
    }

    /// Time from sending to Dify to its response head.
    pub fn upstream_first_byte(&self, endpoint: &'static str, seconds: f64) {
        self.upstream_first_byte
            .with_label_values(&[endpoint])
            .observe(seconds);
    }

    /// A finished completion stream: its time to first token (when it had one) and its lifetime.
    pub fn stream(&self, tenant: &str, app: &str, ttft: Option<f64>, duration: f64) {
        if let Some(t) = ttft {
            self.ttft.with_label_values(&[tenant, app]).observe(t);
        }
        self.stream_duration
            .with_label_values(&[tenant, app])
            .observe(duration);
    }

    /// The usage Dify reported for one completion.
    pub fn usage(&self, tenant: &str, app: &str, prompt: u64, completion: u64, price: Option<(f64, &str)>) {
        self.tokens
            .with_label_values(&[tenant, app, "prompt"])
            .inc_by(prompt);
        self.tokens
            .with_label_values(&[tenant, app, "completion"])
            .inc_by(completion);
        if let Some((amount, currency)) = price.filter(|(a, _)| a.is_finite() && *a > 0.0) {
            self.cost
                .with_label_values(&[tenant, app, currency_label(currency)])
                .inc_by(amount);
        }
    }

    /// Counts a configuration reload (`outcome` from a closed set).
    pub fn config_reload(&self, outcome: &'static str) {
        self.config_reloads.with_label_values(&[outcome]).inc();
    }

    /// Counts a cache lookup (all labels from closed sets).
    pub fn cache_lookup(&self, endpoint: &'static str, tier: &'static str, outcome: &'static str) {
        self.cache_lookups
            .with_label_values(&[endpoint, tier, outcome])
            .inc();
    }

    /// Counts a failed or skipped Redis call.
    pub fn redis_error(&self, op: &'static str, kind: &'static str) {
        self.redis_errors.with_label_values(&[op, kind]).inc();
    }

    /// Counts a change made through the admin API (`action` from a closed set).
    pub fn admin_change(&self, action: &'static str) {
        self.admin_changes.with_label_values(&[action]).inc();
    }

    /// Counts a limit check (`limit` and `outcome` from closed sets; `tenant` a configured one).
    pub fn limit_decision(&self, tenant: &str, limit: &'static str, outcome: &'static str) {
        self.limit_decisions
            .with_label_values(&[tenant, limit, outcome])
            .inc();
    }

    /// What is left of a tenant's limit.
    pub fn limit_remaining(&self, tenant: &str, limit: &'static str, left: f64) {
        self.limit_remaining.with_label_values(&[tenant, limit]).set(left);
    }

    /// Creates a tenant's limit series: its decisions at zero, its quota, and what is left (the
    /// whole quota until the first look at Redis says otherwise).
    pub fn precreate_limit(&self, tenant: &str, limit: &'static str, quota: Option<f64>) {
        for outcome in ["admitted", "refused", "redis_error"] {
            self.limit_decisions.with_label_values(&[tenant, limit, outcome]);
        }
        if let Some(q) = quota {
            self.limit_quota.with_label_values(&[tenant, limit]).set(q);
            let left = self.limit_remaining.with_label_values(&[tenant, limit]);
            if left.get() == 0.0 {
                left.set(q);
            }
        }
    }

    /// A Dify replica is in the pool or not (`upstream` is `ip:port`, one of the pool's).
    pub fn upstream_healthy(&self, upstream: &str, healthy: bool) {
        self.upstream_healthy
            .with_label_values(&[upstream])
            .set(i64::from(healthy));
        for class in ["2xx", "4xx", "5xx"] {
            self.upstream_requests.with_label_values(&[upstream, class]);
        }
    }

    /// Drops the series of a Dify replica that left the pool for good.
    pub fn upstream_removed(&self, upstream: &str) {
        let _ = self.upstream_healthy.remove_label_values(&[upstream]);
        let _ = self.upstream_inflight.remove_label_values(&[upstream]);
        for class in super::labels::STATUS_CLASSES {
            let _ = self.upstream_requests.remove_label_values(&[upstream, class]);
        }
    }

    /// Requests in flight to a Dify replica.
    pub fn upstream_inflight(&self, upstream: &str, n: usize) {
        self.upstream_inflight
            .with_label_values(&[upstream])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Counts a request a Dify replica answered with `status` (0: no answer).
    pub fn upstream_request(&self, upstream: &str, status: u16) {
        self.upstream_requests
            .with_label_values(&[upstream, status_class(status)])
            .inc();
    }

    /// Counts a key set fetch (`outcome` from a closed set).
    pub fn jwks_fetch(&self, outcome: &'static str) {
        self.jwks_fetches.with_label_values(&[outcome]).inc();
    }

    /// Counts an upstream failure (`kind` from a closed set).
    pub fn upstream_error(&self, kind: &'static str) {
        self.upstream_errors.with_label_values(&[kind]).inc();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn records_with_bounded_labels() {
        let reg = Registry::new();
        let m = Metrics::register(&reg).unwrap();
        let l = RequestLabels {
            endpoint: "info",
            method: "BREW",
            status: 200,
            tenant: "acme",
            app: "writer",
            mode: "blocking",
        };
        m.record_request(&l, 0.01);
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&reg.gather())
            .unwrap();
        assert!(text.contains(
            "dify_gateway_requests_total{app=\"writer\",endpoint=\"info\",method=\"other\",status_class=\"2xx\",tenant=\"acme\"} 1"
        ));
        assert!(
            text.contains(
                "dify_gateway_request_duration_seconds_count{endpoint=\"info\",mode=\"blocking\"} 1"
            )
        );
    }
}
