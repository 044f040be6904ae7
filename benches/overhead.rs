//! What observability and authentication cost on the request path: the metric recording the
//! `logging` phase does for each request and the authentication of a JWT and of a gateway API key
//! (timed in process), and cache-hit latency and throughput through the release gateway with OTLP
//! tracing off and on (spans exported to an in-process collector), and with each kind of credential
//! (a file tenant's JWT, a store tenant's JWT and its `dgw-` key), and with limits off, in process
//! and on Redis, in the same run.
//!
//! `cargo build --release --workspace --bins && cargo bench --bench overhead`
//! (`-- --section limits` for the limits alone, `-- --section pool` for one Dify replica against a
//! pool of three)
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

/// Nanoseconds per `authenticate` call on a snapshot of `tenants` store tenants, for a cached JWT and
/// for a gateway API key.
async fn auth_cost(tenants: usize) -> (f64, f64) {
    use dify_gateway::admit::auth::{Authenticator, Binding, KeyRing, VerifyKey};
    use dify_gateway::admit::snapshot::{ApiKey, Snapshot};
    let secret = b"benchmark-secret-0123456789abcdef0123";
    let mut snap = Snapshot::empty();
    snap.keys = KeyRing::new(vec![Arc::new(VerifyKey {
        id: "k".into(),
        algorithm: jsonwebtoken::Algorithm::HS256,
        binding: Binding::Any,
        origin: Arc::from("config:k"),
        key: jsonwebtoken::DecodingKey::from_secret(secret),
    })]);
    for i in 0..tenants {
        let key = ApiKey {
            id: format!("k{i}"),
            tenant: format!("t{i}"),
            name: None,
            last4: String::new(),
            app: None,
            created_at: 0,
            expires_at: None,
        };
        snap.api_keys.insert(
            dify_gateway::store::vault::api_key_hash(&format!("dgw-{i:043}")),
            Arc::new(key),
        );
    }
    let claims = serde_json::json!({"tenant": "t1", "exp": 4_102_444_800u64});
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap();
    let auth = Authenticator::new(100_000);
    let now = dify_gateway::clock::unix_now();
    let time = |header: String| {
        let auth = &auth;
        let snap = &snap;
        async move {
            let n = 200_000;
            let h = header.into_bytes();
            auth.authenticate(Some(&h), snap, now).await.unwrap();
            let t = Instant::now();
            for _ in 0..n {
                auth.authenticate(Some(&h), snap, now).await.unwrap();
            }
            t.elapsed().as_nanos() as f64 / n as f64
        }
    };
    let jwt_ns = time(format!("Bearer {jwt}")).await;
    let key_ns = time(format!("Bearer dgw-{:043}", tenants / 2)).await;
    (jwt_ns, key_ns)
}

const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";

/// A gateway with an SQLite store and the admin API, plus `extra` config.
async fn with_store(extra: &str) -> Procs {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "[store]\nurl = \"sqlite://{}/gw.db\"\nencryption_key = \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n{extra}",
        dir.keep().display()
    );
    Procs::start_extra(&[], "", &extra).await
}

