//! The tenant listener's connections: TLS with HTTP/2 by ALPN (SSE streamed frame by frame over
//! HTTP/2, HTTP/1.1 over TLS too), the certificate re-read on SIGHUP, idle keep-alive connections
//! closed (a preflight's included), and slow request heads answered 408 and closed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A gateway serving TLS with `cert` (its files in `dir`), with `server_extra` besides.
async fn tls_env(dir: &std::path::Path, cert: &tls::Cert, server_extra: &str) -> Env {
    let (c, k) = cert.write(dir);
    Env::with(Setup {
        server_extra: format!(
            "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n{server_extra}",
            c.display(),
            k.display()
        ),
        ..Setup::default()
    })
    .await
}

fn completion_body() -> &'static [u8] {
    br#"{"inputs": {"topic": "tea"}, "response_mode": "streaming", "user": "bob"}"#
}

#[tokio::test]
async fn sse_streams_over_http2_and_tls_frame_by_frame() {
    let _bound = bound(60);
    let dir = tempfile::tempdir().unwrap();
    let cert = tls::Cert::localhost();
    let env = tls_env(dir.path(), &cert, "").await;
    let tls = cert.connect(env.gw.addr, &[b"h2", b"http/1.1"]).await.unwrap();
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(&b"h2"[..]),
        "h2 was not chosen"
    );
    let (client, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let req = http::Request::post(format!(
        "https://localhost:{}/v1/completion-messages",
        env.gw.addr.port()
    ))
    .header("authorization", bearer(&token("acme", None)))
    .header("content-type", "application/json")
    .header("x-sim-events", "8")
    .header("x-sim-event-interval-ms", "150")
    .body(())
    .unwrap();
    let (answer, mut send) = client.send_request(req, false).unwrap();
    send.send_data(bytes::Bytes::from_static(completion_body()), true)
        .unwrap();
    let answer = answer.await.unwrap();
    assert_eq!(answer.status(), 200);
    assert!(
        answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = answer.into_body();
    let (mut text, mut arrivals) = (String::new(), Vec::new());
    let start = Instant::now();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        let piece = String::from_utf8_lossy(&chunk).to_string();
        if piece.replace(' ', "").contains("\"event\":\"message\"") {
            arrivals.push(start.elapsed());
        }
        text.push_str(&piece);
    }
    assert!(text.contains("message_end"), "{text}");
    assert!(arrivals.len() >= 4, "{arrivals:?}");
    assert!(
        arrivals[arrivals.len() - 1] - arrivals[0] >= Duration::from_millis(500),
        "the stream came in one piece: {arrivals:?}"
    );
    // The scoped user reached Dify over HTTP/2 as over HTTP/1.
    let seen = env.sim.requests();
    let completion = seen.iter().find(|r| r.path == "/v1/completion-messages").unwrap();
    let user = completion.user.clone().unwrap_or_default();
    assert!(user.starts_with("acme") && user.ends_with("bob"), "{user}");
}

#[tokio::test]
async fn http1_over_tls_and_the_certificate_is_reread_on_sighup() {
    let _bound = bound(60);
    let dir = tempfile::tempdir().unwrap();
    let first = tls::Cert::localhost();
    let env = tls_env(dir.path(), &first, "").await;
    let ask = |cert: &tls::Cert| {
        let (cert, addr) = (cert.clone(), env.gw.addr);
        async move {
            let mut tls = cert.connect(addr, &[b"http/1.1"]).await?;
            let auth = bearer(&token("acme", None));
            let req = format!(
                "GET /v1/info HTTP/1.1\r\nHost: localhost\r\nAuthorization: {auth}\r\nConnection: close\r\n\r\n"
            );
            tls.write_all(req.as_bytes()).await?;
            let mut out = String::new();
            tls.read_to_string(&mut out).await.ok();
            Ok::<String, std::io::Error>(out)
        }
    };
    let answer = ask(&first).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A new certificate in the same files, then SIGHUP: new connections get it.
    let second = tls::Cert::localhost();
    second.write(dir.path());
    assert!(
        ask(&second).await.is_err(),
        "the second certificate served before the reload"
    );
    env.gw.signal("-HUP");
    let answer = eventually_async(10, "the new certificate", || async { ask(&second).await.ok() }).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(ask(&first).await.is_err(), "the old certificate is still served");

    // A broken pair on reload: the old one stays.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").unwrap();
    env.gw.signal("-HUP");
    eventually(10, "the failed reload logged", || {
        env.gw
            .log()
            .contains("TLS certificate reload failed")
            .then_some(())
    })
    .await;
    assert!(ask(&second).await.unwrap().starts_with("HTTP/1.1 200"));
}

/// Reads until the peer closes; `None` when it is still open after `limit`.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&out).to_string()),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn idle_and_slow_connections_are_closed() {
    let _bound = bound(60);
    let env = Env::with(Setup {
        server_extra: "keepalive_timeout = \"1s\"\nheader_timeout = \"1s\"\n".into(),
        ..Setup::default()
    })
    .await;
    let addr = env.gw.addr;

    // A preflight, then nothing: the connection is closed after the keep-alive time.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let preflight = "OPTIONS /v1/info HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: GET\r\n\r\n";
    s.write_all(preflight.as_bytes()).await.unwrap();
    let start = Instant::now();
    let seen = closed_within(&mut s, Duration::from_secs(6)).await;
    let seen = seen.expect("an idle connection after a preflight stayed open");
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(
        start.elapsed() >= Duration::from_millis(900),
        "closed too early: {:?}",
        start.elapsed()
    );

    // Two requests on one connection are fine when each comes in time.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let get = format!(
        "GET /v1/info HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n\r\n",
        bearer(&token("acme", None))
    );
    for _ in 0..2 {
        s.write_all(get.as_bytes()).await.unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).await.unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // A head that never ends: 408 in Dify's envelope, then closed.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /v1/info HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let seen = closed_within(&mut s, Duration::from_secs(6))
        .await
        .expect("a slow head was waited for");
    assert!(seen.starts_with("HTTP/1.1 408"), "{seen}");
    let body: serde_json::Value = serde_json::from_str(seen.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["code"], "request_timeout");
    assert_eq!(body["status"], 408);

    // A head trickled byte by byte never gets more than its time.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let start = Instant::now();
    let trickle = async {
        for b in b"GET /v1/info HTTP/1.1\r\nHost: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n".iter() {
            if s.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), trickle).await;
    let seen = closed_within(&mut s, Duration::from_secs(3))
        .await
        .expect("the trickle was waited for");
    assert!(seen.starts_with("HTTP/1.1 408"), "{seen}");
    assert!(start.elapsed() < Duration::from_secs(5));
}
