//! Rewrites the `user` field of a `multipart/form-data` upload while the body streams through
//! (request step 7, `request_body_filter`). File parts pass chunk by chunk; only part headers
//! (at most 16 KiB) and the `user` value (at most 4 KiB) are held. Without a `user` field the
//! tenant's own `DEFAULT-USER` is added, so no upload lands in Dify's end user shared by everyone.
//!
//! Delimiters are read strictly (RFC 2046 forbids the boundary inside content): the body must start
//! with the first delimiter (no preamble), every `--boundary` before the closing one must follow a
//! CRLF and be followed by CRLF or `--`. Anything werkzeug could split differently is refused.

use super::params;
use super::user::{DEFAULT_USER, scoped};

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
    /// Bytes at the front of `pending` already searched for the current state's needle.
    scanned: usize,
    /// The first delimiter has been seen (before it, nothing may come).
    started: bool,
    /// The `user` Dify will see, once known.
    pub dify_user: Option<String>,
}

/// The boundary of a `multipart/form-data` content type. Parameters are split outside quotes; an
/// extended (`boundary*=`) or invalid boundary (RFC 2046: 1–70 characters of a fixed set) gives none,
/// so that a body whose boundary Dify might read differently is refused rather than passed on.
pub fn boundary(content_type: &str) -> Option<String> {
    let p = params::parse(content_type)?;
    if !p.head.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    p.get("boundary").map(str::to_string).filter(|b| {
        (1..=70).contains(&b.len())
            && !b.ends_with(' ')
            && b.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&c))
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
            scanned: 0,
            started: false,
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
        self.scanned = self.scanned.saturating_sub(n);
        self.emit(&front, out);
    }

    /// One transition; false when more input is needed.
    fn step(&mut self, out: &mut Vec<u8>) -> Result<bool, Malformed> {
        match self.state {
            State::Pass => self.pass(out),
            State::User => self.user(out),
            State::AfterDelimiter => self.after_delimiter(out),
            State::Headers => self.headers(out),
            State::Epilogue => {
                let n = self.pending.len();
                self.emit_front(n, out);
                Ok(false)
            }
        }
    }

    /// Moves to `state`, with nothing of the held bytes searched yet.
    fn enter(&mut self, state: State) {
        self.state = state;
        self.scanned = 0;
    }

    /// Inside a part that passes unchanged: everything before the next delimiter goes out. Before
    /// the first delimiter nothing may come: a preamble is refused.
    fn pass(&mut self, out: &mut Vec<u8>) -> Result<bool, Malformed> {
        if !self.started {
            let n = self.pending.len().min(self.delim.len());
            if self.pending[..n] != self.delim[..n] {
                return Err(Malformed);
            }
            if n < self.delim.len() {
                return Ok(false);
            }
            self.started = true;
        }
        match self.next_delimiter()? {
            Some(i) => {
                self.emit_front(i, out);
                self.enter(State::AfterDelimiter);
                Ok(true)
            }
            None => {
                let keep = self.pending.len().min(self.delim.len() - 1);
                self.emit_front(self.pending.len() - keep, out);
                Ok(false)
            }
        }
    }

    /// Inside the `user` part: its value is held until the delimiter, then sent scoped.
    fn user(&mut self, out: &mut Vec<u8>) -> Result<bool, Malformed> {
        match self.next_delimiter()? {
            Some(i) => {
                let value = String::from_utf8_lossy(&self.pending[..i]).into_owned();
                self.pending.drain(..i);
                let user = scoped(&self.tenant, &value);
                self.emit(user.as_bytes(), out);
                self.dify_user = Some(user);
                self.enter(State::AfterDelimiter);
                Ok(true)
            }
            None if self.pending.len() > MAX_USER + self.delim.len() => Err(Malformed),
            None => Ok(false),
        }
    }

    /// After a delimiter: `--` closes the body (adding the default user if none was sent), CRLF
    /// starts a part's headers, anything else is refused (werkzeug would read it as data).
    fn after_delimiter(&mut self, out: &mut Vec<u8>) -> Result<bool, Malformed> {
        let dl = self.delim.len();
        if self.pending.len() < dl + 2 {
            return Ok(false);
        }
        match &self.pending[dl..dl + 2] {
            b"--" => {
                if !self.saw_user {
                    self.inject_default_user(out);
                }
                self.enter(State::Epilogue);
            }
            b"\r\n" => {
                self.emit_front(dl, out);
                self.enter(State::Headers);
            }
            _ => return Err(Malformed),
        }
        Ok(true)
    }

    /// A part's headers, held whole (at most 16 KiB): every `user` part is scoped, not just the first.
    fn headers(&mut self, out: &mut Vec<u8>) -> Result<bool, Malformed> {
        match self.find_from_scanned(b"\r\n\r\n") {
            Some(i) => {
                if find(&self.pending[..i + 4], &self.delim[2..]).is_some() {
                    return Err(Malformed);
                }
                let is_user = is_user_field(&self.pending[..i])?;
                self.emit_front(i + 4, out);
                self.saw_user |= is_user;
                self.enter(if is_user { State::User } else { State::Pass });
                Ok(true)
            }
            None if self.pending.len() > MAX_HEADERS => Err(Malformed),
            None => Ok(false),
        }
    }

    /// Where the next `CRLF--boundary` starts in what is held. The boundary anywhere else (after a
    /// bare LF or CR, or inside a line) is one werkzeug might read as a delimiter or as data where
    /// this rewriter would not: the body is refused.
    fn next_delimiter(&mut self) -> Result<Option<usize>, Malformed> {
        let dashed = &self.delim[2..];
        // Only what arrived since the last look (and a needle's length before it) is searched, so
        // a body sent in tiny chunks costs O(bytes), not O(bytes x held).
        let from = self.scanned.saturating_sub(dashed.len() + 2);
        if let Some(at) = find(&self.pending[from..], dashed).map(|i| i + from) {
            return match at.checked_sub(2).map(|b| &self.pending[b..at]) {
                Some(b"\r\n") => Ok(Some(at - 2)),
                _ => Err(Malformed),
            };
        }
        self.scanned = self.pending.len();
        Ok(None)
    }

    /// Where `needle` starts in what is held, searching only past what was searched before.
    fn find_from_scanned(&mut self, needle: &[u8]) -> Option<usize> {
        let from = self.scanned.saturating_sub(needle.len() - 1);
        let found = find(&self.pending[from..], needle).map(|i| i + from);
        self.scanned = if found.is_some() { 0 } else { self.pending.len() };
        found
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

/// Whether part headers describe the plain `user` field (not a file). Headers werkzeug might read
/// otherwise (folded lines, RFC 2231 `name*=` parameters, several `Content-Disposition`) are refused.
fn is_user_field(headers: &[u8]) -> Result<bool, Malformed> {
    let text = std::str::from_utf8(headers).map_err(|_| Malformed)?;
    let mut disposition = None;
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        // A bare CR or LF would end a line (or the block) for werkzeug but not here.
        if line.starts_with(' ') || line.starts_with('\t') || line.contains(['\r', '\n']) {
            return Err(Malformed);
        }
        let (name, value) = line.split_once(':').ok_or(Malformed)?;
        if name.trim().eq_ignore_ascii_case("content-disposition") && disposition.replace(value).is_some() {
            return Err(Malformed);
        }
    }
    // werkzeug refuses a part without one (and Dify then sees an empty form).
    let Some(value) = disposition else {
        return Err(Malformed);
    };
    let p = params::parse(value).ok_or(Malformed)?;
    Ok(p.get("name") == Some("user") && p.get("filename").is_none())
}

#[cfg(test)]
#[path = "multipart_tests.rs"]
mod tests;