/// `method` on the admin API's `path`; the JSON answer.
async fn admin(p: &Procs, method: reqwest::Method, path: &str, body: serde_json::Value) -> serde_json::Value {
    let r = reqwest::Client::new()
        .request(method, format!("{}{path}", p.admin_url))
        .bearer_auth(ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    r.json().await.unwrap_or_default()
}

/// Store tenant `id` with `limits` on the bench app; its `dgw-` key as a bearer header.
async fn tenant(p: &Procs, id: &str, limits: serde_json::Value) -> String {
    use reqwest::Method;
    admin(
        p,
        Method::POST,
        "/admin/tenants",
        serde_json::json!({"id": id, "limits": limits}),
    )
    .await;
    let app = serde_json::json!({"api_key": support::KEY});
    admin(p, Method::PUT, &format!("/admin/tenants/{id}/apps/writer"), app).await;
    let created = admin(
        p,
        Method::POST,
        &format!("/admin/tenants/{id}/api-keys"),
        serde_json::json!({}),
    )
    .await;
    format!("Bearer {}", created["key"].as_str().unwrap())
}

/// A store tenant's JWT signed with a tenant-bound key added through the API.
async fn tenant_jwt(p: &Procs, id: &str) -> String {
    let secret = "bench-tenant-secret-0123456789abcdef";
    let key = serde_json::json!({"id": "t", "algorithm": "HS256", "secret": secret});
    admin(
        p,
        reqwest::Method::POST,
        &format!("/admin/tenants/{id}/jwt-keys"),
        key,
    )
    .await;
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some("t".into());
    let claims = serde_json::json!({"tenant": id, "exp": 4_102_444_800u64});
    let jwt = jsonwebtoken::encode(
        &h,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    format!("Bearer {jwt}")
}

/// Sequential blocking completions: p50 and p99 in ms.
async fn completions(url: &str, auth: &str, n: usize) -> (f64, f64) {
    completions_over(&[url.to_string()], auth, n).await
}

/// Sequential blocking completions sent to `urls` in turn: p50 and p99 in ms.
async fn completions_over(urls: &[String], auth: &str, n: usize) -> (f64, f64) {
    let http = reqwest::Client::new();
    let body = serde_json::json!({"inputs": {"topic": "tea"}, "response_mode": "blocking", "user": "u"});
    let mut ms = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        // An instant Dify (three events, no delays): what remains is the gateway's own time.
        let r = http
            .post(&urls[i % urls.len()])
            .header("authorization", auth)
            .header("x-sim-events", "3")
            .header("x-sim-first-event-delay-ms", "0")
            .header("x-sim-event-interval-ms", "0")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    (percentile(&mut ms, 50.0), percentile(&mut ms, 99.0))
}

/// A `redis-server` on a free loopback port, killed on drop.
struct RedisServer(std::process::Child, u16);

impl RedisServer {
    async fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server");
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        RedisServer(child, port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Limits off, in process and on Redis (loopback), same run: cache hits (every request checks
/// requests per minute) and blocking completions (a lease taken and released).
async fn limits_cost() {
    println!("\n# Limits\n");
    let generous = serde_json::json!({
        "requests_per_minute": 100_000_000u64, "concurrent_requests": 10_000,
        "tokens_per_minute": 1_000_000_000_000u64, "tokens_per_day": 1_000_000_000_000u64, "cost_per_month": 1e9
    });
    let redis = RedisServer::start().await;
    let on_redis = format!(
        "[redis]\nurl = \"redis://127.0.0.1:{}/\"\nhmac_key = \"bench-redis-hmac-key-0123456789abcdef\"\n",
        redis.1
    );
    println!("| path | limits | cache hit p50 ms | p99 ms | completion p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    for (name, extra) in [("in process", String::new()), ("Redis on loopback", on_redis)] {
        let p = with_store(&extra).await;
        let free = tenant(&p, "free", serde_json::json!({})).await;
        let limited = tenant(&p, "limited", generous.clone()).await;
        let (hit, done) = (
            format!("{}/v1/parameters", p.gw_url),
            format!("{}/v1/completion-messages", p.gw_url),
        );
        for (which, auth) in [("none", &free), ("all five", &limited)] {
            hits(&hit, auth, 200, 1).await;
            completions(&done, auth, 50).await;
            let (h50, h99, _) = hits(&hit, auth, 3000, 1).await;
            let (c50, c99) = completions(&done, auth, 500).await;
            println!("| {name} | {which} | {h50:.3} | {h99:.3} | {c50:.3} | {c99:.3} |");
        }
    }
}

/// One Dify replica (`upstream.url`) against a pool of three (`upstream.urls`), same run:
/// sequential blocking completions, so what differs is the choice of a replica and its counting.
async fn pool_cost() {
    println!("\n# Pool of Dify replicas\n");
    println!(
        "| upstream | through the gateway p50 ms | p99 ms | direct to the replicas in turn p50 ms | p99 ms |"
    );
    println!("|---|---|---|---|---|");
    let one = Procs::start_pool(&[], "", "", 1).await;
    let three = Procs::start_pool(&[], "", "", 3).await;
    for round in 0..2 {
        for (name, p) in [("one url", &one), ("pool of 3 (urls)", &three)] {
            let url = format!("{}/v1/completion-messages", p.gw_url);
            let direct: Vec<String> = p
                .sim_urls
                .iter()
                .map(|u| format!("{u}/v1/completion-messages"))
                .collect();
            completions(&url, &p.gw_auth, 50).await;
            completions_over(&direct, &p.direct_auth, 50).await;
            let (c50, c99) = completions(&url, &p.gw_auth, 1000).await;
            let (d50, d99) = completions_over(&direct, &p.direct_auth, 1000).await;
            println!(
                "| {name} (round {}) | {c50:.3} | {c99:.3} | {d50:.3} | {d99:.3} |",
                round + 1
            );
        }
    }
}

#[tokio::main]
async fn main() {
    match support::arg("--section").as_deref() {
        Some("limits") => return limits_cost().await,
        Some("pool") => return pool_cost().await,
        _ => {}
    }
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

    println!("\n# Authentication\n");
    for tenants in [10, 10_000] {
        let (jwt, key) = auth_cost(tenants).await;
        println!(
            "In process, {tenants} API keys in the snapshot: cached JWT {jwt:.0} ns, dgw- key {key:.0} ns"
        );
    }
    let p = with_store("").await;
    let api_key = tenant(&p, "stored", serde_json::json!({})).await;
    let store_jwt = tenant_jwt(&p, "stored").await;
    let url = format!("{}/v1/parameters", p.gw_url);
    println!("\n| gateway, cache hit, store configured | p50 ms | p99 ms | requests/s at concurrency 32 |");
    println!("|---|---|---|---|");
    for (name, auth) in [
        ("file tenant, JWT", p.gw_auth.clone()),
        ("store tenant, JWT (tenant-bound key)", store_jwt),
        ("store tenant, dgw- key", api_key),
    ] {
        hits(&url, &auth, 200, 1).await;
        let (p50, p99, rps) = hits(&url, &auth, 3000, 5).await;
        println!("| {name} | {p50:.3} | {p99:.3} | {rps:.0} |");
    }
    drop(p);
    limits_cost().await;
    pool_cost().await;
}
