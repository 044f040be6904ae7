//! Per-tenant limits: each refuses at its point and not before (in process, and through a real
//! Redis shared by two replicas), with Dify's envelope, `Retry-After` and the rate-limit headers;
//! reservations give way to Dify's reported usage; streams already admitted are never cut; each
//! Redis outage policy does what it says with Redis killed mid-run; the usage endpoint and the
//! metrics agree with what was sent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::store::*;
use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};

const KEY_INITECH: &str = "app-initech-own-key";

/// A gateway with a store (tenants made through the API), on `redis` when given, with `extra`
/// config (a `[limits]` section).
async fn gateway(redis: Option<&Redis>, extra: &str) -> (Env, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (Env::with(setup(dir.path(), redis, extra)).await, dir)
}

/// A gateway's setup with its store in `dir` (replicas share it), on `redis` when given, with
/// `extra` config, and Initech's own Dify app.
fn setup(dir: &std::path::Path, redis: Option<&Redis>, extra: &str) -> Setup {
    let mut setup = Setup {
        extra: format!("{}\n{extra}", store_toml(&sqlite_url(dir))),
        redis_extra: redis
            .map(|r| format!("url = \"{}\"", r.url()))
            .unwrap_or_default(),
        ..Setup::default()
    };
    setup
        .sim
        .apps
        .push(dify_sim::SimApp::new(KEY_INITECH, "Initech writer"));
    setup
}

/// Tenant `id` with `limits`, its app `writer` as `app` says, and a gateway API key for it.
async fn tenant(env: &Env, id: &str, limits: Value, app: Value) -> String {
    let a = Admin::of(&env.gw);
    let (s, v) = a
        .post("/admin/tenants", json!({"id": id, "limits": limits}))
        .await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = a.put(&format!("/admin/tenants/{id}/apps/writer"), app).await;
    assert!(s == 201, "{v}");
    let (s, k) = a.post(&format!("/admin/tenants/{id}/api-keys"), json!({})).await;
    assert_eq!(s, 201, "{k}");
    k["key"].as_str().unwrap().to_string()
}

fn completion(env: &Env, key: &str, streaming: bool) -> reqwest::RequestBuilder {
    let mode = if streaming { "streaming" } else { "blocking" };
    env.http
        .post(env.url("/v1/completion-messages"))
        .header("authorization", bearer(key))
        .json(&json!({"inputs": {"topic": "tea"}, "response_mode": mode, "user": "bob"}))
}

/// A blocking completion: status and, when admitted, Dify's usage.
async fn complete(env: &Env, key: &str) -> (u16, Value) {
    let r = completion(env, key, false).send().await.unwrap();
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (status, body["metadata"]["usage"].clone())
}

async fn get(env: &Env, key: &str) -> reqwest::Response {
    env.http
        .get(env.url("/v1/parameters"))
        .header("authorization", bearer(key))
        .send()
        .await
        .unwrap()
}

/// The usage one blocking completion reports (the simulator's is deterministic).
async fn one_usage(env: &Env) -> (u64, f64) {
    let (s, usage) = complete(env, &token("acme", None)).await;
    assert_eq!(s, 200);
    let tokens = usage["total_tokens"].as_u64().unwrap();
    let price: f64 = usage["total_price"].as_str().unwrap().parse().unwrap();
    (tokens, price)
}

/// The usage one stream of `events` message events reports.
async fn stream_usage(env: &Env, events: u32) -> u64 {
    let r = completion(env, &token("acme", None), true)
        .header("x-sim-events", events.to_string())
        .send()
        .await
        .unwrap();
    let body = r.text().await.unwrap();
    let end = data_events(&body)
        .into_iter()
        .find(|e| e["event"] == "message_end")
        .unwrap();
    end["metadata"]["usage"]["total_tokens"].as_u64().unwrap()
}

