//! What the gateway tells operators about each request (the last step, `logging`, and the spans
//! opened in `request_filter`): Prometheus metrics with bounded labels, OpenTelemetry traces, the
//! access log line, and log output set-up.

pub mod access;
pub mod finished;
pub mod labels;
pub mod line;
pub mod logging;
pub mod metrics;
pub mod record;
pub mod spans;
pub mod trace;

pub use metrics::{Known, Metrics, RequestLabels};
