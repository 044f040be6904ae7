//! Tenants and keys at runtime: every row of the admin API on SQLite and on a private PostgreSQL,
//! each change in force on the next request, nothing lost on restart, no secret readable in the
//! database files, and a store that is unreachable at start or goes away while running.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::store::*;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::time::Duration;

const TENANT_SECRET: &str = "a-tenant-signing-secret-of-40-bytes-xxxxx";
/// A Dify app of the simulator that no tenant of the file uses.
const KEY_INITECH: &str = "app-initech-own-key";

fn setup(url: &str) -> Setup {
    let mut s = Setup {
        extra: store_toml(url),
        ..Setup::default()
    };
    s.sim
        .apps
        .push(dify_sim::SimApp::new(KEY_INITECH, "Initech writer"));
    s
}

/// A blocking completion as `auth` for app `app`; the status and the Dify key it reached Dify with.
async fn complete(env: &Env, auth: &str, app: Option<&str>) -> (u16, Option<String>) {
    let before = env.sim.requests().len();
    let mut req = env
        .http
        .post(env.url("/v1/completion-messages"))
        .header("authorization", bearer(auth))
        .json(&json!({"inputs": {"topic": "tea"}, "response_mode": "blocking", "user": "bob"}));
    if let Some(a) = app {
        req = req.header("x-dify-app", a);
    }
    let status = req.send().await.unwrap().status().as_u16();
    let key = env
        .sim
        .requests()
        .get(before)
        .and_then(|r| r.authorization.clone());
    (status, key.map(|k| k.trim_start_matches("Bearer ").to_string()))
}

fn tenant_token(tenant: &str, kid: &str, extra: Value) -> String {
    let mut c = claims(tenant, None);
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, &c, &EncodingKey::from_secret(TENANT_SECRET.as_bytes())).unwrap()
}

