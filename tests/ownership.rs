//! Who owns what Dify hands out, beyond the basics in `isolation.rs`: records in Redis are believed
//! only when the gateway wrote them, annotation-reply jobs are their starter's, an annotation is its
//! creator's however long the answer, an empty `message_id` names no message, and a stop answered by
//! the gateway is not counted as one sent to Dify.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

async fn send(env: &Env, method: &str, tok: &str, path: &str, body: Option<Value>) -> reqwest::Response {
    let mut req = env
        .http
        .request(method.parse().unwrap(), env.url(path))
        .header("authorization", bearer(tok));
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap()
}

fn redis_setup(redis: &Redis) -> Setup {
    Setup {
        redis_extra: format!("url = \"{}\"", redis.url()),
        ..Setup::default()
    }
}

#[tokio::test]
async fn records_in_redis_that_the_gateway_did_not_write_are_not_believed() {
    let _bound = bound(120);
    let redis = Redis::start().await;
    let a = Env::with(redis_setup(&redis)).await;
    let b = Gateway::start(&config_toml(&a.sim.base_url(), &redis_setup(&redis))).await;
    for gw in [&a.gw, &b] {
        gw.metrics_contain("dify_gateway_redis_up 1").await;
    }
    let (acme, globex) = (token("acme", None), token("globex", None));
    let created = send(
        &a,
        "POST",
        &acme,
        "/v1/apps/annotations",
        Some(json!({"question": "q", "answer": "a"})),
    )
    .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Once replica A has recorded it, anyone with access to Redis claims acme's annotation for globex.
    let key = format!("dify-gw:own:v1:annotation:{id}");
    eventually(10, "the owner record in Redis", || {
        (redis.command(&format!("EXISTS {key}")) == ":1").then_some(())
    })
    .await;
    let forged = json!({"tenant": "globex", "app": "writer", "user": null}).to_string();
    assert_eq!(redis.set(&key, forged.as_bytes()), "+OK");
    let before = a.upstream_count();
    let r = a
        .http
        .put(b.url(&format!("/v1/apps/annotations/{id}")))
        .header("authorization", bearer(&globex))
        .json(&json!({"question": "pwned", "answer": "pwned"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "a forged owner record was believed");
    assert_eq!(a.upstream_count(), before, "the foreign update reached Dify");
    b.metrics_contain("dify_gateway_redis_errors_total{kind=\"unverified\",op=\"get\"} 1")
        .await;

    // A forged cache entry is not served either: the answer comes from Dify.
    let app = hex::encode(&Sha256::digest(KEY_ACME_WRITER.as_bytes())[..16]);
    let entry = json!({"content_type": "application/json", "body": "{\"forged\": true}", "stored_at_ms": now() * 1000, "etag": "\"x\""});
    let key = format!("dify-gw:cache:v1:{{{app}}}:parameters");
    assert_eq!(redis.set(&key, entry.to_string().as_bytes()), "+OK");
    let r = send(&a, "GET", &token("acme", Some("writer")), "/v1/parameters", None).await;
    let body = a
        .http
        .get(b.url("/v1/parameters"))
        .header("authorization", bearer(&acme))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = body.text().await.unwrap();
    assert!(
        !text.contains("forged"),
        "a forged cache entry was served: {text}"
    );
    assert!(text.contains("user_input_form"), "{text}");
}

#[tokio::test]
async fn annotation_reply_jobs_are_their_starters() {
    let _bound = bound(120);
    let env = Env::start().await;
    let (acme, editor, globex) = (
        token("acme", None),
        token("acme", Some("editor")),
        token("globex", None),
    );
    let body =
        json!({"score_threshold": 0.9, "embedding_provider_name": "openai", "embedding_model_name": "e"});
    let r = send(
        &env,
        "POST",
        &acme,
        "/v1/apps/annotation-reply/enable",
        Some(body),
    )
    .await;
    assert_eq!(r.status(), 200);
    let job = r.json::<Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/apps/annotation-reply/enable/status/{job}");
    let before = env.upstream_count();
    for other in [&editor, &globex] {
        let r = send(&env, "GET", other, &path, None).await;
        assert_eq!(r.status(), 400);
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"code": "invalid_param", "message": "The job does not exist.", "status": 400})
        );
    }
    assert_eq!(env.upstream_count(), before, "a foreign job id reached Dify");
    let r = send(&env, "GET", &acme, &path, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["job_id"], job.as_str());
    let unknown = "/v1/apps/annotation-reply/enable/status/0b6b8e21-8c3c-4d3c-9a1e-5f7b2f2f1a01";
    assert_eq!(send(&env, "GET", &acme, unknown, None).await.status(), 400);
    assert_eq!(env.upstream_count(), before + 1);
}

#[tokio::test]
async fn an_annotation_is_its_creators_however_long_the_answer() {
    let _bound = bound(120);
    let env = Env::start().await;
    let acme = token("acme", None);
    let long = "x".repeat(100 * 1024);
    let r = send(
        &env,
        "POST",
        &acme,
        "/v1/apps/annotations",
        Some(json!({"question": "q", "answer": long})),
    )
    .await;
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = send(
        &env,
        "PUT",
        &acme,
        &format!("/v1/apps/annotations/{id}"),
        Some(json!({"question": "q", "answer": "short"})),
    )
    .await;
    assert_eq!(r.status(), 200, "the creator could not edit its own annotation");
}

#[tokio::test]
async fn an_empty_message_id_names_no_message() {
    let _bound = bound(120);
    let env = Env::start().await;
    let r = send(
        &env,
        "POST",
        &token("acme", None),
        "/v1/text-to-audio",
        Some(json!({"message_id": "", "text": "hello", "user": "bob"})),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "audio/mpeg", "Dify voices the text");
}

#[tokio::test]
async fn a_stop_answered_by_the_gateway_is_not_counted_as_sent() {
    let _bound = bound(120);
    let env = Env::start().await;
    let r = send(
        &env,
        "POST",
        &token("acme", None),
        "/v1/completion-messages/unknown-task/stop",
        Some(json!({"user": "bob"})),
    )
    .await;
    assert_eq!(r.status(), 200);
    let m = env
        .gw
        .metrics_contain("endpoint=\"stop\",method=\"POST\",status_class=\"2xx\",tenant=\"acme\"")
        .await;
    assert_eq!(
        metric_sum(&m, "dify_gateway_stops_total", &["cause=\"client\""]),
        0.0
    );
    assert!(env.sim.stop_calls().is_empty());
}
