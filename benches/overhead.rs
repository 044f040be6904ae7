//! What observability costs on the request path: the metric recording the `logging` phase does for
//! each request (timed in process), and cache-hit latency and throughput through the release gateway
//! with OTLP tracing off and on (spans exported to an in-process collector), in the same run.
//!
//! `cargo build --release --workspace --bins && cargo bench --bench overhead`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/mod.rs"]
mod support;

use dify_gateway::telemetry::{Metrics, RequestLabels};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::{Procs, percentile};

#[path = "../tests/common/otlp.rs"]
mod otlp;

fn metrics_cost() -> f64 {
    let reg = prometheus::Registry::new();
    let m = Metrics::register(&reg).unwrap();
    let tenants = ["acme", "globex", "initech", "umbrella"];
    let n = 200_000;
    let t = Instant::now();
    for i in 0..n {
        let tenant = tenants[i % tenants.len()];
        let l = RequestLabels {
            endpoint: "completion_messages",
            method: "POST",
            status: 200,
            tenant,
            app: "writer",
            mode: "streaming",
        };
        m.record_request(&l, 0.01);
        m.usage(tenant, "writer", 100, 20, Some((0.0001, "USD")));
        m.stream(tenant, "writer", Some(0.2), 1.5);
        m.sse_events("message", 20);
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

async fn hits(url: &str, auth: &str, n: usize, secs: u64) -> (f64, f64, f64) {
    let http = reqwest::Client::new();
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = http.get(url).header("authorization", auth).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (done, url, auth) = (done.clone(), url.to_string(), auth.to_string());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                while Instant::now() < deadline {
                    let r = http
                        .get(&url)
                        .header("authorization", &auth)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    r.bytes().await.unwrap();
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (
        percentile(&mut ms, 50.0),
        percentile(&mut ms, 99.0),
        done.load(Ordering::Relaxed) as f64 / secs as f64,
    )
}

#[tokio::main]
async fn main() {
    println!("# Observability overhead\n");
    println!("Metric recording per request (logging phase: request counter and duration, tokens, cost,");
    println!(
        "time to first token, stream duration, SSE events): {:.0} ns\n",
        metrics_cost()
    );
    let (addr, collector) = otlp::Collector::start().await;
    println!("| gateway, cache hit | p50 ms | p99 ms | requests/s at concurrency 32 |");
    println!("|---|---|---|---|");
    for (name, telemetry) in [
        ("tracing off", String::new()),
        ("tracing on (OTLP)", format!("otlp_endpoint = \"http://{addr}\"")),
    ] {
        let p = Procs::start_full(&[], &telemetry).await;
        let url = format!("{}/v1/parameters", p.gw_url);
        hits(&url, &p.gw_auth, 200, 1).await;
        let (p50, p99, rps) = hits(&url, &p.gw_auth, 3000, 5).await;
        println!("| {name} | {p50:.3} | {p99:.3} | {rps:.0} |");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!("\nSpans received by the collector: {}", collector.spans().len());
}
