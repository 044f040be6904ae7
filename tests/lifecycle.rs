//! Process lifecycle: SIGTERM lets an open stream finish within the grace period and then the process
//! exits; the admin listener reports liveness and readiness.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use futures_util::StreamExt;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn sigterm_lets_open_streams_finish_then_exits() {
    let mut env = Env::start().await;
    let resp = env
        .http
        .post(env.url("/v1/completion-messages"))
        .header("authorization", bearer(&token("acme", None)))
        .header("x-sim-events", "5")
        .header("x-sim-event-interval-ms", "100")
        .json(&json!({"inputs": {"topic": "tea"}, "response_mode": "streaming", "user": "bob"}))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    env.gw.terminate();
    let mut rest = String::from_utf8_lossy(&first).into_owned();
    while let Some(c) = body.next().await {
        rest.push_str(&String::from_utf8_lossy(&c.unwrap()));
    }
    assert_eq!(
        data_events(&rest).last().unwrap()["event"],
        "message_end",
        "stream cut by SIGTERM"
    );
    let status = env.gw.wait_exit(20).await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn admin_endpoints_answer() {
    let env = Env::start().await;
    let get = |p: &str| env.http.get(env.gw.admin_url(p)).send();
    assert_eq!(get("/healthz").await.unwrap().status(), 200);
    assert_eq!(get("/readyz").await.unwrap().status(), 200);
    let m = get("/metrics").await.unwrap();
    assert!(
        m.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(
        m.text()
            .await
            .unwrap()
            .contains("dify_gateway_build_info{version=")
    );
    assert_eq!(get("/nope").await.unwrap().status(), 404);
    env.sim.shutdown();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if get("/readyz").await.unwrap().status() == 503 {
            break;
        }
        assert!(Instant::now() < deadline, "readyz stayed 200 with Dify gone");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sighup_reloads_tenants_and_rejects_a_bad_file() {
    let env = Env::start().await;
    let path = env.gw.dir.path().join("gateway.toml");
    let original = std::fs::read_to_string(&path).unwrap();
    let newco = token("newco", None);
    let get = |tok: String| {
        env.http
            .get(env.url("/v1/meta"))
            .header("authorization", bearer(&tok))
            .send()
    };
    assert_eq!(get(newco.clone()).await.unwrap().status(), 403);
    let added = format!(
        "{original}\n[[tenants]]\nid = \"newco\"\n[[tenants.apps]]\nname = \"writer\"\napi_key = \"{KEY_GLOBEX}\"\n"
    );
    std::fs::write(&path, added).unwrap();
    let hup = |pid: u32| {
        std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
    };
    assert!(hup(env.gw.child.id()).success());
    env.gw
        .metrics_contain("dify_gateway_config_reloads_total{outcome=\"applied\"} 1")
        .await;
    assert_eq!(get(newco.clone()).await.unwrap().status(), 200);
    assert_eq!(
        env.sim.requests().last().unwrap().authorization.as_deref(),
        Some(format!("Bearer {KEY_GLOBEX}").as_str())
    );
    // A broken file is refused whole: the running tenants stay.
    std::fs::write(&path, format!("{original}\n[[tenants]]\nid = \"\"\n")).unwrap();
    assert!(hup(env.gw.child.id()).success());
    env.gw
        .metrics_contain("dify_gateway_config_reloads_total{outcome=\"rejected\"} 1")
        .await;
    assert_eq!(get(newco).await.unwrap().status(), 200);
    assert_eq!(get(token("acme", None)).await.unwrap().status(), 200);
}
