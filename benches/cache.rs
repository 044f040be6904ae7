//! Cache-hit benchmark: `GET /v1/parameters` answered from the gateway's in-process cache, against
//! the same request sent straight to the simulator, in the same run: latency at concurrency 1 and
//! throughput at concurrency 32 (keep-alive connections).
//!
//! `cargo build --release --workspace --bins && cargo bench --bench cache -- [--requests N] [--seconds S]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/mod.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use support::{Procs, arg, percentile};

async fn latency(http: &reqwest::Client, url: &str, auth: &str, n: usize) -> (f64, f64, f64) {
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = http.get(url).header("authorization", auth).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    (
        percentile(&mut ms, 50.0),
        percentile(&mut ms, 99.0),
        percentile(&mut ms, 99.9),
    )
}

async fn throughput(url: &str, auth: &str, conc: usize, secs: u64) -> f64 {
    if secs == 0 {
        return 0.0;
    }
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (done, url, auth) = (done.clone(), url.to_string(), auth.to_string());
        tasks.push(tokio::spawn(async move {
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
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / secs as f64
}

#[tokio::main]
async fn main() {
    let n: usize = arg("--requests").and_then(|v| v.parse().ok()).unwrap_or(5000);
    let secs: u64 = arg("--seconds").and_then(|v| v.parse().ok()).unwrap_or(5);
    // The simulator answers metadata instantly by default; Dify reads it from its database.
    let delay = arg("--sim-delay-ms").unwrap_or_else(|| "0".into());
    let p = Procs::start_with(&["--metadata-delay-ms", &delay]).await;
    let http = reqwest::Client::new();
    let direct = format!("{}/v1/parameters", p.sim_url);
    let via = format!("{}/v1/parameters", p.gw_url);
    // Warm both paths (and fill the cache).
    latency(&http, &direct, &p.direct_auth, 200).await;
    latency(&http, &via, &p.gw_auth, 200).await;
    println!("# dify-gateway cache-hit benchmark (simulator metadata latency {delay} ms)\n");
    println!("## GET /v1/parameters at concurrency 1 ({n} requests, keep-alive)\n");
    println!("| path | p50 ms | p99 ms | p99.9 ms |");
    println!("|---|---|---|---|");
    let d = latency(&http, &direct, &p.direct_auth, n).await;
    let g = latency(&http, &via, &p.gw_auth, n).await;
    println!(
        "| direct to the simulator | {:.3} | {:.3} | {:.3} |",
        d.0, d.1, d.2
    );
    println!("| gateway, cache hit | {:.3} | {:.3} | {:.3} |", g.0, g.1, g.2);
    println!("\n## Throughput at concurrency 32 ({secs} s each)\n");
    println!("| path | requests/s |");
    println!("|---|---|");
    let hits_before = p
        .metric_sum("dify_gateway_cache_lookups_total", &["outcome=\"hit\""])
        .await;
    let dt = throughput(&direct, &p.direct_auth, 32, secs).await;
    let gt = throughput(&via, &p.gw_auth, 32, secs).await;
    // What was measured was cache hits: every gateway request of the run was one.
    let hits = p
        .metric_sum("dify_gateway_cache_lookups_total", &["outcome=\"hit\""])
        .await
        - hits_before;
    assert!(
        hits >= gt * secs as f64 * 0.99,
        "{hits} hits for {} requests",
        gt * secs as f64
    );
    println!("| direct to the simulator | {dt:.0} |");
    println!("| gateway, cache hit | {gt:.0} |");
    println!("\nGateway / direct throughput: {:.2}x", gt / dt);
}
