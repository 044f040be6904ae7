//! Metrics tell the truth: token and cost counters equal the usage the simulator reported, for
//! blocking and streaming completions; and no key, JWT or admin token appears in any log line,
//! metric or error body after a run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use serde_json::{Value, json};

/// The value of the sample `name{labels}` in a Prometheus exposition (0 when absent).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn token_and_cost_counters_equal_what_dify_reported() {
    let _bound = bound(120);
    let env = Env::start().await;
    let tok = token("acme", None);
    let (mut prompt, mut completion, mut cost) = (0u64, 0u64, 0f64);
    let mut add = |u: &Value| {
        prompt += u["prompt_tokens"].as_u64().unwrap();
        completion += u["completion_tokens"].as_u64().unwrap();
        cost += u["total_price"].as_str().unwrap().parse::<f64>().unwrap();
    };
    for (i, topic) in [
        "green tea",
        "oolong",
        "a much longer topic for more prompt tokens",
    ]
    .iter()
    .enumerate()
    {
        let body = json!({"inputs": {"topic": topic}, "response_mode": "blocking", "user": "bob"});
        let r = env
            .http
            .post(env.url("/v1/completion-messages"))
            .header("authorization", bearer(&tok))
            .header("x-sim-events", (5 + i).to_string())
            .json(&body)
            .send()
            .await
            .unwrap();
        add(&r.json::<Value>().await.unwrap()["metadata"]["usage"]);
        let body = json!({"inputs": {"topic": topic}, "response_mode": "streaming", "user": "bob"});
        let r = env
            .http
            .post(env.url("/v1/completion-messages"))
            .header("authorization", bearer(&tok))
            .header("x-sim-events", (7 + i).to_string())
            .header("x-sim-event-interval-ms", "1")
            .json(&body)
            .send()
            .await
            .unwrap();
        let events = data_events(&r.text().await.unwrap());
        add(&events.last().unwrap()["metadata"]["usage"]);
    }
    assert!(prompt > 0 && completion > 0 && cost > 0.0);
    let series =
        |t: &str| format!("dify_gateway_tokens_total{{app=\"writer\",tenant=\"acme\",type=\"{t}\"}}");
    env.gw
        .metrics_contain(&format!("{} {completion}", series("completion")))
        .await;
    // Tokens are counted as message_end passes; the stream's own figures when its request ends,
    // just after the client has read it.
    let m = env
        .gw
        .metrics_contain("dify_gateway_stream_duration_seconds_count{app=\"writer\",tenant=\"acme\"} 3")
        .await;
    assert_eq!(sample(&m, &series("prompt")), prompt as f64);
    let billed = sample(
        &m,
        "dify_gateway_cost_total{app=\"writer\",currency=\"USD\",tenant=\"acme\"}",
    );
    assert!(
        (billed - cost).abs() < 1e-12,
        "cost counter {billed} != reported {cost}"
    );
    assert_eq!(
        sample(
            &m,
            "dify_gateway_time_to_first_token_seconds_count{app=\"writer\",tenant=\"acme\"}"
        ),
        3.0
    );
    assert_eq!(
        sample(
            &m,
            "dify_gateway_stream_duration_seconds_count{app=\"writer\",tenant=\"acme\"}"
        ),
        3.0
    );
    assert!(
        sample(
            &m,
            "dify_gateway_upstream_first_byte_seconds_count{endpoint=\"completion_messages\"}"
        ) >= 6.0
    );
}

