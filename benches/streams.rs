//! Streaming benchmark: the release gateway in front of the release simulator, against the simulator
//! directly, in the same run. Reports added time to first token (p50, p99), added gap between events
//! (p99) and how many concurrent streams stay stall-free, with the gateway's peak RSS.
//!
//! `cargo build --release --bins && cargo bench --bench streams -- [--latency-streams N] [--levels 1000,5000]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/mod.rs"]
mod support;

use futures_util::StreamExt;
use std::time::{Duration, Instant};
use support::{Procs, arg, percentile};

/// One stream as a client saw it.
struct StreamRun {
    ttft: Duration,
    gaps: Vec<Duration>,
    ok: bool,
}

async fn one_stream(
    http: &reqwest::Client,
    base: &str,
    auth: &str,
    events: u32,
    interval_ms: u32,
) -> StreamRun {
    let start = Instant::now();
    let req = http
        .post(format!("{base}/v1/completion-messages"))
        .header("authorization", auth)
        .header("x-sim-events", events.to_string())
        .header("x-sim-event-interval-ms", interval_ms.to_string())
        .header("x-sim-ping-interval-ms", "0")
        .json(
            &serde_json::json!({"inputs": {"topic": "tea"}, "response_mode": "streaming", "user": "bench"}),
        );
    let fail = || StreamRun {
        ttft: Duration::ZERO,
        gaps: Vec::new(),
        ok: false,
    };
    let Ok(resp) = req.send().await else { return fail() };
    if resp.status() != 200 {
        return fail();
    }
    let mut body = resp.bytes_stream();
    let (mut carry, mut ttft, mut last, mut gaps, mut n, mut ended) =
        (Vec::new(), None, None, Vec::new(), 0, false);
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else { return fail() };
        let now = Instant::now();
        carry.extend_from_slice(&chunk);
        while let Some(i) = carry.windows(2).position(|w| w == b"\n\n") {
            let frame: Vec<u8> = carry.drain(..i + 2).collect();
            if frame.starts_with(b"data: {\"event\":\"message\"") {
                n += 1;
                ttft.get_or_insert(now - start);
                if let Some(prev) = last {
                    gaps.push(now - prev);
                }
                last = Some(now);
            } else if frame.starts_with(b"data: {\"event\":\"message_end\"") {
                ended = true;
            }
        }
    }
    StreamRun {
        ttft: ttft.unwrap_or_default(),
        gaps,
        ok: ended && n == events as usize,
    }
}

struct Summary {
    ttft_p50: f64,
    ttft_p99: f64,
    gap_p99: f64,
    gap_max: f64,
    ok: usize,
    total: usize,
}

fn summarize(runs: &[StreamRun]) -> Summary {
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let mut ttft: Vec<f64> = runs.iter().filter(|r| r.ok).map(|r| ms(&r.ttft)).collect();
    let mut gaps: Vec<f64> = runs.iter().flat_map(|r| r.gaps.iter().map(ms)).collect();
    Summary {
        ttft_p50: percentile(&mut ttft, 50.0),
        ttft_p99: percentile(&mut ttft, 99.0),
        gap_p99: percentile(&mut gaps, 99.0),
        gap_max: gaps.iter().copied().fold(0.0, f64::max),
        ok: runs.iter().filter(|r| r.ok).count(),
        total: runs.len(),
    }
}

/// Sequential streams (concurrency 1), alternating direct and gateway so both see the same machine.
async fn latency(p: &Procs, streams: usize) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let (mut direct, mut via) = (Vec::new(), Vec::new());
    for _ in 0..streams {
        direct.push(one_stream(&http, &p.sim_url, &p.direct_auth, 20, 5).await);
        via.push(one_stream(&http, &p.gw_url, &p.gw_auth, 20, 5).await);
    }
    let (d, g) = (summarize(&direct), summarize(&via));
    println!("\n## Latency at concurrency 1 ({streams} streams each, 20 events 5 ms apart)\n");
    println!("| path | ok | TTFT p50 ms | TTFT p99 ms | gap p99 ms | gap max ms |");
    println!("|---|---|---|---|---|---|");
    for (name, s) in [("direct", &d), ("gateway", &g)] {
        println!(
            "| {name} | {}/{} | {:.3} | {:.3} | {:.3} | {:.3} |",
            s.ok, s.total, s.ttft_p50, s.ttft_p99, s.gap_p99, s.gap_max
        );
    }
    println!(
        "\nAdded by the gateway: TTFT p50 {:+.3} ms, TTFT p99 {:+.3} ms, inter-event gap p99 {:+.1} µs",
        g.ttft_p50 - d.ttft_p50,
        g.ttft_p99 - d.ttft_p99,
        (g.gap_p99 - d.gap_p99) * 1000.0
    );
}

/// `n` streams open at once (opened at `ramp` per second), each 20 events 500 ms apart.
async fn capacity(p: &Procs, n: usize, ramp: usize, via_gateway: bool) -> (Summary, u64) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let (base, auth) = if via_gateway {
        (&p.gw_url, &p.gw_auth)
    } else {
        (&p.sim_url, &p.direct_auth)
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = p.rss_sampler(stop.clone());
    let mut tasks = Vec::with_capacity(n);
    let tick = Duration::from_secs_f64(1.0 / ramp as f64);
    for _ in 0..n {
        let (http, base, auth) = (http.clone(), base.clone(), auth.clone());
        tasks.push(tokio::spawn(async move {
            one_stream(&http, &base, &auth, 20, 500).await
        }));
        tokio::time::sleep(tick).await;
    }
    let mut runs = Vec::with_capacity(n);
    for t in tasks {
        runs.push(t.await.unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    (summarize(&runs), sampler.await.unwrap())
}

#[tokio::main]
async fn main() {
    let latency_streams: usize = arg("--latency-streams")
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let levels: Vec<usize> = arg("--levels")
        .unwrap_or_else(|| "1000,5000".into())
        .split(',')
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    let p = Procs::start().await;
    println!(
        "# dify-gateway streaming benchmark\n\nGateway pid {}, simulator pid {}.",
        p.gw_pid(),
        p.sim_pid()
    );
    latency(&p, latency_streams).await;
    println!("\n## Concurrent streams (20 events 500 ms apart, opened at 1,000/s)\n");
    println!(
        "| streams | path | ok | TTFT p50 ms | TTFT p99 ms | gap p99 ms | gap max ms | stall-free | gateway peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    drop(p);
    for n in levels {
        // Fresh processes per level: RSS is the level's own, not what glibc kept from the last one.
        let p = Procs::start().await;
        for via in [false, true] {
            let (s, peak) = capacity(&p, n, 1000, via).await;
            let stall_free = s.ok == s.total && s.gap_max < 600.0;
            let rss = if via {
                format!("{:.0}", peak as f64 / 1024.0)
            } else {
                "–".into()
            };
            println!(
                "| {n} | {} | {}/{} | {:.2} | {:.2} | {:.1} | {:.1} | {} | {rss} |",
                if via { "gateway" } else { "direct" },
                s.ok,
                s.total,
                s.ttft_p50,
                s.ttft_p99,
                s.gap_p99,
                s.gap_max,
                if stall_free { "yes" } else { "no" },
            );
        }
    }
}
