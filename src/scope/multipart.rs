//! Rewrites the `user` field of a `multipart/form-data` upload while the body streams through
//! (request step 4, `request_body_filter`). File parts pass chunk by chunk; only part headers
//! (at most 16 KiB) and the `user` value (at most 4 KiB) are held. Without a `user` field the
//! tenant's own `DEFAULT-USER` is added, so no upload lands in Dify's end user shared by everyone.

use super::{DEFAULT_USER, scoped};

const MAX_HEADERS: usize = 16 * 1024;
const MAX_USER: usize = 4 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Inside a part that passes unchanged (or the preamble).
    Pass,
    /// Inside the `user` part: its value is held.
    User,
    /// A delimiter was seen; waiting to know whether it closes the body.
    AfterDelimiter,
    /// Reading a part's headers.
    Headers,
    /// After the closing delimiter.
    Epilogue,
}

/// A body the rewriter could not parse safely.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("multipart body could not be read")]
pub struct Malformed;

/// Streaming rewriter of one upload body.
#[derive(Debug)]
pub struct MultipartScoper {
    delim: Vec<u8>,
    tenant: String,
    pending: Vec<u8>,
    state: State,
    skip: usize,
    saw_user: bool,
    /// The `user` Dify will see, once known.
    pub dify_user: Option<String>,
}

/// The boundary of a `multipart/form-data` content type.
pub fn boundary(content_type: &str) -> Option<&str> {
    let (mime, params) = content_type.split_once(';')?;
    if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim().eq_ignore_ascii_case("boundary"))
            .then(|| v.trim().trim_matches('"'))
            .filter(|b| !b.is_empty())
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl MultipartScoper {
    /// A rewriter for a body with `boundary`, on behalf of `tenant`.
    pub fn new(boundary: &str, tenant: &str) -> Self {
        Self {
            delim: format!("\r\n--{boundary}").into_bytes(),
            tenant: tenant.to_string(),
            // The first delimiter has no CRLF before it: add one, and drop it from the output.
            pending: b"\r\n".to_vec(),
            state: State::Pass,
            skip: 2,
            saw_user: false,
            dify_user: None,
        }
    }

    /// Feeds one chunk; what may already be sent is appended to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
        self.pending.extend_from_slice(chunk);
        while self.step(out)? {}
        Ok(())
    }

    /// Ends the body: everything held is sent.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), Malformed> {
        if self.state != State::Epilogue {
            return Err(Malformed);
        }
        let rest = std::mem::take(&mut self.pending);
        self.emit(&rest, out);
        Ok(())
    }

    fn emit(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let drop = self.skip.min(bytes.len());
        self.skip -= drop;
        out.extend_from_slice(&bytes[drop..]);
    }

    /// Emits `pending[..n]` and removes it.
    fn emit_front(&mut self, n: usize, out: &mut Vec<u8>) {
        let front: Vec<u8> = self.pending.drain(..n).collect();
        self.emit(&front, out);
    }

    /// One transition; false when more input is needed.
    fn step(&mut self, out: &mut Vec<u8>) -> Result<bool, Malformed> {
        let dl = self.delim.len();
        match self.state {
            State::Pass => match find(&self.pending, &self.delim) {
                Some(i) => {
                    self.emit_front(i, out);
                    self.state = State::AfterDelimiter;
                    Ok(true)
                }
                None => {
                    let keep = self.pending.len().min(dl - 1);
                    self.emit_front(self.pending.len() - keep, out);
                    Ok(false)
                }
            },
            State::User => match find(&self.pending, &self.delim) {
                Some(i) => {
                    let value = String::from_utf8_lossy(&self.pending[..i]).into_owned();
                    self.pending.drain(..i);
                    let user = scoped(&self.tenant, &value);
                    self.emit(user.as_bytes(), out);
                    self.dify_user = Some(user);
                    self.state = State::AfterDelimiter;
                    Ok(true)
                }
                None if self.pending.len() > MAX_USER + dl => Err(Malformed),
                None => Ok(false),
            },
            State::AfterDelimiter => {
                if self.pending.len() < dl + 2 {
                    return Ok(false);
                }
                if &self.pending[dl..dl + 2] == b"--" {
                    if !self.saw_user {
                        self.inject_default_user(out);
                    }
                    self.state = State::Epilogue;
                } else {
                    self.emit_front(dl, out);
                    self.state = State::Headers;
                }
                Ok(true)
            }
            State::Headers => match find(&self.pending, b"\r\n\r\n") {
                Some(i) => {
                    let is_user = is_user_field(&self.pending[..i]);
                    self.emit_front(i + 4, out);
                    if is_user && !self.saw_user {
                        self.saw_user = true;
                        self.state = State::User;
                    } else {
                        self.state = State::Pass;
                    }
                    Ok(true)
                }
                None if self.pending.len() > MAX_HEADERS => Err(Malformed),
                None => Ok(false),
            },
            State::Epilogue => {
                let n = self.pending.len();
                self.emit_front(n, out);
                Ok(false)
            }
        }
    }

    fn inject_default_user(&mut self, out: &mut Vec<u8>) {
        let user = scoped(&self.tenant, DEFAULT_USER);
        let boundary = String::from_utf8_lossy(&self.delim[4..]).into_owned();
        let part = format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\n{user}");
        self.emit(part.as_bytes(), out);
        self.saw_user = true;
        self.dify_user = Some(user);
    }
}

/// Whether part headers describe the plain `user` field (not a file).
fn is_user_field(headers: &[u8]) -> bool {
    let text = String::from_utf8_lossy(headers);
    text.split("\r\n").any(|line| {
        let Some((name, value)) = line.split_once(':') else {
            return false;
        };
        if !name.trim().eq_ignore_ascii_case("content-disposition") {
            return false;
        }
        let params: Vec<(String, String)> = value
            .split(';')
            .skip(1)
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| {
                (
                    k.trim().to_ascii_lowercase(),
                    v.trim().trim_matches('"').to_string(),
                )
            })
            .collect();
        params.iter().any(|(k, v)| k == "name" && v == "user") && !params.iter().any(|(k, _)| k == "filename")
    })
}

#[cfg(test)]
#[path = "multipart_tests.rs"]
mod tests;
