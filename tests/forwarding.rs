//! What of a request head reaches Dify: client-sent forwarding headers never do (Dify takes the
//! client address from them), `X-Forwarded-For` says what the gateway saw (keeping a trusted proxy's
//! chain), the target is always sent in origin form, and oversized credentials stop at the gateway.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

const SPOOFED: &[(&str, &str)] = &[
    ("x-forwarded-for", "6.6.6.6"),
    ("forwarded", "for=6.6.6.6;proto=https"),
    ("x-real-ip", "6.6.6.6"),
    ("cf-connecting-ip", "6.6.6.6"),
    ("true-client-ip", "6.6.6.6"),
    ("x-forwarded-host", "evil.example"),
    ("x-forwarded-port", "444"),
    ("x-forwarded-prefix", "/evil"),
    ("x-forwarded-proto", "https"),
];

async fn info_with_spoofed_headers(env: &Env) {
    let mut req = env
        .http
        .get(env.url("/v1/app/feedbacks"))
        .header("authorization", bearer(&token("acme", None)));
    for (k, v) in SPOOFED {
        req = req.header(*k, *v);
    }
    assert_eq!(req.send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn client_forwarding_headers_never_reach_dify() {
    let _bound = bound(120);
    let env = Env::start().await;
    info_with_spoofed_headers(&env).await;
    let seen = env.sim.requests().pop().unwrap();
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    for (name, _) in &SPOOFED[1..8] {
        assert_eq!(seen.header(name), None, "{name} reached Dify");
    }
}

#[tokio::test]
async fn a_trusted_proxys_chain_is_kept() {
    let _bound = bound(120);
    let env = Env::with(Setup {
        server_extra: "trusted_proxies = [\"127.0.0.0/8\"]".into(),
        ..Setup::default()
    })
    .await;
    info_with_spoofed_headers(&env).await;
    let seen = env.sim.requests().pop().unwrap();
    assert_eq!(seen.header("x-forwarded-for"), Some("6.6.6.6, 127.0.0.1"));
    assert_eq!(seen.header("x-real-ip"), None);
}

#[tokio::test]
async fn an_absolute_target_reaches_dify_in_origin_form() {
    let _bound = bound(120);
    let env = Env::start().await;
    let request = format!(
        "GET http://other.host/v1/app/feedbacks?page=1 HTTP/1.1\r\nHost: other.host\r\n\
         Authorization: Bearer {}\r\nConnection: close\r\n\r\n",
        token("acme", None)
    );
    let out = raw_exchange(env.gw.addr, request.as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    let seen = env.sim.requests().pop().unwrap();
    assert_eq!(seen.path, "/v1/app/feedbacks?page=1");
    assert_ne!(seen.header("host"), Some("other.host"));
}

#[tokio::test]
async fn oversized_credentials_are_refused_before_any_verification() {
    let _bound = bound(120);
    let env = Env::start().await;
    let huge = format!("Bearer {}", "a".repeat(9000));
    let r = env
        .http
        .get(env.url("/v1/info"))
        .header("authorization", huge)
        .send()
        .await
        .unwrap();
    let body = assert_envelope(r, 401, "unauthorized").await;
    assert_eq!(body["message"], "Access token is too long");
    assert_eq!(env.upstream_count(), 0);
    env.gw
        .metrics_contain("dify_gateway_auth_failures_total{reason=\"too_long\"} 1")
        .await;
}
