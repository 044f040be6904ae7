//! Reading an HTTP/1 request head off a new or kept-alive connection under two clocks (before
//! request step 1): how long the connection may sit idle before a request starts, and how long a
//! started head may take to complete. Pure apart from the reads.

use bytes::BytesMut;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::{Instant, timeout_at};

/// Bytes past which a head is handed on as it is (the HTTP parser refuses it).
const MAX_HEAD: usize = 64 * 1024;

/// What came of waiting for a request head.
#[derive(Debug, PartialEq, Eq)]
pub enum Head {
    /// The head is complete (or the peer stopped sending): parse it.
    Ready(BytesMut),
    /// Nothing arrived while the connection was idle (or the peer closed it): close quietly.
    Idle,
    /// A head started (or a new connection sent nothing) and did not complete in time: 408.
    Slow,
}

/// The offset just past the blank line ending a head, if `buf` holds one.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| buf.windows(2).position(|w| w == b"\n\n").map(|i| i + 2))
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
        Err(_) if idle.is_some() => return Head::Idle,
        Err(_) => return Head::Slow,
        Ok(Ok(0)) | Ok(Err(_)) => return Head::Idle,
        Ok(Ok(_)) => {}
    }
    let deadline = if idle.is_some() {
        Instant::now() + limit
    } else {
        start + limit
    };
    loop {
        // Blank lines before a request line are allowed (RFC 9112 §2.2): not a head yet.
        let lead = buf.iter().take_while(|b| **b == b'\r' || **b == b'\n').count();
        if buf.len() > MAX_HEAD || (lead < buf.len() && head_end(&buf[lead..]).is_some()) {
            return Head::Ready(buf);
        }
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
            Head::Slow
        );
    }
}