async fn assert_limit(resp: reqwest::Response, limit: &str) -> u64 {
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    // The budget and shares are not rates with an integer quota: only rate limits get `RateLimit`.
    let rate = !matches!(limit, "max_share" | "cost_per_month");
    match resp.headers().get("ratelimit") {
        Some(rl) => assert!(
            rate && rl.to_str().unwrap().starts_with(&format!("\"{limit}\";r=0")),
            "{rl:?}"
        ),
        None => assert!(!rate, "no RateLimit header"),
    }
    assert!(!rate || resp.headers().get("ratelimit-policy").is_some());
    let body = assert_envelope(resp, 429, "too_many_requests").await;
    assert!(body["message"].as_str().unwrap().contains(limit), "{body}");
    retry
}

async fn requests_per_minute(redis: Option<&Redis>) {
    let (env, _dir) = gateway(redis, "").await;
    let key = tenant(
        &env,
        "t",
        json!({"requests_per_minute": 5}),
        json!({"api_key": KEY_INITECH}),
    )
    .await;
    for i in 0..5 {
        let r = get(&env, &key).await;
        assert_eq!(r.status(), 200, "request {i}");
        let rl = r.headers()["ratelimit"].to_str().unwrap().to_string();
        assert_eq!(
            rl,
            format!("\"requests_per_minute\";r={};t={}", 4 - i, (i + 1) * 12),
            "request {i}"
        );
    }
    let refused = get(&env, &key).await;
    let retry = assert_limit(refused, "requests_per_minute").await;
    assert!((11..=12).contains(&retry), "{retry}");
    let m = env.gw.metrics_contain("dify_gateway_limit_decisions_total{limit=\"requests_per_minute\",outcome=\"refused\",tenant=\"t\"} 1").await;
    assert_eq!(
        metric_sum(
            &m,
            "dify_gateway_limit_decisions_total",
            &["tenant=\"t\"", "outcome=\"admitted\""]
        ),
        5.0
    );
    let (_, u) = Admin::of(&env.gw).get("/admin/tenants/t/usage").await;
    assert_eq!(u["usage"]["requests_per_minute"], 5, "{u}");
    assert!(env.upstream_count() <= 1, "a refused request reached Dify");
}

#[tokio::test]
async fn requests_per_minute_in_process() {
    let _bound = bound(60);
    requests_per_minute(None).await;
}

#[tokio::test]
async fn requests_per_minute_on_redis() {
    let _bound = bound(60);
    let redis = Redis::start().await;
    requests_per_minute(Some(&redis)).await;
}

/// Completions in flight, and the tokens they reported.
async fn completions(redis: Option<&Redis>) {
    let (env, _dir) = gateway(redis, "").await;
    let per_stream = stream_usage(&env, 20).await;
    // Concurrency 2: two slow streams hold it; a third completion waits, other calls do not.
    let limits = json!({"concurrent_requests": 2, "tokens_per_day": per_stream * 5 / 2});
    let key = tenant(&env, "t", limits, json!({"api_key": KEY_INITECH})).await;
    let slow = |env: &Env, interval: u32| {
        completion(env, &key, true)
            .header("x-sim-events", "20")
            .header("x-sim-event-interval-ms", interval.to_string())
            .send()
    };
    let (one, two) = (slow(&env, 100).await.unwrap(), slow(&env, 100).await.unwrap());
    assert_eq!((one.status().as_u16(), two.status().as_u16()), (200, 200));
    assert_limit(
        completion(&env, &key, false).send().await.unwrap(),
        "concurrent_requests",
    )
    .await;
    assert_eq!(get(&env, &key).await.status(), 200, "not a completion");
    let (_, usage) = Admin::of(&env.gw).get("/admin/tenants/t/usage").await;
    assert_eq!(usage["usage"]["concurrent_requests"], 2, "{usage}");
    // Both streams run to their end, uncut.
    for s in [one, two] {
        let body = s.text().await.unwrap();
        assert!(body.contains("message_end"), "a stream was cut: {body}");
    }
    // 2 of 2.5 streams' tokens used: one more starts (once the leases are released), then none.
    eventually_async(5, "the leases to end", || async {
        let r = slow(&env, 1).await.unwrap();
        (r.status() == 200).then_some(r.text().await.unwrap())
    })
    .await;
    // Its usage counts once the gateway has finished with it (just after the client has the end).
    let a = Admin::of(&env.gw);
    eventually_async(5, "the third stream's usage", || async {
        let (_, u) = a.get("/admin/tenants/t/usage").await;
        (u["usage"]["tokens_per_day"].as_u64() == Some(per_stream * 3)).then_some(())
    })
    .await;
    assert_limit(
        completion(&env, &key, false).send().await.unwrap(),
        "tokens_per_day",
    )
    .await;
    let (_, usage) = Admin::of(&env.gw).get("/admin/tenants/t/usage").await;
    assert_eq!(
        usage["usage"]["tokens_per_day"].as_u64().unwrap(),
        per_stream * 3,
        "{usage}"
    );
    assert_eq!(usage["usage"]["concurrent_requests"], 0);
    let m = env.gw.metrics().await;
    let counted = metric_sum(&m, "dify_gateway_tokens_total", &["tenant=\"t\""]);
    assert_eq!(counted, (per_stream * 3) as f64, "usage and metrics agree");
}

