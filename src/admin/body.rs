//! Reading admin request bodies: capped, and a body that breaks off (a read error) is refused, never
//! parsed as if it had ended.

use super::error;
use http::Response;
use pingora::protocols::http::ServerSession;

/// Largest admin request body read (1 MiB).
pub const MAX_BODY: usize = 1 << 20;

/// Reads the whole body, at most `cap` bytes; the refusal to answer otherwise.
pub async fn read(session: &mut ServerSession, cap: usize) -> Result<Vec<u8>, Box<Response<Vec<u8>>>> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > cap {
                    let msg = format!("Request body is larger than {cap} bytes");
                    return Err(Box::new(error(413, "request_too_large", &msg)));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                tracing::debug!(message = "Admin request body broke off.", error = %e);
                let msg = "The request body could not be read to its end";
                return Err(Box::new(error(400, "bad_request", msg)));
            }
        }
    }
}