#[tokio::test]
async fn no_secret_reaches_a_log_a_metric_or_an_error_body() {
    let _bound = bound(120);
    let admin = common::store::ADMIN_TOKEN;
    const STORE_DIFY_KEY: &str = "app-store-dify-key-that-must-not-leak";
    const TENANT_SECRET: &str = "tenant-hs256-secret-that-must-not-leak-0123";
    // The most verbose filter there is: no level may let a key through.
    let dir = tempfile::tempdir().unwrap();
    let mut setup = Setup {
        extra: common::store::store_toml(&common::store::sqlite_url(dir.path())),
        gateway_env: vec![("RUST_LOG".into(), "trace".into())],
        ..Setup::default()
    };
    setup
        .sim
        .apps
        .push(dify_sim::SimApp::new(STORE_DIFY_KEY, "Store app"));
    let env = Env::with(setup).await;
    // Keys at runtime: a tenant with a Dify key, a gateway API key, a JWT secret; a rotation.
    let a = common::store::Admin::of(&env.gw);
    let api_key = a.onboard("initech", STORE_DIFY_KEY).await;
    let jwt_key = json!({"id": "t1", "algorithm": "HS256", "secret": TENANT_SECRET});
    assert_eq!(a.post("/admin/tenants/initech/jwt-keys", jwt_key).await.0, 201);
    assert_eq!(
        a.put(
            "/admin/tenants/initech/apps/writer",
            json!({"api_key": STORE_DIFY_KEY})
        )
        .await
        .0,
        200
    );
    let mut admin_answers = String::new();
    for path in [
        "/admin/tenants",
        "/admin/tenants/initech",
        "/admin/tenants/initech/api-keys",
        "/admin/tenants/initech/jwt-keys",
        "/admin/audit",
    ] {
        admin_answers.push_str(&a.get(path).await.1.to_string());
    }
    let tenant_jwt = {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some("t1".into());
        let key = jsonwebtoken::EncodingKey::from_secret(TENANT_SECRET.as_bytes());
        jsonwebtoken::encode(&h, &claims("initech", None), &key).unwrap()
    };
    let wrong_api_key = format!("{}x", &api_key[..api_key.len() - 1]);
    let good = token("acme", None);
    let expired = sign_hs(None, &{
        let mut c = claims("acme", None);
        c["exp"] = json!(now() - 3600);
        c
    });
    let mut bodies = String::new();
    for (tok, path) in [
        (&good, "/v1/parameters"),
        (&good, "/v1/app/feedbacks"),
        (&expired, "/v1/info"),
        (&good, "/v1/nope"),
        (&token("nobody", None), "/v1/site"),
        (&api_key, "/v1/parameters"),
        (&wrong_api_key, "/v1/parameters"),
        (&tenant_jwt, "/v1/info"),
    ] {
        let r = env
            .http
            .get(env.url(path))
            .header("authorization", bearer(tok))
            .send()
            .await
            .unwrap();
        bodies.push_str(&r.text().await.unwrap());
    }
    let r = env
        .http
        .post(env.url("/v1/completion-messages"))
        .header("authorization", bearer(&good))
        .json(&json!({"inputs": {"topic": "tea"}, "response_mode": "streaming", "user": "bob"}))
        .send()
        .await
        .unwrap();
    bodies.push_str(&r.text().await.unwrap());
    for t in [admin, "wrong-admin-token-0000000000"] {
        let r = env
            .http
            .post(env.gw.admin_url("/admin/cache/invalidate"))
            .header("authorization", bearer(t))
            .send()
            .await
            .unwrap();
        bodies.push_str(&r.text().await.unwrap());
    }
    let metrics = env
        .gw
        .metrics_contain("endpoint=\"completion_messages\",method=\"POST\",status_class=\"2xx\"")
        .await;
    let log = env.gw.log();
    assert!(
        log.contains("\"target\":\"access\""),
        "no access log lines: {log}"
    );
    for secret in [
        KEY_ACME_WRITER,
        KEY_ACME_EDITOR,
        KEY_GLOBEX,
        SECRET,
        admin,
        good.as_str(),
        expired.as_str(),
        STORE_DIFY_KEY,
        TENANT_SECRET,
        common::store::STORE_KEY,
        api_key.as_str(),
        wrong_api_key.as_str(),
        tenant_jwt.as_str(),
    ] {
        for (name, text) in [
            ("log", &log),
            ("metrics", &metrics),
            ("error bodies", &bodies),
            ("admin answers", &admin_answers),
        ] {
            assert!(!text.contains(secret), "a secret reached the {name}");
        }
    }
}