#[tokio::test]
async fn completions_are_held_to_concurrency_and_tokens_in_process() {
    let _bound = bound(60);
    completions(None).await;
}

#[tokio::test]
async fn completions_are_held_to_concurrency_and_tokens_on_redis() {
    let _bound = bound(60);
    let redis = Redis::start().await;
    completions(Some(&redis)).await;
}

#[tokio::test]
async fn reservations_hold_tokens_until_dify_reports() {
    let _bound = bound(60);
    let redis = Redis::start().await;
    let (env, _dir) = gateway(Some(&redis), "").await;
    let per_stream = stream_usage(&env, 10).await;
    // Each completion reserves twice what a stream uses; three streams' worth per minute.
    let limits = json!({"tokens_per_minute": per_stream * 3});
    let app = json!({"api_key": KEY_INITECH, "max_tokens_per_request": per_stream * 2});
    let key = tenant(&env, "t", limits, app).await;
    let running = completion(&env, &key, true)
        .header("x-sim-events", "10")
        .header("x-sim-event-interval-ms", "100")
        .send()
        .await
        .unwrap();
    assert_eq!(running.status(), 200);
    // 2 reserved of 3: another reservation of 2 does not fit while the first runs...
    assert_limit(
        completion(&env, &key, false).send().await.unwrap(),
        "tokens_per_minute",
    )
    .await;
    running.text().await.unwrap();
    // ...and does once it reported 1: 1 used + 2 reserved.
    let next = || async {
        let r = completion(&env, &key, true)
            .header("x-sim-events", "10")
            .send()
            .await
            .unwrap();
        (r.status() == 200).then_some(r.text().await.unwrap())
    };
    eventually_async(5, "the reservation to give way", next).await;
    // 2 used: 2 + 2 reserved > 3.
    assert_limit(
        completion(&env, &key, false).send().await.unwrap(),
        "tokens_per_minute",
    )
    .await;
}

#[tokio::test]
async fn the_monthly_budget_stops_completions_once_spent() {
    let _bound = bound(60);
    let (env, _dir) = gateway(None, "").await;
    let (_, price) = one_usage(&env).await;
    let key = tenant(
        &env,
        "t",
        json!({"cost_per_month": price * 1.5}),
        json!({"api_key": KEY_INITECH}),
    )
    .await;
    assert_eq!(complete(&env, &key).await.0, 200);
    assert_eq!(
        complete(&env, &key).await.0,
        200,
        "1 of 1.5 spent: not reached yet"
    );
    let a = Admin::of(&env.gw);
    eventually_async(5, "the second completion's cost", || async {
        let (_, u) = a.get("/admin/tenants/t/usage").await;
        (u["usage"]["cost_per_month"].as_f64().unwrap_or(0.0) >= price * 1.999).then_some(())
    })
    .await;
    let retry = assert_limit(
        completion(&env, &key, false).send().await.unwrap(),
        "cost_per_month",
    )
    .await;
    assert!(retry > 0 && retry <= 31 * 86_400, "until the month ends: {retry}");
    assert_eq!(
        get(&env, &key).await.status(),
        200,
        "the budget holds completions only"
    );
    let (_, u) = Admin::of(&env.gw).get("/admin/tenants/t/usage").await;
    assert!(
        (u["usage"]["cost_per_month"].as_f64().unwrap() - price * 2.0).abs() < 1e-9,
        "{u}"
    );
}

