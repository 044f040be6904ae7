//! A pool of Dify replicas: the least busy healthy replica takes each request, a replica that fails
//! its checks or refuses connections leaves the pool and comes back when it passes, a connection
//! refused before anything reached Dify is tried once elsewhere and nothing is retried after, a full
//! replica makes requests wait (then 503), and with every replica down the answer is 502 at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use dify_sim::Simulator;
use serde_json::json;
use std::time::{Duration, Instant};

/// `n` simulators and a gateway over all of them (`extra` goes into `[upstream]`).
async fn pool(n: usize, upstream_extra: &str) -> (Vec<Simulator>, Gateway) {
    let setup = Setup::default();
    let mut sims = Vec::new();
    for _ in 0..n {
        sims.push(
            Simulator::start("127.0.0.1:0".parse().unwrap(), setup.sim.clone())
                .await
                .unwrap(),
        );
    }
    let urls: Vec<String> = sims.iter().map(|s| format!("\"{}\"", s.base_url())).collect();
    let mut toml = config_toml(
        &sims[0].base_url(),
        &Setup {
            upstream_extra: format!("health_check_interval = \"200ms\"\n{upstream_extra}"),
            ..Setup::default()
        },
    )
    .replace(
        &format!("url = \"{}\"", sims[0].base_url()),
        &format!("urls = [{}]", urls.join(", ")),
    );
    if upstream_extra.contains("connect_timeout") {
        toml = toml.replacen("connect_timeout = \"2s\"\n", "", 1);
    }
    (sims, Gateway::start(&toml).await)
}

fn stream(gw: &Gateway, events: u32, interval_ms: u32) -> reqwest::RequestBuilder {
    client()
        .post(gw.url("/v1/completion-messages"))
        .header("authorization", bearer(&token("acme", None)))
        .header("x-sim-events", events.to_string())
        .header("x-sim-event-interval-ms", interval_ms.to_string())
        .json(&json!({"inputs": {"topic": "tea"}, "response_mode": "streaming", "user": "bob"}))
}

async fn blocking(gw: &Gateway) -> u16 {
    client()
        .post(gw.url("/v1/completion-messages"))
        .header("authorization", bearer(&token("acme", None)))
        .header("x-sim-events", "2")
        .header("x-sim-event-interval-ms", "0")
        .json(&json!({"inputs": {"topic": "tea"}, "response_mode": "blocking", "user": "bob"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn completions_on(sim: &Simulator) -> usize {
    sim.requests()
        .iter()
        .filter(|r| r.path == "/v1/completion-messages")
        .count()
}

#[tokio::test]
async fn the_least_busy_replica_takes_each_request() {
    let _bound = bound(60);
    let (sims, gw) = pool(3, "").await;
    // Three long streams: one per replica (each new one goes where fewest are in flight).
    let held: Vec<reqwest::Response> =
        futures_util::future::join_all((0..3).map(|_| stream(&gw, 30, 100).send()))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    for s in &sims {
        assert_eq!(completions_on(s), 1, "streams were not spread");
    }
    let m = gw.metrics().await;
    assert_eq!(metric_sum(&m, "dify_gateway_upstream_inflight", &[]), 3.0, "{m}");
    drop(held);
    gw.metrics_contain("dify_gateway_upstream_inflight{").await;
    eventually_async(10, "the dropped streams to end", || async {
        (metric_sum(&gw.metrics().await, "dify_gateway_upstream_inflight", &[]) == 0.0).then_some(())
    })
    .await;
    // Sequential requests go round the idle replicas.
    for _ in 0..6 {
        assert_eq!(blocking(&gw).await, 200);
    }
    for s in &sims {
        assert_eq!(completions_on(s), 3, "round robin among equals");
    }
    let label = sims[0].addr().to_string();
    let m = gw
        .metrics_contain(&format!(
            "dify_gateway_upstream_requests_total{{status_class=\"2xx\",upstream=\"{label}\"}}"
        ))
        .await;
    assert!(metric_sum(&m, "dify_gateway_upstream_healthy", &[]) == 3.0);
}

#[tokio::test]
async fn a_replica_that_fails_leaves_the_pool_and_comes_back() {
    let _bound = bound(60);
    let (mut sims, gw) = pool(2, "").await;
    // Failing its health check (it still accepts connections): no traffic goes there.
    sims[0].set_healthy(false);
    let label = sims[0].addr().to_string();
    gw.metrics_contain(&format!(
        "dify_gateway_upstream_healthy{{upstream=\"{label}\"}} 0"
    ))
    .await;
    let before = completions_on(&sims[0]);
    for _ in 0..4 {
        assert_eq!(blocking(&gw).await, 200);
    }
    assert_eq!(
        completions_on(&sims[0]),
        before,
        "an unhealthy replica got traffic"
    );
    sims[0].set_healthy(true);
    gw.metrics_contain(&format!(
        "dify_gateway_upstream_healthy{{upstream=\"{label}\"}} 1"
    ))
    .await;
    // Killed: requests keep succeeding (a refused connection is tried on the other replica).
    let addr = sims[0].addr();
    sims[0].shutdown();
    let mut failed = 0;
    for _ in 0..10 {
        failed += usize::from(blocking(&gw).await != 200);
    }
    assert_eq!(failed, 0, "requests lost to a dead replica");
    assert_eq!(
        client()
            .get(gw.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "one replica is enough"
    );
    // Back on the same address: it passes its check and takes traffic again.
    let again = Simulator::start(addr, Setup::default().sim).await.unwrap();
    gw.metrics_contain(&format!(
        "dify_gateway_upstream_healthy{{upstream=\"{label}\"}} 1"
    ))
    .await;
    eventually_async(10, "traffic on the returned replica", || async {
        blocking(&gw).await;
        (completions_on(&again) > 0).then_some(())
    })
    .await;
    sims.push(again);
}

#[tokio::test]
async fn nothing_is_retried_once_bytes_reached_dify() {
    let _bound = bound(60);
    // A "replica" that reads the request and hangs up without answering.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let broken = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let s = seen.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        while let Ok((mut c, _)) = listener.accept().await {
            s.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = vec![0u8; 65536];
            let _ = c.read(&mut buf).await;
            drop(c);
        }
    });
    let setup = Setup::default();
    let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), setup.sim.clone())
        .await
        .unwrap();
    let toml = config_toml(
        &sim.base_url(),
        &Setup {
            upstream_extra: "health_check_path = \"\"".into(),
            ..Setup::default()
        },
    )
    .replace(
        &format!("url = \"{}\"", sim.base_url()),
        &format!("urls = [\"http://{broken}\", \"{}\"]", sim.base_url()),
    );
    let gw = Gateway::start_probing(&toml, "/healthz").await;
    // Each request goes to the broken replica first (or to the healthy one, which answers): a
    // completion the broken one read is never tried on the healthy one.
    let mut answers = Vec::new();
    for _ in 0..6 {
        answers.push(blocking(&gw).await);
    }
    let reached_broken = seen.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        reached_broken >= 1,
        "the broken replica was never chosen: {answers:?}"
    );
    assert_eq!(
        answers.iter().filter(|s| **s == 502).count(),
        reached_broken,
        "a completion that reached Dify was sent again: {answers:?}"
    );
    assert_eq!(completions_on(&sim), 6 - reached_broken);
}

