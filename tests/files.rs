//! Browser fidelity: Dify's signed file links (uploads' `source_url`, image previews, tool files)
//! work through the gateway with no credentials and reach Dify unchanged, every other `/files/` path
//! is the gateway's 404; and a page can read the gateway's own answers (401, 404, 429, cached ones)
//! as its CORS algorithm would, Dify's `X-Version` and `X-Env` included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::store::*;
use common::*;
use serde_json::{Value, json};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n-not-really-a-png-but-bytes-all-the-same";

async fn upload(env: &Env, name: &str, mime: &str, data: &[u8]) -> Value {
    let part = reqwest::multipart::Part::bytes(data.to_vec())
        .file_name(name.to_string())
        .mime_str(mime)
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("user", "bob")
        .part("file", part);
    let r = env
        .http
        .post(env.url("/v1/files/upload"))
        .header("authorization", bearer(&token("acme", Some("writer"))))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

/// The path and query of an absolute link on the gateway.
fn on_gateway(env: &Env, link: &str) -> String {
    let origin = env.url("");
    assert!(
        link.starts_with(&origin),
        "{link} does not point at the gateway ({origin})"
    );
    link[origin.len()..].to_string()
}

#[tokio::test]
async fn signed_file_links_reach_dify_unchanged_and_nothing_else_does() {
    let _bound = bound(60);
    let env = Env::start().await;
    // Operators set Dify's FILES_URL to the gateway's public origin.
    env.sim.set_files_url(&env.url(""));
    let file = upload(&env, "leaf.png", "image/png", PNG).await;
    let link = on_gateway(&env, file["source_url"].as_str().unwrap());
    // No credentials needed (a browser's <img src> has none); any sent never reach Dify.
    let seen = env.upstream_count();
    let r = env
        .http
        .get(env.url(&link))
        .header("authorization", "Bearer tenant.jwt")
        .header("cookie", "a=b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/octet-stream",
        "Dify 1.14's own header"
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), PNG);
    let reached = &env.sim.requests()[seen];
    assert_eq!(reached.path, link, "the path and query reach Dify byte for byte");
    assert!(reached.header("authorization").is_none() && reached.header("cookie").is_none());
    // HEAD, Range (Dify ignores it: the whole file), as_attachment.
    let head = env.http.head(env.url(&link)).send().await.unwrap();
    assert_eq!(
        (
            head.status().as_u16(),
            head.headers()["content-length"].to_str().unwrap()
        ),
        (200, PNG.len().to_string().as_str())
    );
    let ranged = env
        .http
        .get(env.url(&link))
        .header("range", "bytes=0-3")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 200);
    assert_eq!(ranged.bytes().await.unwrap().len(), PNG.len());
    let attached = env
        .http
        .get(env.url(&format!("{link}&as_attachment=true")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        attached.headers()["content-disposition"],
        "attachment; filename*=UTF-8''leaf.png"
    );
    // The image preview of the same file, and a tool's file.
    let id = file["id"].as_str().unwrap();
    let image = on_gateway(&env, &env.sim.image_preview_url(id));
    let r = env.http.get(env.url(&image)).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["content-type"].to_str().unwrap()),
        (200, "image/png")
    );
    let tool = env
        .sim
        .add_tool_file(b"%PDF-1.7 tool output", "application/pdf", "pdf");
    let r = env.http.get(env.url(&tool)).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["content-type"].to_str().unwrap()),
        (200, "application/pdf")
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"%PDF-1.7 tool output");

    // An altered signature: Dify's own refusal, passed through.
    let forged = link.replace("sign=", "sign=x");
    let r = env.http.get(env.url(&forged)).send().await.unwrap();
    let body = assert_envelope_from_dify(r, 404).await;
    assert_eq!(body["message"], "File not found or signature is invalid");
    let forged_tool = tool.replace("sign=", "sign=x");
    let r = env.http.get(env.url(&forged_tool)).send().await.unwrap();
    assert_eq!(
        assert_envelope_from_dify(r, 403).await["message"],
        "Invalid request."
    );

    // Any other shape under /files/ is the gateway's 404 and never reaches Dify.
    let seen = env.upstream_count();
    for path in [
        "/files/upload".to_string(),
        format!("/files/{id}/preview"),
        format!("/files/{id}"),
        format!("/files/tools/{id}"),
        format!("/files/{id}/file-preview/"),
    ] {
        let r = env.http.get(env.url(&path)).send().await.unwrap();
        assert_envelope(r, 404, "not_found").await;
    }
    // Dot segments, sent as written (an HTTP client would resolve them first).
    for path in [
        format!("/files/{id}/file-preview/../../v1/parameters"),
        "/files/../v1/info".into(),
    ] {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n");
        let answer = raw_exchange(env.gw.addr, raw.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{path}: {answer}");
    }
    let r = env.http.post(env.url(&link)).send().await.unwrap();
    assert_envelope(r, 405, "method_not_allowed").await;
    assert_eq!(env.upstream_count(), seen, "a refused /files/ path reached Dify");
    let line = "dify_gateway_requests_total{app=\"none\",endpoint=\"file_preview\",method=\"GET\",status_class=\"2xx\",tenant=\"none\"}";
    let m = env.gw.metrics_contain(line).await;
    assert!(
        metric_sum(
            &m,
            "dify_gateway_requests_total",
            &["endpoint=\"file_preview\"", "status_class=\"2xx\""]
        ) >= 5.0
    );
}

