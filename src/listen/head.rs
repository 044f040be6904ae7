//! Reading an HTTP/1 request head off a new or kept-alive connection under two clocks (before
//! request step 1): how long the connection may sit idle before a request starts, and how long a
//! started head may take to complete. Pure apart from the reads.

use bytes::BytesMut;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::{Instant, timeout_at};

/// Bytes past which a head that has not ended is refused (431).
const MAX_HEAD: usize = 64 * 1024;

/// What came of waiting for a request head.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// The head is complete (or the peer stopped sending): parse it.
    Ready(BytesMut),
    /// Nothing arrived while the connection was idle, a new connection sent nothing in time, or
    /// the peer closed it: close quietly (a pre-opened connection must not read a 408 as the answer
    /// to the request it sends just then).
    Idle,
    /// A head started and did not complete in time: 408.
    Slow,
    /// A head grew past 64 KiB without ending: 431.
    TooLarge,
}

/// The offset just past the blank line ending a head, if `buf` holds one.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    memchr::memmem::find(buf, b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| memchr::memmem::find(buf, b"\n\n").map(|i| i + 2))
}

/// Reads until a complete head. The first byte must come within `idle` (`None`: a new connection,
/// whose whole head must come within `limit` of now); then the head must complete within `limit`
/// of its first byte.
pub async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    idle: Option<Duration>,
    limit: Duration,
) -> Head {
    let mut buf = BytesMut::with_capacity(4096);
    let start = Instant::now();
    let first_by = start + idle.unwrap_or(limit);
    match timeout_at(first_by, stream.read_buf(&mut buf)).await {
        Err(_) | Ok(Ok(0)) | Ok(Err(_)) => return Head::Idle,
        Ok(Ok(_)) => {}
    }
    let deadline = if idle.is_some() {
        Instant::now() + limit
    } else {
        start + limit
    };
    // Where the search for the blank line goes on from: each read is scanned once (plus the
    // three bytes before it, where the end may have begun).
    let mut scanned: usize = 0;
    loop {
        // Blank lines before a request line are allowed (RFC 9112 §2.2): not a head yet.
        let lead = buf.iter().take_while(|b| **b == b'\r' || **b == b'\n').count();
        let from = lead.max(scanned.saturating_sub(3));
        if lead < buf.len() && head_end(&buf[from..]).is_some() {
            return Head::Ready(buf);
        }
        if buf.len() > MAX_HEAD {
            return Head::TooLarge;
        }
        scanned = buf.len();
        match timeout_at(deadline, stream.read_buf(&mut buf)).await {
            Err(_) => return Head::Slow,
            Ok(Ok(0)) | Ok(Err(_)) => return Head::Ready(buf),
            Ok(Ok(_)) => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_head_in_pieces_completes_and_a_stalled_one_is_slow() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let reader = tokio::spawn(async move {
            let h = read_head(&mut server, None, Duration::from_millis(500)).await;
            (h, server)
        });
        client.write_all(b"\r\nbody").await.unwrap();
        let (h, mut server) = reader.await.unwrap();
        assert!(
            matches!(h, Head::Ready(ref b) if b.starts_with(b"GET / HTTP/1.1")),
            "{h:?}"
        );
        client.write_all(b"GET / HTTP/1.1\r\nHost:").await.unwrap();
        assert_eq!(
            read_head(
                &mut server,
                Some(Duration::from_secs(5)),
                Duration::from_millis(50)
            )
            .await,
            Head::Slow
        );
        assert_eq!(head_end(b"a\r\n\r\nb"), Some(5));
    }

    #[tokio::test]
    async fn idle_connections_close_quietly_and_silent_new_ones_are_slow() {
        let (_client, mut server) = tokio::io::duplex(64);
        assert_eq!(
            read_head(
                &mut server,
                Some(Duration::from_millis(20)),
                Duration::from_secs(5)
            )
            .await,
            Head::Idle
        );
        assert_eq!(
            read_head(&mut server, None, Duration::from_millis(20)).await,
            Head::Idle
        );
    }

    #[tokio::test]
    async fn a_head_that_never_ends_is_too_large_and_its_end_is_found_across_reads() {
        let (mut client, mut server) = tokio::io::duplex(256 * 1024);
        let filler = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(70 * 1024));
        client.write_all(filler.as_bytes()).await.unwrap();
        let h = read_head(&mut server, None, Duration::from_secs(5)).await;
        assert_eq!(h, Head::TooLarge);
        let (mut client, mut server) = tokio::io::duplex(1024);
        let reader = tokio::spawn(async move { read_head(&mut server, None, Duration::from_secs(5)).await });
        for piece in [&b"GET / HTTP/1.1\r\nHost: x\r"[..], b"\n", b"\r", b"\n"] {
            client.write_all(piece).await.unwrap();
            tokio::task::yield_now().await;
        }
        assert!(matches!(reader.await.unwrap(), Head::Ready(_)));
    }
}
