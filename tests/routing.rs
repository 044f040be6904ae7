//! Only the completion-app endpoints are reachable: everything else, and every path trick, gets a
//! JSON 404/405 from the gateway without contacting Dify, authenticated or not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

/// Sends a raw request line (so that no client library normalises the path) and returns the
/// status code and body.
async fn raw(env: &Env, method: &str, target: &str, auth: &str) -> (u16, String) {
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: gw\r\nAuthorization: {auth}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let out = raw_exchange(env.gw.addr, request.as_bytes()).await;
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

#[tokio::test]
async fn other_paths_never_reach_dify() {
    let _bound = bound(120);
    let env = Env::start().await;
    let auth = bearer(&token("acme", None));
    let not_found = [
        "/v1/chat-messages",
        "/v1/workflows/run",
        "/v1/datasets",
        "/v1/conversations",
        "/console/api/apps",
        "/v1/",
        "/",
        "/v1/info/",
        "/v1//info",
        "/v1/./info",
        "/v1/apps/../info",
        "/v1/../console/api/apps",
        "/v1/apps%2fannotations",
        "/v1/%2e%2e/console",
        "/v1/%69nfo",
        "/v1/apps%5cannotations",
        "/v1/messages/not-a-uuid/feedbacks",
        "/v1/files/9da23599-e713-473b-982c-4328d4f5c78a/preview",
        "/v1/audio-to-text",
        "/v1/end-users/9da23599-e713-473b-982c-4328d4f5c78a",
    ];
    for path in not_found {
        for method in ["GET", "POST"] {
            for a in [auth.as_str(), "Bearer nonsense"] {
                let (status, body) = raw(&env, method, path, a).await;
                assert_eq!(status, 404, "{method} {path}: {body}");
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["code"], "not_found");
            }
        }
    }
    let (status, body) = raw(&env, "GET", "/v1/completion-messages", &auth).await;
    assert_eq!(status, 405, "{body}");
    assert!(body.contains("method_not_allowed"));
    let (status, _) = raw(&env, "DELETE", "/v1/info", &auth).await;
    assert_eq!(status, 405);
    assert_eq!(env.upstream_count(), 0, "a refused path reached Dify");
}

#[tokio::test]
async fn wrong_method_answers_405_with_allow() {
    let _bound = bound(120);
    let env = Env::start().await;
    let resp = env
        .http
        .delete(env.url("/v1/apps/annotations"))
        .header("authorization", bearer(&token("acme", None)))
        .send()
        .await
        .unwrap();
    let allow = resp.headers()["allow"].to_str().unwrap().to_string();
    assert_envelope(resp, 405, "method_not_allowed").await;
    assert_eq!(allow, "GET, HEAD, POST, OPTIONS");
    // A CORS preflight is answered without a token and without Dify.
    let resp = env
        .http
        .request(reqwest::Method::OPTIONS, env.url("/v1/completion-messages"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(env.upstream_count(), 0);
}
