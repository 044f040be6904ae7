//! Redis as the replicas' shared engine, reached the ways production reaches it: over TLS
//! (`rediss://`, with the operator's CA and refused without it) and as a real three-node Redis
//! Cluster. In each, two gateways share the metadata cache, its invalidation (keys deleted on every
//! node, other replicas told over pub/sub) and a tenant's request limit; a lost cluster node
//! degrades the cache as a lost Redis does, and the limits follow their outage policy.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::redis_cluster::RedisCluster;
use common::store::ADMIN_TOKEN;
use common::*;

/// A tenant with a request limit of 4 a minute, on globex's app.
fn limited_tenant() -> String {
    format!(
        "[[tenants]]\nid = \"lim\"\n[tenants.limits]\nrequests_per_minute = 4\n[[tenants.apps]]\nname = \"writer\"\napi_key = \"{KEY_GLOBEX}\"\n"
    )
}

fn setup(redis_extra: &str, limits: &str) -> Setup {
    Setup {
        redis_extra: redis_extra.to_string(),
        extra: format!(
            "[admin]\ntoken = \"{ADMIN_TOKEN}\"\n\n{limits}\n{}",
            limited_tenant()
        ),
        ..Setup::default()
    }
}

fn cache_status(r: &reqwest::Response) -> String {
    r.headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn get(http: &reqwest::Client, url: &str, tenant: &str) -> reqwest::Response {
    http.get(url)
        .header("authorization", bearer(&token(tenant, None)))
        .send()
        .await
        .unwrap()
}

fn fetches(env: &Env, path: &str) -> usize {
    env.sim.requests().iter().filter(|r| r.path == path).count()
}

/// How many connections listen on the invalidation channel, over the nodes on `ports` (asked on
/// their plain loopback ports).
fn subscribers(ports: &[u16]) -> usize {
    ports
        .iter()
        .filter_map(|p| {
            let out = std::process::Command::new("redis-cli")
                .args([
                    "-p",
                    &p.to_string(),
                    "PUBSUB",
                    "NUMSUB",
                    "dify-gw:cache:invalidate",
                ])
                .output()
                .ok()?;
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .nth(1)?
                .trim()
                .parse::<usize>()
                .ok()
        })
        .sum()
}

/// How many cache entries the nodes on `ports` hold.
fn cached_keys(ports: &[u16]) -> usize {
    ports
        .iter()
        .filter_map(|p| {
            let out = std::process::Command::new("redis-cli")
                .args(["-p", &p.to_string(), "--scan", "--pattern", "dify-gw:cache:*"])
                .output()
                .ok()?;
            Some(String::from_utf8_lossy(&out.stdout).lines().count())
        })
        .sum()
}

/// Two replicas on the Redis that `redis_extra` names: one fill serves both, an invalidation
/// empties both, and the tenant's limit holds across them. Returns the replicas.
async fn two_replicas_share_redis(redis_extra: &str, limits: &str, nodes: &[u16]) -> (Env, Gateway) {
    let env = Env::with(setup(redis_extra, limits)).await;
    let gw2 = Gateway::start(&config_toml(&env.sim.base_url(), &setup(redis_extra, limits))).await;
    eventually(10, "both replicas to listen for invalidations", || {
        (subscribers(nodes) == 2).then_some(())
    })
    .await;
    let r = get(&env.http, &env.url("/v1/site"), "acme").await;
    assert!(cache_status(&r).contains("fwd=miss"), "{}", cache_status(&r));
    // The shared copy is written beside the answer, not before it.
    eventually(5, "the entry in Redis", || {
        (cached_keys(nodes) >= 1).then_some(())
    })
    .await;
    let r = get(&env.http, &gw2.url("/v1/site"), "acme").await;
    assert!(
        cache_status(&r).starts_with("dify-gateway; hit"),
        "the second replica did not read Redis: {}",
        cache_status(&r)
    );
    assert_eq!(fetches(&env, "/v1/site"), 1);

    // Everything invalidated on one replica: gone from Redis and from the other replica.
    let r = env
        .http
        .post(env.gw.admin_url("/admin/cache/invalidate"))
        .header("authorization", bearer(ADMIN_TOKEN))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    eventually_async(5, "the second replica to drop its entry", || async {
        let r = get(&env.http, &gw2.url("/v1/site"), "acme").await;
        cache_status(&r).contains("fwd=miss").then_some(())
    })
    .await;
    assert_eq!(fetches(&env, "/v1/site"), 2);

    // 4 a minute over both replicas.
    let calls = (0..10).map(|i| {
        let url = if i % 2 == 0 {
            env.url("/v1/parameters")
        } else {
            gw2.url("/v1/parameters")
        };
        let http = env.http.clone();
        async move { get(&http, &url, "lim").await.status().as_u16() }
    });
    let codes = futures_util::future::join_all(calls).await;
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 4, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 6, "{codes:?}");
    (env, gw2)
}