#[tokio::test]
async fn two_replicas_on_one_redis_admit_the_limit_and_not_more() {
    let _bound = bound(90);
    let redis = Redis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let setup = || setup(dir.path(), Some(&redis), "");
    let (one, two) = (Env::with(setup()).await, Env::with(setup()).await);
    let key = tenant(
        &one,
        "t",
        json!({"requests_per_minute": 10, "concurrent_requests": 1}),
        json!({"api_key": KEY_INITECH}),
    )
    .await;
    eventually_async(5, "the key on the second replica", || async {
        (get(&two, "x").await.status() == 401 && get(&two, &key).await.status() == 200).then_some(())
    })
    .await;
    // 1 of 10 used above; 30 more racing on both replicas: 9 pass.
    let calls = (0..30).map(|i| {
        let env = if i % 2 == 0 { &one } else { &two };
        let key = key.clone();
        async move { get(env, &key).await.status().as_u16() }
    });
    let statuses = futures_util::future::join_all(calls).await;
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 9, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 21);
    // One completion in flight across both: of two racing, at most one starts.
    let key2 = tenant(
        &one,
        "c",
        json!({"concurrent_requests": 1}),
        json!({"api_key": KEY_INITECH}),
    )
    .await;
    eventually_async(5, "the key on the second replica", || async {
        (get(&two, &key2).await.status() == 200).then_some(())
    })
    .await;
    let slow = |env: &Env| {
        completion(env, &key2, true)
            .header("x-sim-events", "10")
            .header("x-sim-event-interval-ms", "100")
            .send()
    };
    let (a, b) = futures_util::join!(slow(&one), slow(&two));
    let (a, b) = (a.unwrap(), b.unwrap());
    let codes = [a.status().as_u16(), b.status().as_u16()];
    assert!(codes.contains(&200) && codes.contains(&429), "{codes:?}");
}

/// The outage policy `policy` with Redis killed while a stream runs.
async fn outage(policy: &str) -> (Env, String, tempfile::TempDir, u16) {
    let mut redis = Redis::start().await;
    let extra = format!("[limits]\non_redis_error = \"{policy}\"\nreplicas = 2\n");
    let (env, dir) = gateway(Some(&redis), &extra).await;
    let key = tenant(
        &env,
        "t",
        json!({"requests_per_minute": 10}),
        json!({"api_key": KEY_INITECH}),
    )
    .await;
    let running = completion(&env, &key, true)
        .header("x-sim-events", "15")
        .header("x-sim-event-interval-ms", "100")
        .send()
        .await
        .unwrap();
    assert_eq!(running.status(), 200);
    let mut body = running.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    redis.kill();
    let mut rest = first.to_vec();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    assert!(
        String::from_utf8_lossy(&rest).contains("message_end"),
        "the stream was cut"
    );
    let statuses = futures_util::future::join_all((0..8).map(|_| get(&env, &key))).await;
    let codes: Vec<u16> = statuses.iter().map(|s| s.status().as_u16()).collect();
    let ok = codes.iter().filter(|c| **c == 200).count() as u16;
    (env, format!("{codes:?}"), dir, ok)
}

#[tokio::test]
async fn with_redis_gone_open_admits() {
    let _bound = bound(60);
    let (env, codes, _dir, ok) = outage("open").await;
    assert_eq!(ok, 8, "{codes}");
    let m = env.gw.metrics().await;
    assert!(
        metric_sum(
            &m,
            "dify_gateway_limit_decisions_total",
            &["outcome=\"redis_error\""]
        ) >= 8.0
    );
}

