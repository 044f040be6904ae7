//! Streams pass through as they are produced: SSE events and audio reach the client before Dify has
//! finished, request bodies stream to Dify under the size cap, and upstream failures and timeouts are
//! answered in Dify's envelope.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use dify_sim::TaskOutcome;
use futures_util::StreamExt;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[tokio::test]
async fn first_sse_event_arrives_before_dify_finishes() {
    let _bound = bound(120);
    let env = Env::start().await;
    let resp = env
        .http
        .post(env.url("/v1/completion-messages"))
        .header("authorization", bearer(&token("acme", None)))
        .header("x-sim-events", "6")
        .header("x-sim-event-interval-ms", "400")
        .json(&json!({"inputs": {"topic": "tea"}, "response_mode": "streaming", "user": "bob"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-accel-buffering"], "no");
    let mut body = resp.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("\n\n") {
        let chunk = body
            .next()
            .await
            .expect("stream ended before the first event")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.starts_with("data: {\"event\":\"message\""), "{seen}");
    let tasks = env.sim.tasks();
    assert_eq!(tasks.len(), 1);
    assert!(
        matches!(tasks[0].outcome, TaskOutcome::Running),
        "Dify had already finished: the stream was buffered"
    );
    while let Some(chunk) = body.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let events = data_events(&seen);
    assert_eq!(events.iter().filter(|e| e["event"] == "message").count(), 6);
    assert_eq!(events.last().unwrap()["event"], "message_end");
    let m = env
        .gw
        .metrics_contain("dify_gateway_request_duration_seconds_count{endpoint=\"completion_messages\",mode=\"streaming\"} 1")
        .await;
    assert!(m.contains("dify_gateway_active_streams 0"), "{m}");
}

#[tokio::test]
async fn audio_streams_through() {
    let _bound = bound(120);
    let env = Env::start().await;
    // The simulator writes each audio chunk 150 ms after the last one.
    let resp = env
        .http
        .post(env.url("/v1/text-to-audio"))
        .header("authorization", bearer(&token("acme", None)))
        .header("x-sim-event-interval-ms", "150")
        .json(&json!({"text": "Green tea is rich in catechins.", "user": "bob"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "audio/mpeg");
    assert!(
        resp.headers().get("content-length").is_none(),
        "audio was buffered into one body"
    );
    let mut arrivals = Vec::new();
    let mut body = resp.bytes_stream();
    while let Some(c) = body.next().await {
        assert!(!c.unwrap().is_empty());
        arrivals.push(Instant::now());
    }
    // Passed on as written: the first bytes arrive long before the last are sent.
    assert!(arrivals.len() >= 3, "{} chunks", arrivals.len());
    let spread = *arrivals.last().unwrap() - arrivals[0];
    let written_over = Duration::from_millis(150 * (arrivals.len() as u64 - 1));
    assert!(
        spread >= written_over / 2,
        "chunks arrived within {spread:?} of each other"
    );
}

#[tokio::test]
async fn an_upload_reaches_dify_before_its_sender_has_finished() {
    let _bound = bound(120);
    let env = Env::start().await;
    let received = env.sim.body_bytes();
    let before = received.load(Ordering::Acquire);
    // The last MiB is only sent once Dify has received some of the first: a gateway that held the
    // body until its end would never get there (the stream then fails after 10 s).
    let stream = futures_util::stream::unfold(0u32, move |i| {
        let received = received.clone();
        async move {
            if i == 8 {
                return None;
            }
            if i == 7 {
                let seen = async {
                    while received.load(Ordering::Acquire) < before + (1 << 20) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                };
                if tokio::time::timeout(Duration::from_secs(10), seen).await.is_err() {
                    let e = std::io::Error::other("the body did not reach Dify while being sent");
                    return Some((Err(e), 8));
                }
            }
            Some((Ok::<_, std::io::Error>(vec![b'x'; 1 << 20]), i + 1))
        }
    });
    let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(stream))
        .file_name("clip.mp4")
        .mime_str("video/mp4")
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("user", "bob")
        .part("file", part);
    let resp = env
        .http
        .post(env.url("/v1/files/upload"))
        .header("authorization", bearer(&token("acme", None)))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.json::<serde_json::Value>().await.unwrap()["size"], 8 << 20);
}

fn upload_form(size: usize) -> reqwest::multipart::Form {
    let part = reqwest::multipart::Part::bytes(vec![b'x'; size])
        .file_name("clip.mp4")
        .mime_str("video/mp4")
        .unwrap();
    reqwest::multipart::Form::new()
        .text("user", "bob")
        .part("file", part)
}

#[tokio::test]
async fn uploads_stream_through_under_the_size_cap() {
    let _bound = bound(120);
    let env = Env::start().await;
    let auth = bearer(&token("acme", None));
    // 30 MiB, sent chunked (a stream body has no length): well under the 40MB cap.
    let size = 30 << 20;
    let stream = futures_util::stream::iter((0..30).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 1 << 20])));
    let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(stream))
        .file_name("clip.mp4")
        .mime_str("video/mp4")
        .unwrap();
    let form = reqwest::multipart::Form::new()
        .text("user", "bob")
        .part("file", part);
    let resp = env
        .http
        .post(env.url("/v1/files/upload"))
        .header("authorization", &auth)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    assert_eq!(status, 201, "{}", resp.text().await.unwrap());
    assert_eq!(resp.json::<serde_json::Value>().await.unwrap()["size"], size);

    // Over the cap with a declared length: refused before Dify.
    let before = env.upstream_count();
    let resp = env
        .http
        .post(env.url("/v1/files/upload"))
        .header("authorization", &auth)
        .multipart(upload_form(41 << 20))
        .send()
        .await
        .unwrap();
    assert_envelope(resp, 413, "request_too_large").await;
    assert_eq!(env.upstream_count(), before);

    // Over the cap while streaming: cut off with 413.
    let stream = futures_util::stream::iter((0..48).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 1 << 20])));
    let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(stream))
        .file_name("big.mp4")
        .mime_str("video/mp4")
        .unwrap();
    let form = reqwest::multipart::Form::new().part("file", part);
    match env
        .http
        .post(env.url("/v1/files/upload"))
        .header("authorization", &auth)
        .multipart(form)
        .send()
        .await
    {
        Ok(resp) => {
            assert_envelope(resp, 413, "request_too_large").await;
        }
        // The gateway may close the connection while the client is still sending.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    env.gw
        .metrics_contain("endpoint=\"file_upload\",method=\"POST\",status_class=\"4xx\",tenant=\"acme\"} 2")
        .await;
}

