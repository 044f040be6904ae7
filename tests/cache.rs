//! The metadata cache with a real `redis-server`: one upstream request for repeated and concurrent
//! reads, a second replica served from Redis, invalidation across replicas, Redis dying mid-test,
//! Dify dying (stale served), errors never cached, and the RFC 9211 / ETag headers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::time::{Duration, Instant};

const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

fn cache_setup(extra: &str) -> Setup {
    Setup {
        extra: format!("[admin]\ntoken = \"{ADMIN_TOKEN}\"\n\n[cache]\n{extra}\n"),
        ..Setup::default()
    }
}

async fn get(env_http: &reqwest::Client, url: &str, tok: &str) -> reqwest::Response {
    env_http
        .get(url)
        .header("authorization", bearer(tok))
        .send()
        .await
        .unwrap()
}

fn status_of(r: &reqwest::Response) -> String {
    r.headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

fn fetches(env: &Env, path: &str) -> usize {
    env.sim.requests().iter().filter(|r| r.path == path).count()
}

#[tokio::test]
async fn repeated_reads_make_one_upstream_request_with_cache_headers() {
    let _bound = bound(120);
    let env = Env::with(cache_setup("")).await;
    let tok = token("acme", None);
    let direct = client()
        .get(format!("{}/v1/parameters", env.sim.base_url()))
        .header("authorization", bearer(KEY_ACME_WRITER))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    env.sim.clear();
    let first = get(&env.http, &env.url("/v1/parameters?user=alice"), &tok).await;
    assert_eq!(
        status_of(&first),
        "dify-gateway; fwd=miss; fwd-status=200; stored"
    );
    assert!(
        first.headers().get("etag").is_none(),
        "a forwarded answer has no gateway ETag"
    );
    assert_eq!(
        first.bytes().await.unwrap(),
        direct,
        "first answer differs from Dify's"
    );
    let mut etag = String::new();
    for user in ["alice", "bob", ""] {
        let r = get(&env.http, &env.url(&format!("/v1/parameters?user={user}")), &tok).await;
        assert_eq!(r.status(), 200);
        assert!(
            status_of(&r).starts_with("dify-gateway; hit; ttl="),
            "{}",
            status_of(&r)
        );
        assert!(r.headers()["age"].to_str().unwrap().parse::<u64>().is_ok());
        etag = r.headers()["etag"].to_str().unwrap().to_string();
        assert_eq!(
            r.bytes().await.unwrap(),
            direct,
            "cached body is not byte-identical"
        );
    }
    assert_eq!(fetches(&env, "/v1/parameters"), 1);
    let r = env
        .http
        .get(env.url("/v1/parameters"))
        .header("authorization", bearer(&tok))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    assert!(r.bytes().await.unwrap().is_empty());
    // Browsers get the CORS headers Dify would have sent.
    let r = env
        .http
        .get(env.url("/v1/parameters"))
        .header("authorization", bearer(&tok))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example");
    assert_eq!(r.headers()["vary"], "Origin");
    // Another app of the same tenant has its own entry.
    get(
        &env.http,
        &env.url("/v1/parameters"),
        &token("acme", Some("editor")),
    )
    .await;
    assert_eq!(fetches(&env, "/v1/parameters"), 2);
    env.gw
        .metrics_contain(
            "dify_gateway_cache_lookups_total{endpoint=\"parameters\",outcome=\"hit\",tier=\"l1\"} 5",
        )
        .await;
}

#[tokio::test]
async fn fifty_concurrent_misses_make_one_request() {
    let _bound = bound(120);
    let mut setup = cache_setup("");
    setup.sim.metadata_delay = Duration::from_millis(300);
    let env = Env::with(setup).await;
    let tok = token("acme", None);
    let url = env.url("/v1/info");
    let calls = (0..50).map(|_| get(&env.http, &url, &tok));
    let answers = futures_util::future::join_all(calls).await;
    assert!(answers.iter().all(|r| r.status() == 200));
    assert_eq!(
        fetches(&env, "/v1/info"),
        1,
        "concurrent misses were not coalesced"
    );
}

#[tokio::test]
async fn a_second_replica_reads_from_redis_and_invalidation_empties_both() {
    let _bound = bound(120);
    let redis = Redis::start().await;
    let extra = format!("redis_url = \"{}\"", redis.url());
    let env = Env::with(cache_setup(&extra)).await;
    // The same config on other ports: a second replica.
    let gw2 = Gateway::start(&config_toml(&env.sim.base_url(), &cache_setup(&extra))).await;
    let tok = token("acme", None);
    let r = get(&env.http, &env.url("/v1/site"), &tok).await;
    assert!(status_of(&r).contains("fwd=miss"));
    let r = get(&env.http, &gw2.url("/v1/site"), &tok).await;
    assert!(
        status_of(&r).starts_with("dify-gateway; hit"),
        "second replica missed: {}",
        status_of(&r)
    );
    assert_eq!(fetches(&env, "/v1/site"), 1);
    assert!(
        redis.command("DBSIZE").ends_with('1'),
        "{}",
        redis.command("DBSIZE")
    );

    // Only with the admin token.
    let inval = |token: &str| {
        env.http
            .post(env.gw.admin_url("/admin/cache/invalidate"))
            .header("authorization", bearer(token))
            .json(&serde_json::json!({"tenant": "acme"}))
            .send()
    };
    assert_eq!(inval("wrong-token-wrong-token").await.unwrap().status(), 401);
    assert_eq!(fetches(&env, "/v1/site"), 1);
    assert_eq!(inval(ADMIN_TOKEN).await.unwrap().status(), 200);
    assert!(redis.command("DBSIZE").ends_with('0'));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = get(&env.http, &gw2.url("/v1/site"), &tok).await;
        if status_of(&r).contains("fwd=miss") {
            break;
        }
        assert!(Instant::now() < deadline, "the second replica kept its entry");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = get(&env.http, &env.url("/v1/site"), &tok).await;
    assert!(
        status_of(&r).starts_with("dify-gateway; hit"),
        "refilled by gw2 through Redis"
    );
    let unknown = env
        .http
        .post(env.gw.admin_url("/admin/cache/invalidate"))
        .header("authorization", bearer(ADMIN_TOKEN))
        .json(&serde_json::json!({"tenant": "nobody"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.json::<serde_json::Value>().await.unwrap()["code"],
        "not_found"
    );
}

#[tokio::test]
async fn redis_dying_fails_no_request() {
    let _bound = bound(120);
    let mut redis = Redis::start().await;
    let env = Env::with(cache_setup(&format!(
        "redis_url = \"{}\"\nredis_timeout = \"50ms\"",
        redis.url()
    )))
    .await;
    let tok = token("acme", None);
    assert_eq!(get(&env.http, &env.url("/v1/meta"), &tok).await.status(), 200);
    env.gw.metrics_contain("dify_gateway_redis_up 1").await;
    redis.kill();
    for path in [
        "/v1/meta",
        "/v1/info",
        "/v1/parameters",
        "/v1/site",
        "/v1/app/feedbacks",
    ] {
        for _ in 0..3 {
            let t = Instant::now();
            let r = get(&env.http, &env.url(path), &tok).await;
            assert_eq!(r.status(), 200, "{path}");
            assert!(
                t.elapsed() < Duration::from_secs(2),
                "{path} waited {:?} on a dead Redis",
                t.elapsed()
            );
        }
    }
    let m = env.gw.metrics_contain("dify_gateway_redis_up 0").await;
    assert!(
        metric_sum(&m, "dify_gateway_redis_errors_total", &[]) > 0.0,
        "{m}"
    );
    // An invalidation Redis cannot confirm is reported, not claimed.
    let r = env
        .http
        .post(env.gw.admin_url("/admin/cache/invalidate"))
        .header("authorization", bearer(ADMIN_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
}

#[tokio::test]
async fn the_gateway_starts_and_serves_with_redis_down() {
    let _bound = bound(120);
    let dead = format!("redis://127.0.0.1:{}/", free_port());
    let env = Env::with(cache_setup(&format!("redis_url = \"{dead}\""))).await;
    let tok = token("acme", None);
    for _ in 0..3 {
        assert_eq!(get(&env.http, &env.url("/v1/info"), &tok).await.status(), 200);
    }
    assert_eq!(fetches(&env, "/v1/info"), 1, "the in-process tier still works");
}

#[tokio::test]
async fn stale_entries_are_served_while_refreshing_and_when_dify_fails() {
    let _bound = bound(120);
    let env = Env::with(cache_setup(
        "ttl = \"300ms\"\nstale_while_revalidate = \"10s\"\nmax_stale = \"1h\"",
    ))
    .await;
    let tok = token("acme", None);
    get(&env.http, &env.url("/v1/info"), &tok).await;
    let r = eventually_async(&env, &tok, "/v1/info", "stale-while-revalidate").await;
    assert_eq!(r.status(), 200);
    eventually(5, "the background refresh", || {
        (fetches(&env, "/v1/info") == 2).then_some(())
    })
    .await;

    let env = Env::with(cache_setup(
        "ttl = \"300ms\"\nstale_while_revalidate = \"0s\"\nmax_stale = \"1h\"",
    ))
    .await;
    let body = get(&env.http, &env.url("/v1/site"), &tok)
        .await
        .bytes()
        .await
        .unwrap();
    env.sim.shutdown();
    let r = eventually_async(&env, &tok, "/v1/site", "stale-if-error").await;
    assert!(
        status_of(&r).starts_with("dify-gateway; fwd=stale"),
        "{}",
        status_of(&r)
    );
    assert_eq!(r.bytes().await.unwrap(), body);
    // Not cached at all: Dify's absence is a 502.
    let r = get(&env.http, &env.url("/v1/meta"), &tok).await;
    assert_envelope(r, 502, "bad_gateway").await;
}

/// GETs `path` until its `Cache-Status` mentions `detail`.
async fn eventually_async(env: &Env, tok: &str, path: &str, detail: &str) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = get(&env.http, &env.url(path), tok).await;
        if status_of(&r).contains(detail) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{path} never served {detail}: {}",
            status_of(&r)
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn error_answers_are_never_cached() {
    let _bound = bound(120);
    let mut setup = cache_setup("");
    setup.sim.apps.retain(|a| a.key != KEY_GLOBEX);
    let env = Env::with(setup).await;
    let tok = token("globex", None);
    for _ in 0..3 {
        let r = get(&env.http, &env.url("/v1/parameters"), &tok).await;
        assert_eq!(r.status(), 401);
        assert_eq!(status_of(&r), "dify-gateway; fwd=miss; fwd-status=401");
    }
    assert_eq!(fetches(&env, "/v1/parameters"), 3);
}

#[tokio::test]
async fn a_stop_reaching_another_replica_is_forwarded_through_redis() {
    let _bound = bound(120);
    let redis = Redis::start().await;
    let extra = format!("redis_url = \"{}\"", redis.url());
    let env = Env::with(cache_setup(&extra)).await;
    let gw2 = Gateway::start(&config_toml(&env.sim.base_url(), &cache_setup(&extra))).await;
    let tok = token("acme", None);
    let resp = env
        .http
        .post(env.url("/v1/completion-messages"))
        .header("authorization", bearer(&tok))
        .header("x-sim-events", "200")
        .header("x-sim-event-interval-ms", "50")
        .json(&serde_json::json!({"inputs": {"topic": "t"}, "response_mode": "streaming", "user": "bob"}))
        .send()
        .await
        .unwrap();
    let mut body = futures_util::StreamExt::boxed(resp.bytes_stream());
    let mut seen = String::new();
    while !seen.contains("\n\n") {
        seen.push_str(&String::from_utf8_lossy(
            &futures_util::StreamExt::next(&mut body).await.unwrap().unwrap(),
        ));
    }
    let task = data_events(&seen)[0]["task_id"].as_str().unwrap().to_string();
    // The owner record travels through Redis: wait until it is there, then stop on the other replica.
    eventually(5, "the task owner in Redis", || {
        redis
            .command(&format!("EXISTS dify-gw:own:v1:task:{task}"))
            .ends_with('1')
            .then_some(())
    })
    .await;
    let url = gw2.url(&format!("/v1/completion-messages/{task}/stop"));
    let r = env
        .http
        .post(url)
        .header("authorization", bearer(&tok))
        .json(&serde_json::json!({"user": "bob"}))
        .send();
    assert_eq!(r.await.unwrap().status(), 200);
    let calls = env.sim.stop_calls();
    assert_eq!(calls.len(), 1, "the stop was not forwarded by the other replica");
    assert_eq!(
        (calls[0].key.as_str(), calls[0].user.as_str(), calls[0].applied),
        (KEY_ACME_WRITER, "acme:bob", true)
    );
}

#[tokio::test]
async fn a_redis_that_never_answers_costs_each_call_its_timeout_then_the_breaker_skips_it() {
    let _bound = bound(120);
    let redis = Redis::start().await;
    let env = Env::with(cache_setup(&format!(
        "redis_url = \"{}\"\nredis_timeout = \"50ms\"",
        redis.url()
    )))
    .await;
    let tok = token("acme", None);
    let stop = |task: String| {
        env.http
            .post(env.url(&format!("/v1/completion-messages/{task}/stop")))
            .header("authorization", bearer(&tok))
            .json(&serde_json::json!({"user": "bob"}))
            .send()
    };
    assert_eq!(stop("warm-up".into()).await.unwrap().status(), 200);
    env.gw.metrics_contain("dify_gateway_redis_up 1").await;
    // Accepts connections, never answers: every owner lookup (an unknown task each time) waits for
    // the timeout, three in a row open the circuit, and then Redis is skipped.
    redis.pause();
    for i in 0..8 {
        let t = Instant::now();
        assert_eq!(stop(format!("task-{i}")).await.unwrap().status(), 200);
        assert!(
            t.elapsed() < Duration::from_millis(800),
            "call {i} waited {:?}",
            t.elapsed()
        );
    }
    let m = env.gw.metrics_contain("dify_gateway_redis_up 0").await;
    let errors = |kind: &str| {
        metric_sum(
            &m,
            "dify_gateway_redis_errors_total",
            &[&format!("kind=\"{kind}\"")],
        )
    };
    assert!(errors("timeout") >= 3.0, "{m}");
    assert!(errors("circuit_open") >= 1.0, "{m}");
    // Back: after the breaker's 2 s a probe gets through and closes it.
    redis.resume();
    let resumed = Instant::now();
    let mut i = 100;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !env.gw.metrics().await.contains("dify_gateway_redis_up 1") {
        assert!(Instant::now() < deadline, "the breaker never closed again");
        assert_eq!(stop(format!("task-{i}")).await.unwrap().status(), 200);
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        resumed.elapsed() >= Duration::from_millis(1500),
        "the breaker closed without a cool-down"
    );
}

#[tokio::test]
async fn a_changed_dify_key_gets_a_new_cache_space() {
    let _bound = bound(120);
    let mut setup = cache_setup("");
    setup
        .sim
        .apps
        .push(dify_sim::SimApp::new("app-acme-writer-rotated", "Rotated writer"));
    let env = Env::with(setup).await;
    let tok = token("acme", None);
    let name = |r: reqwest::Response| async { r.json::<serde_json::Value>().await.unwrap()["name"].clone() };
    assert_eq!(
        name(get(&env.http, &env.url("/v1/info"), &tok).await).await,
        "Acme writer"
    );
    assert_eq!(
        name(get(&env.http, &env.url("/v1/info"), &tok).await).await,
        "Acme writer"
    );
    assert_eq!(fetches(&env, "/v1/info"), 1);
    // The key is rotated in the file and reloaded: the next read is the new app's, from Dify.
    let path = env.gw.dir.path().join("gateway.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let rotated = text.replacen(KEY_ACME_WRITER, "app-acme-writer-rotated", 1);
    std::fs::write(&path, rotated).unwrap();
    let pid = env.gw.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    env.gw
        .metrics_contain("dify_gateway_config_reloads_total{outcome=\"applied\"} 1")
        .await;
    assert_eq!(
        name(get(&env.http, &env.url("/v1/info"), &tok).await).await,
        "Rotated writer"
    );
    assert_eq!(fetches(&env, "/v1/info"), 2);
}
