//! Connection hygiene on the tenant listener (before request step 1): wraps the proxy so that every
//! HTTP/1 request head is read under `server.header_timeout` (a slow one is answered 408 and the
//! connection closed) and a kept-alive connection is closed after `server.keepalive_timeout` of
//! idleness, whoever opened it and whatever it asked before (a preflight included). The head read
//! here is handed to Pingora as it is, and the request goes through the proxy unchanged. HTTP/2
//! connections (TLS, ALPN h2) go straight to the proxy, with the idle limit as HTTP/2's own.

use super::head::{Head, read_head};
use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ServerApp};
use pingora::protocols::ALPN;
use pingora::protocols::Stream;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The answer to a head that did not come in time, and to one that grew too large, in Dify's
/// envelope.
fn refusal(status: u16, reason: &str, code: &str, message: &str) -> String {
    let body = format!("{{\"code\": \"{code}\", \"message\": \"{message}\", \"status\": {status}}}\n");
    format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The proxy behind connection hygiene.
pub struct Hygiene<A> {
    /// The proxy.
    pub inner: Arc<A>,
    /// Idle time allowed between requests.
    pub keepalive: Duration,
    /// Time a request head may take.
    pub header: Duration,
}

impl<A> Hygiene<A> {
    async fn refuse(mut stream: Stream, answer: String) {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.flush().await;
        let _ = stream.shutdown().await;
    }
}

#[async_trait]
impl<A> ServerApp for Hygiene<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new(self: &Arc<Self>, mut stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return self.inner.process_new(stream, shutdown).await;
        }
        let mut idle = None;
        let mut settings = None;
        loop {
            let mut stop = shutdown.clone();
            let head = tokio::select! {
                h = read_head(&mut stream, idle, self.header) => h,
                _ = stop.changed() => return None,
            };
            let prefix = match head {
                Head::Ready(prefix) => prefix,
                Head::Idle => return None,
                Head::Slow => {
                    let msg = "The request head was not received in time";
                    Self::refuse(stream, refusal(408, "Request Timeout", "request_timeout", msg)).await;
                    return None;
                }
                Head::TooLarge => {
                    let msg = "The request head is larger than 64 KiB";
                    let answer = refusal(431, "Request Header Fields Too Large", "request_too_large", msg);
                    Self::refuse(stream, answer).await;
                    return None;
                }
            };
            let mut session = ServerSession::new_http1(stream);
            if let Some(s) = settings.take() {
                pingora::apps::HttpPersistentSettings::apply_to_session(s, &mut session);
            }
            session.set_keepalive(Some(self.keepalive.as_secs().max(1)));
            session.set_pipelined_prefix(prefix);
            let reused = self.inner.process_new_http(session, shutdown).await?;
            let (next, kept) = reused.consume();
            (stream, settings, idle) = (next, kept, Some(self.keepalive));
        }
    }

    async fn cleanup(&self) {
        self.inner.http_cleanup().await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::refusal;

    #[test]
    fn the_refusals_length_is_their_bodys() {
        let a = refusal(408, "Request Timeout", "request_timeout", "late");
        let (head, body) = a.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("Content-Length: {}\r\n", body.len())),
            "{a}"
        );
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["status"], 408);
    }
}