/// Walks every row of the admin table, each change checked on the tenant listener.
async fn every_row(env: &Env) {
    let a = Admin::of(&env.gw);
    // Reads: the file's tenants are listed read-only.
    let (s, v) = a.get("/admin/tenants").await;
    assert_eq!(s, 200);
    let acme = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "acme")
        .unwrap();
    assert_eq!(
        (acme["source"].as_str(), acme["apps"][0]["key_last4"].as_str()),
        (Some("config"), Some("-key"))
    );
    assert_eq!(
        a.patch("/admin/tenants/acme", json!({"disabled": true})).await.0,
        409
    );
    assert_eq!(
        a.post("/admin/tenants", json!({"id": "acme"})).await.0,
        409,
        "ids are unique across both"
    );

    // Tenants.
    let (s, v) = a.post("/admin/tenants", json!({"id": "bad:id"})).await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_param")));
    let (s, v) = a
        .post(
            "/admin/tenants",
            json!({"id": "initech", "limits": {"requests_per_minute": 60}}),
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(
        (v["source"].as_str(), v["disabled"].as_bool()),
        (Some("store"), Some(false))
    );
    assert!(v["created_at"].as_u64().unwrap() >= now() - 5);
    assert_eq!(a.post("/admin/tenants", json!({"id": "initech"})).await.0, 409);
    assert_eq!(
        a.get("/admin/tenants/initech").await.1["limits"]["requests_per_minute"],
        60
    );
    assert_eq!(a.get("/admin/tenants/nobody").await.0, 404);
    let (s, v) = a
        .patch("/admin/tenants/initech", json!({"limits": {"tokens_per_day": 0}}))
        .await;
    assert_eq!(
        (
            s,
            v["message"]
                .as_str()
                .unwrap()
                .starts_with("limits.tokens_per_day")
        ),
        (400, true),
        "{v}"
    );

    // Apps: created, then rotated; the next request uses the new key.
    let (s, v) = a
        .put(
            "/admin/tenants/initech/apps/writer",
            json!({"api_key": KEY_GLOBEX}),
        )
        .await;
    assert_eq!((s, v["key_last4"].as_str()), (201, Some("-key")), "{v}");
    let (s, v) = a
        .put(
            "/admin/tenants/initech/apps/writer",
            json!({"api_key": KEY_INITECH, "scope_users": false}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = a
        .put(
            "/admin/tenants/initech/apps/shared",
            json!({"api_key": KEY_ACME_WRITER, "scope_users": false}),
        )
        .await;
    assert_eq!(
        (s, v["message"].as_str().unwrap().starts_with("scope_users")),
        (400, true),
        "shared with acme: {v}"
    );

    // Gateway API keys: shown once, listed by their last four, refused once deleted.
    let (s, k) = a
        .post(
            "/admin/tenants/initech/api-keys",
            json!({"name": "ci", "app": "writer", "expires_in": "90d"}),
        )
        .await;
    assert_eq!(s, 201, "{k}");
    let key = k["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("dgw-"));
    assert!(k["expires_at"].as_i64().unwrap() > k["created_at"].as_i64().unwrap() + 89 * 86400);
    assert_eq!(
        a.post("/admin/tenants/initech/api-keys", json!({"app": "nope"}))
            .await
            .0,
        400
    );
    let (s, list) = a.get("/admin/tenants/initech/api-keys").await;
    assert_eq!(s, 200);
    let listed = &list["data"][0];
    assert_eq!(
        (listed["last4"].as_str(), listed["name"].as_str()),
        (Some(&key[key.len() - 4..]), Some("ci"))
    );
    assert!(!list.to_string().contains(&key), "a listing shows a key");
    assert_eq!(
        complete(env, &key, None).await,
        (200, Some(KEY_INITECH.to_string()))
    );
    assert_eq!(
        a.put(
            "/admin/tenants/initech/apps/writer",
            json!({"api_key": KEY_GLOBEX})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        complete(env, &key, None).await,
        (200, Some(KEY_GLOBEX.to_string())),
        "rotation in force"
    );

    // Disabled: 403; enabled again: 200.
    assert_eq!(
        a.patch("/admin/tenants/initech", json!({"disabled": true}))
            .await
            .0,
        200
    );
    assert_eq!(complete(env, &key, None).await.0, 403);
    assert_eq!(
        a.patch("/admin/tenants/initech", json!({"disabled": false}))
            .await
            .0,
        200
    );
    assert_eq!(complete(env, &key, None).await.0, 200);

    // Tenant JWT keys: bound to their tenant; a bad PEM is refused by field; deleted = refused.
    let body = json!({"id": "kid-1", "algorithm": "HS256", "secret": TENANT_SECRET});
    let (s, v) = a.post("/admin/tenants/initech/jwt-keys", body.clone()).await;
    assert_eq!((s, v["algorithm"].as_str()), (201, Some("HS256")), "{v}");
    assert!(!v.to_string().contains(TENANT_SECRET));
    assert_eq!(a.post("/admin/tenants/initech/jwt-keys", body).await.0, 409);
    let (s, v) = a.post("/admin/tenants/initech/jwt-keys", json!({"id": "k2", "algorithm": "RS256", "public_key": "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----"})).await;
    assert_eq!(
        (s, v["message"].as_str().unwrap().starts_with("public_key")),
        (400, true),
        "{v}"
    );
    assert_eq!(
        a.get("/admin/tenants/initech/jwt-keys").await.1["data"][0]["id"],
        "kid-1"
    );
    let jwt = tenant_token("initech", "kid-1", json!({"jti": "t-1", "iat": now() - 10}));
    assert_eq!(complete(env, &jwt, None).await.0, 200);
    assert_eq!(
        complete(env, &tenant_token("globex", "kid-1", json!({})), None)
            .await
            .0,
        401,
        "another tenant's token"
    );

    // Revocations: by jti, then everything issued before a time.
    assert_eq!(
        a.post("/admin/tenants/initech/revocations", json!({"jti": "t-1"}))
            .await
            .0,
        201
    );
    assert_eq!(complete(env, &jwt, None).await.0, 401);
    let other = tenant_token("initech", "kid-1", json!({"jti": "t-2", "iat": now() - 10}));
    assert_eq!(complete(env, &other, None).await.0, 200);
    assert_eq!(
        a.post(
            "/admin/tenants/initech/revocations",
            json!({"issued_before": now()})
        )
        .await
        .0,
        201
    );
    assert_eq!(complete(env, &other, None).await.0, 401);
    assert_eq!(
        a.get("/admin/tenants/initech/revocations").await.1["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        a.post("/admin/tenants/initech/revocations", json!({})).await.0,
        400
    );
    assert_eq!(a.delete("/admin/tenants/initech/jwt-keys/kid-1").await.0, 204);
    assert_eq!(a.delete("/admin/tenants/initech/jwt-keys/kid-1").await.0, 404);

    // Usage, audit.
    let (s, u) = a.get("/admin/tenants/initech/usage").await;
    assert_eq!(
        (s, u["limits"]["requests_per_minute"].as_u64()),
        (200, Some(60)),
        "{u}"
    );
    assert!(u["usage"]["requests_per_minute"].is_number());
    let (s, log) = a.get("/admin/audit?limit=100").await;
    assert_eq!(s, 200);
    let actions: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions.first(),
        Some(&"jwt_key.delete"),
        "newest first: {actions:?}"
    );
    for want in [
        "tenant.create",
        "tenant.update",
        "app.put",
        "api_key.create",
        "jwt_key.create",
        "token.revoke",
    ] {
        assert!(actions.contains(&want), "{want} missing in {actions:?}");
    }
    let entry = &log["data"][0];
    assert!(
        entry["replica"].as_str().is_some_and(|r| !r.is_empty())
            && entry["actor"].as_str().unwrap().starts_with("tester")
    );
    for secret in [key.as_str(), TENANT_SECRET, KEY_GLOBEX, KEY_INITECH] {
        assert!(!log.to_string().contains(secret), "the audit log shows a secret");
    }
    assert_eq!(a.get("/admin/audit?limit=0").await.0, 400);

    // Deletions.
    let id = listed["id"].as_str().unwrap();
    assert_eq!(
        a.delete(&format!("/admin/tenants/initech/api-keys/{id}")).await.0,
        204
    );
    assert_eq!(complete(env, &key, None).await.0, 401);
    assert_eq!(
        a.delete(&format!("/admin/tenants/initech/api-keys/{id}")).await.0,
        404
    );
    let key2 = a.post("/admin/tenants/initech/api-keys", json!({})).await.1["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(a.delete("/admin/tenants/initech/apps/writer").await.0, 204);
    assert_eq!(complete(env, &key2, None).await.0, 403, "no app left");
    let mut old_claims = claims("initech", None);
    old_claims["iat"] = json!(now() - 10);
    let before_delete = sign_hs(Some("hs"), &old_claims);
    assert_eq!(a.delete("/admin/tenants/initech").await.0, 204);
    assert_eq!(complete(env, &key2, None).await.0, 401, "its keys went with it");
    assert_eq!(a.get("/admin/tenants/initech").await.0, 404);
    assert_eq!(a.delete("/admin/tenants/initech").await.0, 404);
    // Created again under the same id: tokens from before the deletion stay refused.
    assert_eq!(a.post("/admin/tenants", json!({"id": "initech"})).await.0, 201);
    let app = json!({"api_key": KEY_INITECH});
    assert_eq!(a.put("/admin/tenants/initech/apps/writer", app).await.0, 201);
    assert_eq!(complete(env, &before_delete, None).await.0, 401);
    let mut fresh = claims("initech", None);
    fresh["iat"] = json!(now() + 1);
    assert_eq!(complete(env, &sign_hs(Some("hs"), &fresh), None).await.0, 200);
    let metrics = env.gw.metrics().await;
    assert_eq!(
        metric_sum(
            &metrics,
            "dify_gateway_admin_changes_total",
            &["action=\"tenant.delete\""]
        ),
        1.0
    );
    assert_eq!(metric_sum(&metrics, "dify_gateway_store_up", &[]), 1.0);
}

#[tokio::test]
async fn every_admin_row_on_sqlite() {
    let _bound = bound(120);
    let dir = tempfile::tempdir().unwrap();
    let env = Env::with(setup(&sqlite_url(dir.path()))).await;
    every_row(&env).await;
}

#[tokio::test]
async fn every_admin_row_on_postgres() {
    let _bound = bound(120);
    let pg = Postgres::start();
    let env = Env::with(setup(&pg.url())).await;
    every_row(&env).await;
}

#[tokio::test]
async fn the_admin_api_refuses_what_it_must() {
    let _bound = bound(60);
    let dir = tempfile::tempdir().unwrap();
    let env = Env::with(setup(&sqlite_url(dir.path()))).await;
    let a = Admin::of(&env.gw);
    let url = env.gw.admin_url("/admin/tenants");
    let none = env.http.get(&url).send().await.unwrap();
    assert_envelope_plain(none, 401, "unauthorized").await;
    let wrong = env
        .http
        .get(&url)
        .header("authorization", "Bearer not-the-token-at-all")
        .send()
        .await
        .unwrap();
    assert_envelope_plain(wrong, 401, "unauthorized").await;
    let big = env
        .http
        .post(&url)
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body(vec![b' '; (1 << 20) + 1])
        .send()
        .await
        .unwrap();
    assert_envelope_plain(big, 413, "request_too_large").await;
    let (s, v) = a.call("PUT", "/admin/tenants", None).await;
    assert_eq!((s, v["code"].as_str()), (405, Some("method_not_allowed")));
    assert_eq!(a.get("/admin/tenants/a%2Fb").await.0, 404);
    let (s, v) = a
        .post("/admin/tenants", json!({"id": "x", "colour": "red"}))
        .await;
    assert_eq!(s, 400);
    assert!(v["message"].as_str().unwrap().contains("colour"), "{v}");
    let (s, v) = a
        .post(
            "/admin/tenants/globex/jwt-keys",
            json!({"id": "k", "algorithm": "HS256", "secret": TENANT_SECRET}),
        )
        .await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("conflict")),
        "the file's tenants are read-only"
    );
    let (s, v) = a.post("/admin/tenants", json!({"id": "t"})).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = a
        .post(
            "/admin/tenants/t/jwt-keys",
            json!({"jwks_url": format!("http://127.0.0.1:{}/jwks", free_port())}),
        )
        .await;
    assert_eq!(s, 400, "an unreachable key set is refused: {v}");
    assert!(v["message"].as_str().unwrap().starts_with("jwks_url"), "{v}");
}

async fn assert_envelope_plain(resp: reqwest::Response, status: u16, code: &str) {
    assert_eq!(resp.status().as_u16(), status);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (body["code"].as_str(), body["status"].as_u64()),
        (Some(code), Some(u64::from(status))),
        "{body}"
    );
}

#[tokio::test]
async fn without_a_store_reads_work_and_changes_are_conflicts() {
    let _bound = bound(60);
    let env = Env::with(Setup {
        extra: format!("[admin]\ntoken = \"{ADMIN_TOKEN}\"\n"),
        ..Setup::default()
    })
    .await;
    let a = Admin::of(&env.gw);
    let (s, v) = a.get("/admin/tenants").await;
    assert_eq!((s, v["data"].as_array().unwrap().len()), (200, 3));
    assert_eq!(a.get("/admin/tenants/acme/usage").await.0, 200);
    assert_eq!(a.get("/admin/audit").await, (200, json!({"data": []})));
    let (s, v) = a.post("/admin/tenants", json!({"id": "new"})).await;
    assert_eq!((s, v["code"].as_str()), (409, Some("conflict")), "{v}");
    assert_eq!(
        a.post("/admin/tenants/acme/revocations", json!({"jti": "x"}))
            .await
            .0,
        409
    );
    let ready: Value = env
        .http
        .get(env.gw.admin_url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["store"], "none");
}

/// Polls the tenant listener of `env` with `key` until it answers `want`; the time it took.
async fn until(env: &Env, key: &str, want: u16) -> Duration {
    let start = std::time::Instant::now();
    loop {
        let status = env
            .http
            .get(env.url("/v1/parameters"))
            .header("authorization", bearer(key))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never answered {want} (last {status})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Changes made on one replica are in force on the other within a second.
async fn propagation(url: &str) {
    let one = Env::with(setup(url)).await;
    let two = Env::with(setup(url)).await;
    let a = Admin::of(&one.gw);
    let key = a.onboard("initech", KEY_GLOBEX).await;
    let took = until(&two, &key, 200).await;
    eprintln!(
        "propagation on {}: new key {took:?}",
        url.split(':').next().unwrap_or("")
    );
    assert!(
        took < Duration::from_secs(1),
        "a new key took {took:?} to reach the other replica"
    );
    assert_eq!(
        a.patch("/admin/tenants/initech", json!({"disabled": true}))
            .await
            .0,
        200
    );
    let took = until(&two, &key, 403).await;
    eprintln!("propagation: disabled {took:?}");
    assert!(took < Duration::from_secs(1), "disabling took {took:?}");
    let id = a.get("/admin/tenants/initech/api-keys").await.1["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        a.delete(&format!("/admin/tenants/initech/api-keys/{id}")).await.0,
        204
    );
    let took = until(&two, &key, 401).await;
    eprintln!("propagation: deleted {took:?}");
    assert!(took < Duration::from_secs(1), "deleting took {took:?}");
}

#[tokio::test]
async fn changes_reach_another_replica_within_a_second_on_sqlite() {
    let _bound = bound(90);
    let dir = tempfile::tempdir().unwrap();
    propagation(&sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn changes_reach_another_replica_within_a_second_on_postgres() {
    let _bound = bound(90);
    let pg = Postgres::start();
    propagation(&pg.url()).await;
}

/// Writes racing on two replicas: none lost, the audit log has every one.
async fn racing_writes(url: &str) {
    let one = Env::with(setup(url)).await;
    let two = Env::with(setup(url)).await;
    let (a, b) = (Admin::of(&one.gw), Admin::of(&two.gw));
    assert_eq!(a.post("/admin/tenants", json!({"id": "race"})).await.0, 201);
    until_tenant(&b, "race").await;
    let writes = (0..10).map(|i| {
        let admin = if i % 2 == 0 { &a } else { &b };
        async move {
            let app = format!("/admin/tenants/race/apps/app{i}");
            admin
                .put(&app, json!({"api_key": format!("app-race-{i}")}))
                .await
                .0
        }
    });
    let statuses = futures_util::future::join_all(writes).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    // The other replica's last writes reach this one within a second; a lost update never would.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let apps = a.get("/admin/tenants/race").await.1["apps"]
            .as_array()
            .unwrap()
            .len();
        if apps == 10 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "an update was lost: {apps} apps"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = a.get("/admin/audit?limit=50").await.1;
    let entries: Vec<&Value> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "app.put")
        .collect();
    assert_eq!(entries.len(), 10);
    let replicas: std::collections::HashSet<&str> =
        entries.iter().map(|e| e["replica"].as_str().unwrap()).collect();
    assert_eq!(replicas.len(), 2, "both replicas wrote");
}

async fn until_tenant(admin: &Admin, id: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while admin.get(&format!("/admin/tenants/{id}")).await.0 != 200 {
        assert!(std::time::Instant::now() < deadline, "tenant {id} never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn racing_writes_lose_nothing_on_sqlite() {
    let _bound = bound(90);
    let dir = tempfile::tempdir().unwrap();
    racing_writes(&sqlite_url(dir.path())).await;
}

#[tokio::test]
async fn racing_writes_lose_nothing_on_postgres() {
    let _bound = bound(90);
    let pg = Postgres::start();
    racing_writes(&pg.url()).await;
}

/// Every byte of every file under `dir`.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push((p, bytes));
        }
    }
    out
}

/// Restarting a replica loses nothing; the database files hold no key in clear.
async fn persistence_and_encryption(url: &str, files: &std::path::Path, checkpoint: impl Fn()) {
    const DIFY_KEY: &str = "app-secret-dify-key-that-must-not-leak";
    let mut s = setup(url);
    s.sim
        .apps
        .push(dify_sim::SimApp::new(DIFY_KEY, "Initech secret writer"));
    let env = Env::with(s).await;
    let a = Admin::of(&env.gw);
    let key = a.onboard("initech", DIFY_KEY).await;
    let jwt = json!({"id": "kid-1", "algorithm": "HS256", "secret": TENANT_SECRET});
    assert_eq!(a.post("/admin/tenants/initech/jwt-keys", jwt).await.0, 201);
    assert_eq!(
        complete(&env, &key, None).await,
        (200, Some(DIFY_KEY.to_string()))
    );
    let Env { sim, gw, http } = env;
    drop(gw);
    let mut again = setup(url);
    again
        .sim
        .apps
        .push(dify_sim::SimApp::new(DIFY_KEY, "Initech secret writer"));
    let gw = Gateway::start_with(&config_toml(&sim.base_url(), &again), "/readyz", &[]).await;
    let env = Env { sim, gw, http };
    assert_eq!(
        complete(&env, &key, None).await,
        (200, Some(DIFY_KEY.to_string())),
        "lost on restart"
    );
    let token = tenant_token("initech", "kid-1", json!({}));
    assert_eq!(complete(&env, &token, None).await.0, 200);
    checkpoint();
    let scanned = files_under(files);
    assert!(!scanned.is_empty());
    for (path, bytes) in &scanned {
        for secret in [DIFY_KEY, TENANT_SECRET, key.as_str()] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds a key in clear",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn restart_loses_nothing_and_no_key_is_stored_in_clear_on_sqlite() {
    let _bound = bound(90);
    let dir = tempfile::tempdir().unwrap();
    persistence_and_encryption(&sqlite_url(dir.path()), dir.path(), || {}).await;
}

#[tokio::test]
async fn restart_loses_nothing_and_no_key_is_stored_in_clear_on_postgres() {
    let _bound = bound(90);
    let pg = Postgres::start();
    let data = pg.data_dir();
    persistence_and_encryption(&pg.url(), &data, || {
        pg.psql("CHECKPOINT");
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_store_at_start_exits_69_unless_the_file_can_serve() {
    let _bound = bound(90);
    let port = free_port();
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    // No tenant in the file: nothing to serve, exit 69.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gw.toml");
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:{}\"\nadmin_listen = \"127.0.0.1:{}\"\n[upstream]\nurl = \"http://127.0.0.1:1\"\n{}",
        free_port(),
        free_port(),
        store_toml(&url)
    );
    std::fs::write(&path, toml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dify-gateway"))
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("store cannot be reached"));

    // With the file's tenants: serve them, not ready, and pick the store up once it answers.
    let s = Setup {
        extra: store_toml(&url),
        ..Setup::default()
    };
    let sim = dify_sim::Simulator::start("127.0.0.1:0".parse().unwrap(), s.sim.clone())
        .await
        .unwrap();
    let gw = Gateway::start_probing(&config_toml(&sim.base_url(), &s), "/healthz").await;
    let env = Env {
        sim,
        gw,
        http: client(),
    };
    let ready = env.http.get(env.gw.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.json::<Value>().await.unwrap()["store"], "unreachable");
    assert_eq!(
        complete(&env, &token("acme", None), None).await.0,
        200,
        "the file's tenants are served"
    );
    assert_eq!(
        Admin::of(&env.gw)
            .post("/admin/tenants", json!({"id": "x"}))
            .await
            .0,
        503
    );
    let mut pg = Postgres::start();
    pg.stop();
    pg.port = port;
    pg.run();
    let mut gw = env.gw;
    assert!(
        gw.wait_for("/readyz", Duration::from_secs(40)).await,
        "never picked the store up"
    );
    assert_eq!(
        Admin::of(&gw).post("/admin/tenants", json!({"id": "x"})).await.0,
        201
    );
}

#[tokio::test]
async fn a_store_lost_while_running_keeps_the_last_snapshot() {
    let _bound = bound(90);
    let mut pg = Postgres::start();
    let env = Env::with(setup(&pg.url())).await;
    let a = Admin::of(&env.gw);
    let key = a.onboard("initech", KEY_GLOBEX).await;
    pg.stop();
    env.gw.metrics_contain("dify_gateway_store_up 0").await;
    assert_eq!(
        complete(&env, &key, None).await.0,
        200,
        "the last snapshot serves"
    );
    let (s, v) = a.post("/admin/tenants", json!({"id": "later"})).await;
    assert_eq!((s, v["code"].as_str()), (503, Some("service_unavailable")), "{v}");
    let ready = env.http.get(env.gw.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "serving the last snapshot");
    assert!(env.gw.log().contains("Store unreachable"));
    pg.run();
    env.gw.metrics_contain("dify_gateway_store_up 1").await;
    assert_eq!(a.post("/admin/tenants", json!({"id": "later"})).await.0, 201);
    assert_eq!(complete(&env, &key, None).await.0, 200);
    assert_eq!(a.get("/admin/tenants/initech").await.0, 200, "nothing lost");
}

#[tokio::test]
async fn the_openapi_document_matches_the_real_routes() {
    let _bound = bound(60);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/admin-api.openapi.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut documented = Vec::new();
    for (p, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if method != "parameters" {
                documented.push((method.to_uppercase(), p.clone(), op.clone()));
            }
        }
    }
    let mut want: Vec<(String, String)> = dify_gateway::admin::routes::TEMPLATES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let mut have: Vec<(String, String)> = documented
        .iter()
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect();
    want.sort();
    have.sort();
    assert_eq!(
        have, want,
        "the document and the router list different operations"
    );
    // Each documented operation, called on a running gateway, answers one of its documented statuses.
    let dir = tempfile::tempdir().unwrap();
    let env = Env::with(setup(&sqlite_url(dir.path()))).await;
    let a = Admin::of(&env.gw);
    for (method, template, op) in &documented {
        let path = template
            .replace("{tenant}", "acme")
            .replace("{app}", "writer")
            .replace("{id}", "k1");
        let body = (method != "GET" && method != "DELETE").then(|| json!({}));
        let (status, answer) = a.call(method, &path, body).await;
        assert!(
            op["responses"].get(status.to_string()).is_some(),
            "{method} {path} answered {status} {answer}, not among its documented responses"
        );
    }
}

#[tokio::test]
async fn a_replica_with_another_encryption_key_is_refused() {
    let _bound = bound(60);
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let env = Env::with(setup(&url)).await;
    Admin::of(&env.gw).onboard("initech", KEY_GLOBEX).await;
    let other = "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk="; // 32 bytes, not the store's key
    let toml = config_toml(&env.sim.base_url(), &setup(&url)).replace(STORE_KEY, other);
    let path = dir.path().join("other.toml");
    std::fs::write(
        &path,
        toml.replace("{LISTEN}", &free_port().to_string())
            .replace("{ADMIN}", &free_port().to_string()),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_dify-gateway").to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(bin)
            .arg("-c")
            .arg(&path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{err}");
    assert!(
        err.contains("store.encryption_key is not the key this store was written with"),
        "{err}"
    );
}