#[tokio::test]
async fn dify_unreachable_is_502_in_the_envelope() {
    let _bound = bound(120);
    let dead = format!("http://127.0.0.1:{}", free_port());
    let env = Env::with(Setup {
        upstream_url: Some(dead),
        ..Setup::default()
    })
    .await;
    let resp = env
        .http
        .get(env.url("/v1/info"))
        .header("authorization", bearer(&token("acme", None)))
        .send()
        .await
        .unwrap();
    let body = assert_envelope(resp, 502, "bad_gateway").await;
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "internal address leaked: {body}"
    );
    let ready = env.http.get(env.gw.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    env.gw
        .metrics_contain("dify_gateway_upstream_errors_total{kind=\"refused\"} 1")
        .await;
}

#[tokio::test]
async fn slow_dify_is_504_and_the_default_timeout_waits() {
    let _bound = bound(120);
    let env = Env::with(Setup {
        upstream_extra: "read_timeout = \"300ms\"".into(),
        ..Setup::default()
    })
    .await;
    let auth = bearer(&token("acme", None));
    let resp = env
        .http
        .post(env.url("/v1/completion-messages"))
        .header("authorization", &auth)
        .header("x-sim-first-event-delay-ms", "1500")
        .json(&json!({"inputs": {"topic": "tea"}, "response_mode": "blocking", "user": "bob"}))
        .send()
        .await
        .unwrap();
    assert_envelope(resp, 504, "gateway_timeout").await;

    // With the default read timeout (1200 s) the same slow answer arrives.
    let env = Env::start().await;
    let resp = env
        .http
        .post(env.url("/v1/completion-messages"))
        .header("authorization", &auth)
        .header("x-sim-first-event-delay-ms", "1500")
        .json(&json!({"inputs": {"topic": "tea"}, "response_mode": "blocking", "user": "bob"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn an_https_dify_is_reached_over_tls_and_its_certificate_checked() {
    let _bound = bound(120);
    let sim = dify_sim::Simulator::start("127.0.0.1:0".parse().unwrap(), Setup::default().sim)
        .await
        .unwrap();
    let cert = tls::Cert::localhost();
    let tls = tls::TlsTerminator::start(&cert, sim.addr()).await;
    let origin = format!("https://localhost:{}", tls.addr.port());
    // A certificate no public authority signed: verified, it is refused (502, counted as tls).
    let verified = Env::with(Setup {
        upstream_url: Some(origin.clone()),
        ..Setup::default()
    })
    .await;
    let tok = token("acme", None);
    let r = verified
        .http
        .get(verified.url("/v1/app/feedbacks"))
        .header("authorization", bearer(&tok))
        .send()
        .await
        .unwrap();
    assert_envelope(r, 502, "bad_gateway").await;
    verified
        .gw
        .metrics_contain("dify_gateway_upstream_errors_total{kind=\"tls\"} 1")
        .await;
    // With verify_tls = false the same origin is used over TLS.
    let trusting = Env::with(Setup {
        upstream_url: Some(origin),
        upstream_extra: "verify_tls = false".into(),
        ..Setup::default()
    })
    .await;
    let before = sim.requests().len();
    let r = trusting
        .http
        .get(trusting.url("/v1/app/feedbacks"))
        .header("authorization", bearer(&tok))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = sim.requests();
    assert_eq!(
        seen.len(),
        before + 1,
        "the request did not go through the TLS origin"
    );
    assert_eq!(
        seen.last().unwrap().header("host"),
        Some(format!("localhost:{}", tls.addr.port()).as_str())
    );
}
