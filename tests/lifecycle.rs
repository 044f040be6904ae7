//! Process lifecycle: SIGTERM lets an open stream finish within the grace period and then the process
//! exits; the admin listener reports liveness and readiness.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use futures_util::StreamExt;
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn sigterm_lets_open_streams_finish_refuses_new_connections_then_exits() {
    let _bound = bound(120);
    let mut env = Env::with(Setup {
        grace_period: "5s".into(),
        ..Setup::default()
    })
    .await;
    let resp = env
        .http
        .post(env.url("/v1/completion-messages"))
        .header("authorization", bearer(&token("acme", None)))
        .header("x-sim-events", "15")
        .header("x-sim-event-interval-ms", "100")
        .json(&json!({"inputs": {"topic": "tea"}, "response_mode": "streaming", "user": "bob"}))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(!first.is_empty());
    env.gw.terminate();
    // During the grace period the listener takes no new connection.
    let refused = eventually(3, "the listener to close", || {
        std::net::TcpStream::connect_timeout(&env.gw.addr, Duration::from_millis(200))
            .is_err()
            .then_some(())
    });
    refused.await;
    let mut rest = String::from_utf8_lossy(&first).into_owned();
    while let Some(c) = body.next().await {
        rest.push_str(&String::from_utf8_lossy(&c.unwrap()));
    }
    let events = data_events(&rest);
    assert_eq!(
        events.last().unwrap()["event"],
        "message_end",
        "stream cut by SIGTERM"
    );
    let messages = events.iter().filter(|e| e["event"] == "message").count();
    assert_eq!(
        messages, 15,
        "the stream was stopped or cut within the grace period"
    );
    assert!(
        env.sim.stop_calls().is_empty(),
        "a stop reached Dify within the grace period"
    );
    // With nothing left in flight the process exits without sitting out the grace period.
    let t = Instant::now();
    let status = env.gw.wait_exit(20).await;
    assert!(status.success(), "{status:?}");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "exit took {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn with_a_shutdown_delay_sigterm_first_drains_readiness_and_keeps_serving() {
    let _bound = bound(60);
    let mut env = Env::with(Setup {
        server_extra: "shutdown_delay = \"2s\"\n".into(),
        ..Setup::default()
    })
    .await;
    let ready = || async {
        let r = env.http.get(env.gw.admin_url("/readyz")).send().await.unwrap();
        (
            r.status().as_u16(),
            r.json::<serde_json::Value>().await.unwrap()["status"].clone(),
        )
    };
    assert_eq!(ready().await, (200, json!("ready")));
    let t = Instant::now();
    env.gw.terminate();
    eventually_async(2, "/readyz to say draining", || async {
        (ready().await == (503, json!("draining"))).then_some(())
    })
    .await;
    // Still accepting and answering while a load balancer takes it out.
    let auth = bearer(&token("acme", None));
    while t.elapsed() < Duration::from_millis(1500) {
        let r = env
            .http
            .get(env.url("/v1/info"))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = env.gw.wait_exit(20).await;
    assert!(status.success(), "{status:?}");
    assert!(
        t.elapsed() >= Duration::from_secs(2),
        "stopped before the delay: {:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn sigint_and_an_idle_sigterm_exit_at_once() {
    let _bound = bound(120);
    for signal in ["-INT", "-TERM"] {
        let mut env = Env::with(Setup {
            grace_period: "30s".into(),
            ..Setup::default()
        })
        .await;
        let t = Instant::now();
        let pid = env.gw.child.id().to_string();
        assert!(
            std::process::Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = env.gw.wait_exit(20).await;
        assert!(status.success() || signal == "-INT", "{signal}: {status:?}");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{signal}: exit took {:?}",
            t.elapsed()
        );
    }
}

#[tokio::test]
async fn admin_endpoints_answer() {
    let _bound = bound(120);
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
    let _bound = bound(120);
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

const ADMIN: &str = "lifecycle-admin-token-0123456789";

#[tokio::test]
async fn an_admin_body_that_breaks_off_is_refused_not_parsed() {
    let _bound = bound(120);
    let env = Env::with(Setup {
        extra: format!("[admin]\ntoken = \"{ADMIN}\"\n"),
        ..Setup::default()
    })
    .await;
    // 100 bytes announced, 10 sent, then the client stops writing: `{"tenant"` alone must not be
    // read as a whole body.
    let cut = format!(
        "POST /admin/cache/invalidate HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"tenant\""
    );
    let out = raw_exchange_half_closed(env.gw.admin, cut.as_bytes()).await;
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("bad_request"), "{out}");
}

#[tokio::test]
async fn metrics_can_require_a_token() {
    let _bound = bound(120);
    let metrics_token = "metrics-token-0123456789abcdef";
    let env = Env::with(Setup {
        extra: format!("[admin]\nmetrics_token = \"{metrics_token}\"\n"),
        ..Setup::default()
    })
    .await;
    let get = |auth: Option<&str>| {
        let mut r = env.http.get(env.gw.admin_url("/metrics"));
        if let Some(a) = auth {
            r = r.header("authorization", bearer(a));
        }
        r.send()
    };
    for auth in [None, Some("wrong-token-0123456789")] {
        let r = get(auth).await.unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.json::<serde_json::Value>().await.unwrap()["code"],
            "unauthorized"
        );
    }
    let ok = get(Some(metrics_token)).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("dify_gateway_build_info"));
    assert_eq!(
        env.http
            .get(env.gw.admin_url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