#[tokio::test]
async fn a_full_replica_makes_requests_wait_then_503() {
    let _bound = bound(60);
    let (sims, gw) = pool(1, "max_inflight_per_replica = 1\nconnect_timeout = \"1s\"").await;
    let held = stream(&gw, 40, 100).send().await.unwrap();
    assert_eq!(held.status(), 200);
    let start = Instant::now();
    let r = client()
        .post(gw.url("/v1/completion-messages"))
        .header("authorization", bearer(&token("acme", None)))
        .json(&json!({"inputs": {"topic": "tea"}, "response_mode": "blocking", "user": "bob"}))
        .send();
    let waited = completion_or_answer(r).await;
    assert_eq!(waited.0, 503, "{}", waited.1);
    assert!(waited.1.contains("service_unavailable"), "{}", waited.1);
    assert!(start.elapsed() >= Duration::from_millis(900), "did not wait");
    // Once the stream ends, the next request gets the replica.
    drop(held);
    eventually_async(10, "the replica freed", || async {
        (blocking(&gw).await == 200).then_some(())
    })
    .await;
    drop(sims);
}

async fn completion_or_answer(
    r: impl std::future::Future<Output = reqwest::Result<reqwest::Response>>,
) -> (u16, String) {
    let r = r.await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn every_replica_down_is_502_at_once_and_metadata_stays_served() {
    let _bound = bound(60);
    let (sims, gw) = pool(2, "connect_timeout = \"3s\"").await;
    let auth = bearer(&token("acme", None));
    let meta = || {
        client()
            .get(gw.url("/v1/parameters"))
            .header("authorization", auth.clone())
            .send()
    };
    assert_eq!(meta().await.unwrap().status(), 200, "cached while up");
    for s in &sims {
        s.shutdown();
    }
    gw.metrics_contain("dify_gateway_upstream_healthy{").await;
    eventually_async(10, "/readyz to say not ready", || async {
        (client()
            .get(gw.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            == 503)
            .then_some(())
    })
    .await;
    let start = Instant::now();
    assert_eq!(blocking(&gw).await, 502);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "waited {:?} for dead replicas",
        start.elapsed()
    );
    let stale = meta().await.unwrap();
    assert_eq!(stale.status(), 200, "cached metadata is still served");
    assert_eq!(
        gw.log().matches("fails its health check").count(),
        2,
        "one line per change"
    );
}
