//! A loopback "cluster": the release binary as two gateway replicas sharing one Redis, in front of
//! three simulator processes as Dify API replicas. Under steady traffic (blocking completions,
//! streams and cached reads, from clients that go to the other gateway when one refuses the
//! connection, and leave a gateway whose `/readyz` fails, as a load balancer does), one Dify replica
//! is killed (SIGKILL) and then one gateway is rolled (SIGTERM, with `server.shutdown_delay`).
//! Counts what the clients saw; the figures go to docs/benchmarks.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use futures_util::StreamExt;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// What the clients saw.
#[derive(Default)]
struct Seen {
    blocking_ok: AtomicUsize,
    blocking_failed: AtomicUsize,
    reads_ok: AtomicUsize,
    reads_failed: AtomicUsize,
    streams_ended: AtomicUsize,
    streams_error_event: AtomicUsize,
    streams_cut: AtomicUsize,
    refused_then_other: AtomicUsize,
    failures: parking_lot::Mutex<Vec<String>>,
    /// Gateways the balancer took out (their `/readyz` failed).
    out: [AtomicBool; 2],
}

impl Seen {
    /// Counts `r` as ok (200) or failed, keeping what a failure was.
    fn count(&self, r: &reqwest::Result<reqwest::Response>, ok: &AtomicUsize, failed: &AtomicUsize) {
        match r {
            Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
            other => {
                let what = match other {
                    Ok(r) => format!("status {}", r.status()),
                    Err(e) => format!("error {e:?}"),
                };
                self.failures.lock().push(what);
                failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// Sends `build(gateway)` to the first gateway (the other one once the balancer took the first
/// out), and to the other one when the first refuses the connection (it is gone).
async fn send(
    gws: &[String; 2],
    first: usize,
    seen: &Seen,
    build: impl Fn(&str) -> reqwest::RequestBuilder,
) -> reqwest::Result<reqwest::Response> {
    let first = if seen.out[first].load(Ordering::Relaxed) {
        1 - first
    } else {
        first
    };
    match build(&gws[first]).send().await {
        Err(e) if e.is_connect() => {
            seen.refused_then_other.fetch_add(1, Ordering::Relaxed);
            build(&gws[1 - first]).send().await
        }
        other => other,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dify_replica_killed_and_a_gateway_rolled_under_traffic() {
    let _bound = bound(120);
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let redis = Redis::start().await;
    let mut sims = Vec::new();
    for _ in 0..3 {
        sims.push(SimProcess::start(&[]).await);
    }
    let urls: Vec<String> = sims.iter().map(|s| format!("\"{}\"", s.base_url())).collect();
    let setup = Setup {
        upstream_extra: "health_check_interval = \"500ms\"".into(),
        redis_extra: format!("url = \"{}\"", redis.url()),
        grace_period: "10s".into(),
        server_extra: "shutdown_delay = \"1s\"\n".into(),
        ..Setup::default()
    };
    let toml = config_toml(&sims[0].base_url(), &setup).replace(
        &format!("url = \"{}\"", sims[0].base_url()),
        &format!("urls = [{}]", urls.join(", ")),
    );
    let bin = newest_bin("dify-gateway");
    let mut gws = Vec::new();
    for _ in 0..2 {
        gws.push(Gateway::start_bin(&bin, &toml, "/readyz", &[]).await);
    }
    let origins = [gws[0].url(""), gws[1].url("")];
    // A new connection per request: a client never holds a pooled connection to a gone gateway.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (seen, stop) = (Arc::new(Seen::default()), Arc::new(AtomicBool::new(false)));
    // The load balancer: polls each gateway's readiness, as Kubernetes or nginx health checks do.
    let balancer = {
        let (seen, stop, http) = (seen.clone(), stop.clone(), http.clone());
        let probes = [gws[0].admin_url("/readyz"), gws[1].admin_url("/readyz")];
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                for (i, probe) in probes.iter().enumerate() {
                    let ok = matches!(http.get(probe).send().await, Ok(r) if r.status() == 200);
                    seen.out[i].store(!ok, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let auth = bearer(&token("acme", None));
    let mut workers = Vec::new();
    for w in 0..12usize {
        let (http, seen, stop, auth, origins) = (
            http.clone(),
            seen.clone(),
            stop.clone(),
            auth.clone(),
            origins.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let first = i % 2;
                match w % 3 {
                    // Blocking completions.
                    0 => {
                        let r = send(&origins, first, &seen, |o| {
                            http.post(format!("{o}/v1/completion-messages"))
                                .header("authorization", &auth)
                                .json(&json!({"inputs": {"topic": "tea"}, "response_mode": "blocking", "user": "bob"}))
                        })
                        .await;
                        seen.count(&r, &seen.blocking_ok, &seen.blocking_failed);
                    }
                    // Streams of about a second.
                    1 => {
                        let r = send(&origins, first, &seen, |o| {
                            http.post(format!("{o}/v1/completion-messages"))
                                .header("authorization", &auth)
                                .header("x-sim-events", "20")
                                .header("x-sim-event-interval-ms", "50")
                                .json(&json!({"inputs": {"topic": "tea"}, "response_mode": "streaming", "user": "bob"}))
                        })
                        .await;
                        let Ok(r) = r.map_err(|_| seen.streams_cut.fetch_add(1, Ordering::Relaxed)) else {
                            continue;
                        };
                        let mut body = r.bytes_stream();
                        let mut text = String::new();
                        let mut broke = false;
                        while let Some(c) = body.next().await {
                            match c {
                                Ok(c) => text.push_str(&String::from_utf8_lossy(&c)),
                                Err(_) => broke = true,
                            }
                        }
                        let counter = if text.contains("\"event\":\"message_end\"") || text.contains("\"event\": \"message_end\"") {
                            &seen.streams_ended
                        } else if !broke && (text.contains("\"event\":\"error\"") || text.contains("\"event\": \"error\"")) {
                            &seen.streams_error_event
                        } else {
                            &seen.streams_cut
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    // Cached reads.
                    _ => {
                        let r = send(&origins, first, &seen, |o| {
                            http.get(format!("{o}/v1/parameters")).header("authorization", &auth)
                        })
                        .await;
                        seen.count(&r, &seen.reads_ok, &seen.reads_failed);
                    }
                }
            }
        }));
    }
    let total = |s: &Seen| s.blocking_ok.load(Ordering::Relaxed) + s.streams_ended.load(Ordering::Relaxed);
    eventually_async(20, "traffic to flow", || async {
        (total(&seen) >= 30).then_some(())
    })
    .await;
    sims[0].kill();
    let at_kill = total(&seen);
    eventually_async(20, "traffic after the kill", || async {
        (total(&seen) >= at_kill + 30).then_some(())
    })
    .await;
    // A rollout: the gateway stops accepting and lets its requests finish.
    gws[0].terminate();
    let at_roll = total(&seen);
    eventually_async(20, "traffic after the roll", || async {
        (total(&seen) >= at_roll + 30).then_some(())
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    balancer.await.unwrap();
    let exit = tokio::task::spawn_blocking(move || gws[0].child.wait())
        .await
        .unwrap()
        .unwrap();
    let n = |a: &AtomicUsize| a.load(Ordering::Relaxed);
    println!(
        "cluster: blocking ok {} failed {}; reads ok {} failed {}; streams ended {} error-event {} cut {}; refused then other gateway {}; rolled gateway exit {:?}",
        n(&seen.blocking_ok),
        n(&seen.blocking_failed),
        n(&seen.reads_ok),
        n(&seen.reads_failed),
        n(&seen.streams_ended),
        n(&seen.streams_error_event),
        n(&seen.streams_cut),
        n(&seen.refused_then_other),
        exit.code(),
    );
    println!("failures: {:?}", seen.failures.lock());
    assert_eq!(
        exit.code(),
        Some(0),
        "the rolled gateway did not drain and exit cleanly"
    );
    assert_eq!(
        n(&seen.reads_failed),
        0,
        "cached reads were lost: {:?}",
        seen.failures.lock()
    );
    assert_eq!(n(&seen.streams_cut), 0, "a stream broke off without an event");
    // A blocking completion running on the killed replica at that moment cannot be retried (it may
    // have run); at most the 4 blocking clients' requests in flight then are lost, none after.
    assert!(
        n(&seen.blocking_failed) <= 4,
        "{} blocking completions lost",
        n(&seen.blocking_failed)
    );
    // Streams on the killed replica end with Dify's `error` event, at most one per stream client.
    assert!(n(&seen.streams_error_event) <= 4);
}