#[tokio::test]
async fn rediss_with_the_operators_ca_is_shared_by_replicas() {
    let _bound = bound(90);
    let dir = tempfile::tempdir().unwrap();
    let cert = tls::Cert::localhost();
    let (cert_file, key_file) = cert.write(dir.path());
    let (redis, tls_port) = Redis::start_tls(&cert_file, &key_file).await;
    let extra = format!(
        "url = \"rediss://localhost:{tls_port}/\"\nca_file = \"{}\"",
        cert_file.display()
    );
    two_replicas_share_redis(&extra, "", &[redis.port]).await;

    // Without the CA, the self-signed certificate is refused: Redis stays unused, requests are
    // still answered from process.
    let env = Env::with(setup(&format!("url = \"rediss://localhost:{tls_port}/\""), "")).await;
    assert_eq!(get(&env.http, &env.url("/v1/site"), "acme").await.status(), 200);
    let m = env.gw.metrics().await;
    assert!(
        metric_sum(&m, "dify_gateway_redis_errors_total", &["op=\"get\""]) >= 1.0,
        "the refused Redis was not refused: {m}"
    );
    eventually(5, "a warning naming the certificate", || {
        env.gw.log().contains("UnknownIssuer").then_some(())
    })
    .await;
}

#[tokio::test]
async fn check_refuses_redis_urls_it_cannot_serve() {
    let _bound = bound(30);
    let bad = [
        ("url = \"http://127.0.0.1:6379\"", "redis.url"),
        ("cluster_urls = [\"unix:///tmp/r.sock\"]", "redis.cluster_urls[0]"),
        (
            "cluster_urls = [\"redis://127.0.0.1:1\", \"rediss://127.0.0.1:2\"]",
            "mixes redis:// and rediss://",
        ),
        (
            "url = \"redis://127.0.0.1:1\"\ncluster_urls = [\"redis://127.0.0.1:2\"]",
            "redis.cluster_urls",
        ),
        (
            "url = \"redis://127.0.0.1:1\"\nca_file = \"/nonexistent/ca.pem\"",
            "redis.ca_file",
        ),
    ];
    for (extra, expect) in bad {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gw.toml");
        let toml = config_toml("http://127.0.0.1:1", &setup(extra, ""))
            .replace("{LISTEN}", "1")
            .replace("{ADMIN}", "2");
        std::fs::write(&path, toml).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dify-gateway"))
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{extra}: {err}");
        assert!(err.contains(expect), "{extra}: {err}");
    }
}

#[tokio::test]
async fn a_redis_cluster_is_shared_and_a_lost_node_degrades_by_policy() {
    let _bound = bound(120);
    let mut cluster = RedisCluster::start(3).await;
    let extra = format!("cluster_urls = {}", cluster.urls_toml());
    let ports: Vec<u16> = cluster.nodes.iter().map(|r| r.port).collect();
    let (env, gw2) =
        two_replicas_share_redis(&extra, "[limits]\non_redis_error = \"closed\"\n", &ports).await;
    assert!(
        cluster.count("dgw:l:{lim}:*") >= 1,
        "the limits are not in the cluster"
    );

    // The node holding the tenant's limits dies: the cache keeps answering (from process, or from
    // the other nodes); the limits are closed, as configured.
    let owner = cluster.owner_of("dgw:l:{lim}:x");
    cluster.nodes[owner].kill();
    for gw in [&env.gw, &gw2] {
        assert_eq!(get(&env.http, &gw.url("/v1/site"), "acme").await.status(), 200);
        assert_eq!(get(&env.http, &gw.url("/v1/info"), "globex").await.status(), 200);
    }
    eventually_async(10, "the limits to follow their outage policy", || async {
        let r = get(&env.http, &env.url("/v1/parameters"), "lim").await;
        (r.status() == 503).then_some(())
    })
    .await;
    let r = get(&env.http, &gw2.url("/v1/parameters"), "lim").await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
}
