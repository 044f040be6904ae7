//! Tenant isolation of Dify end users and of the ids Dify looks up without regard to tenant: users
//! are scoped per tenant on every endpoint that carries one, and foreign task, message and annotation
//! ids are answered as Dify answers unknown ones, without reaching Dify.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use serde_json::{Value, json};

async fn post(env: &Env, tok: &str, path: &str, body: Value) -> reqwest::Response {
    env.http
        .post(env.url(path))
        .header("authorization", bearer(tok))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn complete(env: &Env, tok: &str, user: &str) -> Value {
    let resp = post(
        env,
        tok,
        "/v1/completion-messages",
        json!({"inputs": {"topic": "tea"}, "user": user}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn upload(user: Option<&str>) -> reqwest::multipart::Form {
    let part = reqwest::multipart::Part::bytes(vec![1u8; 512])
        .file_name("a.png")
        .mime_str("image/png")
        .unwrap();
    let form = reqwest::multipart::Form::new();
    let form = match user {
        Some(u) => form.text("user", u.to_string()),
        None => form,
    };
    form.part("file", part)
}

#[tokio::test]
async fn users_are_scoped_per_tenant_on_every_endpoint() {
    let _bound = bound(120);
    let env = Env::start().await;
    let (acme, umbrella) = (token("acme", None), token("umbrella", None));
    let mine = complete(&env, &acme, "bob").await;
    complete(&env, &umbrella, "bob").await;
    let users: Vec<Option<String>> = env.sim.requests().iter().map(|r| r.user.clone()).collect();
    assert_eq!(
        users,
        [Some("acme:bob".to_string()), Some("umbrella:bob".to_string())]
    );
    // A completion body is scoped whole before Dify is chosen, and goes with its own length.
    for r in env.sim.requests() {
        let len = r.body.len().to_string();
        assert_eq!(r.header("content-length"), Some(len.as_str()), "{r:?}");
        assert_eq!(r.header("transfer-encoding"), None);
    }
    let tasks = env.sim.tasks();
    assert_eq!(tasks[0].key, KEY_ACME_WRITER);
    assert_eq!(tasks[1].key, KEY_ACME_WRITER, "both tenants share one Dify app");

    // Umbrella's bob is not acme's bob: Dify itself refuses the feedback.
    let mid = mine["message_id"].as_str().unwrap();
    let path = format!("/v1/messages/{mid}/feedbacks");
    let resp = post(&env, &umbrella, &path, json!({"rating": "like", "user": "bob"})).await;
    assert_eq!(resp.status(), 404);
    let resp = post(&env, &acme, &path, json!({"rating": "like", "user": "bob"})).await;
    assert_eq!(resp.status(), 200);

    let resp = post(
        &env,
        &acme,
        "/v1/text-to-audio",
        json!({"text": "hi", "user": "bob"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let resp = post(&env, &acme, "/v1/text-to-audio", json!({"text": "hi"})).await;
    assert_eq!(resp.status(), 200);
    for (user, want) in [(Some("bob"), "acme:bob"), (None, "acme:DEFAULT-USER")] {
        let resp = env
            .http
            .post(env.url("/v1/files/upload"))
            .header("authorization", bearer(&acme))
            .multipart(upload(user))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        assert_eq!(env.sim.uploads().last().unwrap().user, want);
    }
    let seen: Vec<Option<String>> = env
        .sim
        .requests()
        .iter()
        .skip(4)
        .map(|r| r.user.clone())
        .collect();
    let want = ["acme:bob", "acme:DEFAULT-USER", "acme:bob", "acme:DEFAULT-USER"];
    assert_eq!(seen, want.map(|u| Some(u.to_string())));
    // A user that cannot be scoped safely is refused before Dify.
    let before = env.upstream_count();
    let resp = post(
        &env,
        &acme,
        "/v1/completion-messages",
        json!({"inputs": {}, "user": {"id": 1}}),
    )
    .await;
    assert_envelope(resp, 400, "invalid_param").await;
    assert_eq!(env.upstream_count(), before);
}

#[tokio::test]
async fn foreign_ids_are_answered_like_unknown_ones() {
    let _bound = bound(120);
    let env = Env::start().await;
    let (acme, umbrella, globex) = (
        token("acme", None),
        token("umbrella", None),
        token("globex", None),
    );
    let editor = token("acme", Some("editor"));
    let done = complete(&env, &acme, "bob").await;
    let (mid, tid) = (
        done["message_id"].as_str().unwrap(),
        done["task_id"].as_str().unwrap(),
    );
    let tts_calls = || {
        env.sim
            .requests()
            .iter()
            .filter(|r| r.path == "/v1/text-to-audio")
            .count()
    };

    for other in [&umbrella, &globex, &editor] {
        let resp = post(
            &env,
            other,
            "/v1/text-to-audio",
            json!({"message_id": mid, "user": "bob"}),
        )
        .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "null\n");
    }
    assert_eq!(tts_calls(), 0, "a foreign message id reached Dify");
    let resp = post(
        &env,
        &acme,
        "/v1/text-to-audio",
        json!({"message_id": mid, "user": "bob"}),
    )
    .await;
    assert_eq!(resp.headers()["content-type"], "audio/mpeg");
    assert_eq!(tts_calls(), 1);

    let resp = post(
        &env,
        &umbrella,
        &format!("/v1/completion-messages/{tid}/stop"),
        json!({"user": "bob"}),
    )
    .await;
    assert_eq!(
        (resp.status().as_u16(), resp.text().await.unwrap()),
        (200, "{\"result\": \"success\"}\n".into())
    );
    assert!(env.sim.stop_calls().is_empty(), "a foreign stop reached Dify");

    let resp = post(
        &env,
        &acme,
        "/v1/apps/annotations",
        json!({"question": "q?", "answer": "a."}),
    )
    .await;
    assert_eq!(resp.status(), 201);
    let aid = resp.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/apps/annotations/{aid}");
    let before = env.upstream_count();
    // Umbrella shares the app: its app-wide endpoints are closed (403); acme's editor is another app
    // of the same tenant: the annotation is not its own (Dify's 404).
    for (other, status) in [(&umbrella, 403), (&editor, 404)] {
        let resp = env
            .http
            .put(env.url(&path))
            .header("authorization", bearer(other))
            .json(&json!({"question": "x", "answer": "y"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status);
        if status == 404 {
            let body: Value = resp.json().await.unwrap();
            assert_eq!(
                body,
                json!({"code": "not_found", "message": "Annotation not found", "status": 404})
            );
        }
        let resp = env
            .http
            .delete(env.url(&path))
            .header("authorization", bearer(other))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status);
    }
    assert_eq!(
        env.upstream_count(),
        before,
        "a foreign annotation id reached Dify"
    );
    let resp = env
        .http
        .delete(env.url(&path))
        .header("authorization", bearer(&acme))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    // Once deleted it is nobody's: a second delete is answered locally.
    let resp = env
        .http
        .delete(env.url(&path))
        .header("authorization", bearer(&acme))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(env.upstream_count(), before + 1);
}

#[tokio::test]
async fn bodies_the_gateway_cannot_read_as_dify_would_are_refused() {
    let _bound = bound(120);
    let env = Env::start().await;
    let tok = token("acme", None);
    let send = |ctype: Option<&str>, body: &str, path: &str| {
        let mut req = env
            .http
            .post(env.url(path))
            .header("authorization", bearer(&tok))
            .body(body.to_string());
        if let Some(ct) = ctype {
            req = req.header("content-type", ct);
        }
        req.send()
    };
    // A JSON media type Dify accepts is read and scoped like application/json.
    let ok = send(
        Some("application/merge-patch+json"),
        r#"{"inputs": {"topic": "t"}, "user": "bob"}"#,
        "/v1/completion-messages",
    );
    assert_eq!(ok.await.unwrap().status(), 200);
    assert_eq!(
        env.sim.requests().last().unwrap().user.as_deref(),
        Some("acme:bob")
    );
    let before = env.upstream_count();
    for (ctype, body, code) in [
        (
            Some("text/plain"),
            r#"{"user": "globex:bob"}"#,
            "unsupported_media_type",
        ),
        (None, r#"{"user": "globex:bob"}"#, "unsupported_media_type"),
        (
            Some("application/json"),
            r#"{"user": "globex:bob", "n": NaN}"#,
            "bad_request",
        ),
        (
            Some("application/json"),
            "\u{feff}{\"user\": \"globex:bob\"}",
            "bad_request",
        ),
        (Some("application/json"), r#"["globex:bob"]"#, "invalid_param"),
    ] {
        let r = send(ctype, body, "/v1/text-to-audio").await.unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["code"], code, "{ctype:?} {body}: {v}");
        assert!(status == 400 || status == 415);
    }
    // Two Content-Type headers: Dify might read the other one.
    let r = env
        .http
        .post(env.url("/v1/completion-messages"))
        .header("authorization", bearer(&tok))
        .header("content-type", "text/plain")
        .header("content-type", "application/json")
        .body(r#"{"inputs": {}, "user": "globex:bob"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // A part delimited by a bare LF (which werkzeug reads) hidden inside the file data.
    let b = "xYzBoundary";
    let hidden = format!(
        "--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\
         data\n--{b}\nContent-Disposition: form-data; name=\"user\"\n\nglobex:bob\r\n--{b}--\r\n"
    );
    let r = send(
        Some(&format!("multipart/form-data; boundary={b}")),
        &hidden,
        "/v1/files/upload",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let r = send(Some("multipart/form-data"), "--x--\r\n", "/v1/files/upload")
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "no_file_uploaded");
    assert_eq!(env.upstream_count(), before, "an unreadable body reached Dify");
}

#[tokio::test]
async fn app_wide_endpoints_are_closed_on_shared_apps() {
    let _bound = bound(120);
    let env = Env::start().await;
    let umbrella = token("umbrella", None);
    for path in ["/v1/app/feedbacks", "/v1/apps/annotations"] {
        let r = env
            .http
            .get(env.url(path))
            .header("authorization", bearer(&umbrella))
            .send()
            .await
            .unwrap();
        let body = assert_envelope(r, 403, "forbidden").await;
        assert!(body["message"].as_str().unwrap().contains("shared"), "{body}");
    }
    let r = post(
        &env,
        &umbrella,
        "/v1/apps/annotation-reply/enable",
        json!({"score_threshold": 0.9}),
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(env.upstream_count(), 0);
    // acme administers the same app (app_wide_endpoints = true in its config).
    let r = env
        .http
        .get(env.url("/v1/app/feedbacks"))
        .header("authorization", bearer(&token("acme", None)))
        .send();
    assert_eq!(r.await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_refused_body_after_100_continue_still_gets_its_answer() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _bound = bound(120);
    let env = Env::start().await;
    let body = r#"{"inputs": {}, "response_mode": "streaming", "user": {"x": 1}}"#;
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(env.gw.addr).await.unwrap();
        let head = format!(
            "POST /v1/completion-messages HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
            token("acme", None),
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let mut cont = [0u8; 25];
        s.read_exact(&mut cont).await.unwrap();
        assert!(
            cont.starts_with(b"HTTP/1.1 100 Continue\r\n"),
            "{}",
            String::from_utf8_lossy(&cont)
        );
        s.write_all(body.as_bytes()).await.unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        String::from_utf8_lossy(&rest).into_owned()
    };
    let rest = tokio::time::timeout(std::time::Duration::from_secs(10), exchange)
        .await
        .unwrap();
    assert!(rest.contains("HTTP/1.1 400"), "{rest}");
    assert!(rest.contains("invalid_param"), "{rest}");
    assert_eq!(env.upstream_count(), 0);
}
