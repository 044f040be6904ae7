//! What one finished request adds to the metrics (the `logging` phase, the last step of every
//! request, success or not): the request counter and duration, and for completions the tokens, cost,
//! time to first token and stream lifetime Dify reported.

use super::finished::Finished;
use super::{Metrics, RequestLabels};

impl Metrics {
    /// Records a finished request.
    pub fn record_finished(&self, done: &Finished<'_>) {
        let (tenant, app) = done.labels();
        let labels = RequestLabels {
            endpoint: done.endpoint,
            method: done.method,
            status: done.status,
            tenant,
            app,
            mode: if done.streaming { "streaming" } else { "blocking" },
        };
        self.record_request(&labels, done.elapsed.as_secs_f64());
        let Some((tenant, app)) = done.caller else { return };
        if let Some(u) = done.usage {
            let price = u.price.map(|p| (p, u.currency));
            self.usage(tenant, app, u.prompt_tokens, u.completion_tokens, price);
        }
        if done.sse {
            let ttft = done.first_token.map(|d| d.as_secs_f64());
            self.stream(tenant, app, ttft, done.elapsed.as_secs_f64());
        }
    }
}