#[tokio::test]
async fn with_redis_gone_closed_answers_503() {
    let _bound = bound(60);
    let (env, codes, _dir, ok) = outage("closed").await;
    assert_eq!(ok, 0, "{codes}");
    let r = get(&env, "dgw-unknown-key-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").await;
    assert_eq!(r.status(), 401, "authentication does not need Redis");
    let admin = Admin::of(&env.gw);
    let key = admin.post("/admin/tenants/t/api-keys", json!({})).await.1["key"]
        .as_str()
        .unwrap()
        .to_string();
    let r = get(&env, &key).await;
    assert_eq!(r.headers()["retry-after"], "1");
    assert_envelope(r, 503, "service_unavailable").await;
}

#[tokio::test]
async fn with_redis_gone_local_enforces_each_replicas_part() {
    let _bound = bound(60);
    // 10 per minute over 2 replicas: 5 here, whatever Redis had counted.
    let (_env, codes, _dir, ok) = outage("local").await;
    assert_eq!(ok, 5, "{codes}");
}

#[tokio::test]
async fn a_tenant_takes_no_more_than_its_share_of_a_shared_app() {
    let _bound = bound(60);
    let (env, _dir) = gateway(None, "").await;
    // initech shares acme's writer app (and umbrella's), with half of it under contention.
    let app = json!({"api_key": KEY_ACME_WRITER, "max_share": 0.5});
    let key = tenant(&env, "initech", json!({}), app).await;
    let slow = |auth: String| {
        env.http
            .post(env.url("/v1/completion-messages"))
            .header("authorization", bearer(&auth))
            .header("x-sim-events", "20")
            .header("x-sim-event-interval-ms", "100")
            .json(&json!({"inputs": {"topic": "tea"}, "response_mode": "streaming", "user": "bob"}))
            .send()
    };
    let mut held = Vec::new();
    for _ in 0..3 {
        let r = slow(key.clone()).await.unwrap();
        assert_eq!(r.status(), 200, "alone on the app, initech takes what it wants");
        held.push(r);
    }
    let acme = slow(token("acme", Some("writer"))).await.unwrap();
    assert_eq!(acme.status(), 200);
    let refused = slow(key.clone()).await.unwrap();
    assert_limit(refused, "max_share").await;
    drop(held);
    drop(acme);
}

#[tokio::test]
async fn a_lease_is_renewed_while_its_stream_runs_and_expires_with_a_dead_replica() {
    let _bound = bound(90);
    let redis = Redis::start().await;
    let dir = tempfile::tempdir().unwrap();
    let setup = || setup(dir.path(), Some(&redis), "[limits]\nlease_ttl = \"3s\"\n");
    let (one, two) = (Env::with(setup()).await, Env::with(setup()).await);
    let key = tenant(
        &one,
        "t",
        json!({"concurrent_requests": 1}),
        json!({"api_key": KEY_INITECH}),
    )
    .await;
    eventually_async(5, "the key on the second replica", || async {
        (get(&two, &key).await.status() == 200).then_some(())
    })
    .await;
    let running = completion(&one, &key, true)
        .header("x-sim-events", "100")
        .header("x-sim-event-interval-ms", "100")
        .send()
        .await
        .unwrap();
    assert_eq!(running.status(), 200);
    // Past the lease's 3 s the stream still holds it: its replica renews it.
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(5) {
        let r = completion(&two, &key, false).send().await.unwrap();
        assert_eq!(
            r.status(),
            429,
            "the lease lapsed while its stream ran ({:?})",
            start.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    // Its replica dies: the lease is not released, and expires within its lifetime.
    let Env { gw: mut dead, .. } = one;
    dead.child.kill().unwrap();
    let killed = std::time::Instant::now();
    drop(running);
    let took = eventually_async(10, "the dead replica's lease to expire", || async {
        (complete(&two, &key).await.0 == 200).then(|| killed.elapsed())
    })
    .await;
    assert!(
        took <= std::time::Duration::from_millis(3500),
        "the lease outlived its replica by {took:?}"
    );
}
