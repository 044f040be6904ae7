//! All 16 completion-app endpoints through the gateway: each answers as Dify does, Dify sees the
//! mapped app key and never the tenant JWT, and Dify's own answers (errors included) pass unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use serde_json::{Value, json};

const USER: &str = "alice";

struct Call<'a> {
    env: &'a Env,
    token: String,
}

impl Call<'_> {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.env
            .http
            .request(method, self.env.url(path))
            .header("authorization", bearer(&self.token))
    }

    async fn json(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, String) {
        let resp = self.req(method, path).json(&body).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }
}

#[tokio::test]
async fn every_endpoint_reaches_dify_with_the_app_key_only() {
    let _bound = bound(120);
    let env = Env::start().await;
    let c = Call {
        env: &env,
        token: token("acme", Some("writer")),
    };
    use reqwest::Method as M;

    let (s, body) = c
        .json(
            M::POST,
            "/v1/completion-messages",
            json!({"inputs": {"topic": "tea"}, "response_mode": "blocking", "user": USER}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let done: Value = serde_json::from_str(&body).unwrap();
    let message_id = done["message_id"].as_str().unwrap().to_string();
    let task_id = done["task_id"].as_str().unwrap().to_string();

    let resp = c
        .req(M::POST, "/v1/completion-messages")
        .json(&json!({"inputs": {"topic": "tea"}, "response_mode": "streaming", "user": USER}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert!(
        h["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(h["x-accel-buffering"], "no");
    assert_eq!(h["cache-control"], "no-cache");
    let events = data_events(&resp.text().await.unwrap());
    assert_eq!(events.last().unwrap()["event"], "message_end");

    let (s, body) = c
        .json(
            M::POST,
            &format!("/v1/completion-messages/{task_id}/stop"),
            json!({"user": USER}),
        )
        .await;
    assert_eq!((s, body.contains("success")), (200, true), "{body}");

    let (s, body) = c
        .json(
            M::POST,
            "/v1/apps/annotations",
            json!({"question": "q?", "answer": "a."}),
        )
        .await;
    assert_eq!(s, 201, "{body}");
    let ann_id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = c
        .json(
            M::PUT,
            &format!("/v1/apps/annotations/{ann_id}"),
            json!({"question": "q2?", "answer": "a2."}),
        )
        .await;
    assert_eq!(s, 200);
    let resp = c
        .req(M::GET, "/v1/apps/annotations?page=1&limit=20")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("q2?"));
    let resp = c
        .req(M::DELETE, &format!("/v1/apps/annotations/{ann_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let reply = json!({"score_threshold": 0.9, "embedding_provider_name": "openai", "embedding_model_name": "text-embedding-3-small"});
    let (s, body) = c.json(M::POST, "/v1/apps/annotation-reply/enable", reply).await;
    assert_eq!(s, 200, "{body}");
    let job = serde_json::from_str::<Value>(&body).unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = c
        .req(M::GET, &format!("/v1/apps/annotation-reply/enable/status/{job}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let resp = c
        .req(M::POST, "/v1/text-to-audio")
        .json(&json!({"text": "hello", "user": USER}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "audio/mpeg");
    assert!(!resp.bytes().await.unwrap().is_empty());

    let (s, body) = c
        .json(
            M::POST,
            &format!("/v1/messages/{message_id}/feedbacks"),
            json!({"rating": "like", "user": USER}),
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let resp = c
        .req(M::GET, "/v1/app/feedbacks?page=1&limit=20")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains(&message_id));

    let part = reqwest::multipart::Part::bytes(vec![7u8; 2048])
        .file_name("leaf.png")
        .mime_str("image/png")
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("user", USER)
        .part("file", part);
    let resp = c
        .req(M::POST, "/v1/files/upload")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.json::<Value>().await.unwrap()["size"], 2048);

    for path in ["/v1/info", "/v1/parameters", "/v1/site", "/v1/meta"] {
        let resp = c.req(M::GET, path).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }

    let seen = env.sim.requests();
    assert_eq!(seen.len(), 17, "every call reached Dify exactly once");
    for r in &seen {
        assert_eq!(
            r.authorization.as_deref(),
            Some(format!("Bearer {KEY_ACME_WRITER}").as_str()),
            "{} {}",
            r.method,
            r.path
        );
        let everything = format!("{:?} {}", r.headers, String::from_utf8_lossy(&r.body));
        assert!(
            !everything.contains(&c.token),
            "the tenant JWT reached Dify on {}",
            r.path
        );
        assert_eq!(r.header("x-forwarded-proto"), Some("http"));
        // Cache fills are the gateway's own requests: no client to name.
        let fill = ["/v1/info", "/v1/parameters", "/v1/site", "/v1/meta"].contains(&r.path.as_str());
        assert_eq!(
            r.header("x-forwarded-for"),
            (!fill).then_some("127.0.0.1"),
            "{}",
            r.path
        );
        assert!(r.header("x-request-id").is_some());
    }
}

#[tokio::test]
async fn difys_own_answers_pass_through_byte_for_byte() {
    let _bound = bound(120);
    let env = Env::start().await;
    let direct = client();
    let tok = token("acme", None);
    let cases = [
        ("/v1/completion-messages", json!({"inputs": {"topic": "tea"}})),
        ("/v1/completion-messages", json!({"inputs": {}, "user": "u"})),
        (
            "/v1/text-to-audio",
            json!({"message_id": "9da23599-e713-473b-982c-4328d4f5c78a", "user": "u"}),
        ),
    ];
    for (path, body) in cases {
        let via = env
            .http
            .post(env.url(path))
            .header("authorization", bearer(&tok))
            .json(&body)
            .send()
            .await
            .unwrap();
        let dir = direct
            .post(format!("{}{path}", env.sim.base_url()))
            .header("authorization", bearer(KEY_ACME_WRITER))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(via.status(), dir.status(), "{path} {body}");
        assert_eq!(via.headers()["content-type"], dir.headers()["content-type"]);
        assert_eq!(
            via.bytes().await.unwrap(),
            dir.bytes().await.unwrap(),
            "{path} {body}"
        );
    }
    // Forced upstream failure statuses are Dify's, not the gateway's.
    let resp = env
        .http
        .get(env.url("/v1/app/feedbacks"))
        .header("authorization", bearer(&tok))
        .header("x-sim-status", "503")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
}

#[tokio::test]
async fn request_ids_are_kept_or_made_and_returned() {
    let _bound = bound(120);
    let env = Env::start().await;
    let tok = token("acme", None);
    let resp = env
        .http
        .get(env.url("/v1/app/feedbacks"))
        .header("authorization", bearer(&tok))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "client-chosen-42");
    assert_eq!(
        env.sim.requests()[0].header("x-request-id"),
        Some("client-chosen-42")
    );
    let resp = env
        .http
        .get(env.url("/v1/app/feedbacks"))
        .header("authorization", bearer(&tok))
        .send()
        .await
        .unwrap();
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(rid.len(), 36);
    assert_eq!(env.sim.requests()[1].header("x-request-id"), Some(rid.as_str()));
    env.gw
        .metrics_contain(
            "dify_gateway_requests_total{app=\"writer\",endpoint=\"app_feedbacks\",method=\"GET\",status_class=\"2xx\",tenant=\"acme\"} 2",
        )
        .await;
    env.gw
        .metrics_contain(
            "dify_gateway_request_duration_seconds_count{endpoint=\"app_feedbacks\",mode=\"blocking\"} 2",
        )
        .await;
}

#[tokio::test]
async fn head_is_answered_with_headers_only_on_the_wire() {
    let _bound = bound(120);
    let env = Env::start().await;
    let auth = format!("Authorization: Bearer {}", token("acme", None));
    // A cached endpoint (answered by the gateway) and a proxied one (answered by Dify).
    for path in ["/v1/parameters", "/v1/app/feedbacks"] {
        let get = raw_exchange(
            env.gw.addr,
            format!("GET {path} HTTP/1.1\r\nHost: gw\r\n{auth}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        let head = raw_exchange(
            env.gw.addr,
            format!("HEAD {path} HTTP/1.1\r\nHost: gw\r\n{auth}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
        let (head_headers, head_body) = head.split_once("\r\n\r\n").unwrap();
        assert_eq!(head_body, "", "{path}: HEAD carried a body");
        let (_, get_body) = get.split_once("\r\n\r\n").unwrap();
        assert!(!get_body.is_empty(), "{path}: {get}");
        let length = head_headers.lines().find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        });
        if let Some(n) = length {
            assert_eq!(
                n.trim().parse::<usize>().unwrap(),
                get_body.len(),
                "{path}: HEAD's length is GET's"
            );
        }
    }
}