/// Dify's envelope passed through (no gateway request id needed).
async fn assert_envelope_from_dify(r: reqwest::Response, status: u16) -> Value {
    assert_eq!(r.status().as_u16(), status);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], status);
    body
}

/// What a page at `origin` may read of `r`, as the browser's CORS check decides: nothing unless the
/// answer allows the origin; else the status, the safelisted headers and those exposed.
fn readable(r: &reqwest::Response, origin: &str) -> Option<Vec<String>> {
    let allow = r.headers().get("access-control-allow-origin")?.to_str().ok()?;
    if allow != origin && allow != "*" {
        return None;
    }
    let mut names: Vec<String> = [
        "cache-control",
        "content-language",
        "content-length",
        "content-type",
        "expires",
        "last-modified",
        "pragma",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(exposed) = r.headers().get("access-control-expose-headers") {
        names.extend(
            exposed
                .to_str()
                .unwrap()
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase()),
        );
    }
    Some(names)
}

#[tokio::test]
async fn a_page_can_read_the_gateways_own_answers() {
    let _bound = bound(60);
    let dir = tempfile::tempdir().unwrap();
    let env = Env::with(Setup {
        extra: store_toml(&sqlite_url(dir.path())),
        ..Setup::default()
    })
    .await;
    let origin = "https://app.example";
    let get = |path: &str, auth: Option<String>| {
        let mut req = env.http.get(env.url(path)).header("origin", origin);
        if let Some(a) = auth {
            req = req.header("authorization", bearer(&a));
        }
        req.send()
    };
    // 401, 404: the page sees the status and the envelope.
    for (path, auth, status) in [
        ("/v1/info", None, 401),
        ("/v1/chat-messages", Some(token("acme", None)), 404),
    ] {
        let r = get(path, auth).await.unwrap();
        assert_eq!(r.status().as_u16(), status);
        let names =
            readable(&r, origin).unwrap_or_else(|| panic!("a page cannot read the gateway's {status}"));
        assert!(names.contains(&"content-type".to_string()));
        assert_eq!(r.headers()["vary"], "Origin");
    }
    // 429: the page can read Retry-After? Not exposed by Dify either; it reads the status and body.
    let a = Admin::of(&env.gw);
    assert_eq!(
        a.post(
            "/admin/tenants",
            json!({"id": "t", "limits": {"requests_per_minute": 1}})
        )
        .await
        .0,
        201
    );
    assert_eq!(
        a.put("/admin/tenants/t/apps/writer", json!({"api_key": KEY_GLOBEX}))
            .await
            .0,
        201
    );
    let key = a.post("/admin/tenants/t/api-keys", json!({})).await.1["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get("/v1/info", Some(key.clone())).await.unwrap().status(), 200);
    let refused = get("/v1/info", Some(key)).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(readable(&refused, origin).is_some(), "a page cannot read the 429");
    // A cached answer: Dify's X-Version and X-Env kept, and readable.
    let acme = token("acme", None);
    get("/v1/parameters", Some(acme.clone()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let cached = get("/v1/parameters", Some(acme)).await.unwrap();
    assert!(
        cached.headers()["cache-status"].to_str().unwrap().contains("hit"),
        "{:?}",
        cached.headers()
    );
    let names = readable(&cached, origin).unwrap();
    for h in ["x-version", "x-env"] {
        assert!(names.contains(&h.to_string()), "{h} not readable");
    }
    assert_eq!(cached.headers()["x-version"], "1.14.1");
    assert_eq!(cached.headers()["x-env"], "PRODUCTION");
    // A preflight echoes the requested headers it allows, and only for served routes.
    let pre = env
        .http
        .request(reqwest::Method::OPTIONS, env.url("/v1/completion-messages"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "Authorization, Content-Type, X-Evil",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 200);
    assert_eq!(pre.headers()["access-control-allow-origin"], origin);
    assert_eq!(
        pre.headers()["access-control-allow-headers"],
        "authorization, content-type"
    );
    let other = env
        .http
        .request(reqwest::Method::OPTIONS, env.url("/v1/chat-messages"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
}
