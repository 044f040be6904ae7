//! Incremental Server-Sent Events parser (response step, `response_body_filter`): pure, no I/O,
//! O(chunk). Frames may be split anywhere, inside a line or a UTF-8 character, over any number of
//! chunks; lines end in LF, CRLF or CR; `event:`-only frames (Dify's `event: ping`) and multi-line
//! `data` are handled. Only the current frame's `data` is held, up to a cap; the stream itself is
//! never copied or changed.

/// One complete event (a frame ended by a blank line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `event:` field, if the frame had one.
    pub event: Option<&'a str>,
    /// The `data:` lines joined by `\n` (at most the parser's cap).
    pub data: &'a [u8],
    /// The frame's data was longer than the cap and was cut.
    pub truncated: bool,
}

/// Longest `event:` name kept; Dify's are all short.
const MAX_EVENT_NAME: usize = 64;

/// Parser state carried between chunks.
#[derive(Debug)]
pub struct SseParser {
    /// Bytes of the line not yet ended (only field names and values we keep are stored).
    line: Vec<u8>,
    /// The line being carried is longer than anything we keep: skip to its end.
    line_overflow: bool,
    /// The last chunk ended in CR: a leading LF in the next chunk belongs to it.
    after_cr: bool,
    event: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    truncated: bool,
    max_data: usize,
}

impl SseParser {
    /// A parser that keeps at most `max_data` bytes of one event's data.
    pub fn new(max_data: usize) -> Self {
        Self {
            line: Vec::new(),
            line_overflow: false,
            after_cr: false,
            event: Vec::new(),
            data: Vec::new(),
            has_data: false,
            truncated: false,
            max_data,
        }
    }

    /// Bytes held between chunks (the memory this parser costs a stream).
    pub fn buffered(&self) -> usize {
        self.line.len() + self.event.len() + self.data.len()
    }

    /// Feeds one chunk and calls `on_event` for every event it completes.
    pub fn feed(&mut self, chunk: &[u8], on_event: &mut dyn FnMut(SseEvent<'_>)) {
        let mut rest = chunk;
        // An empty chunk says nothing about whether a CR is followed by LF: keep waiting.
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if let Some(stripped) = rest.strip_prefix(b"\n") {
                rest = stripped;
            }
        }
        while !rest.is_empty() {
            match memchr::memchr2(b'\n', b'\r', rest) {
                Some(end) => {
                    let ending = rest[end];
                    let piece = &rest[..end];
                    rest = &rest[end + 1..];
                    if ending == b'\r' {
                        match rest.first() {
                            Some(b'\n') => rest = &rest[1..],
                            Some(_) => {}
                            None => self.after_cr = true,
                        }
                    }
                    self.end_line(piece, on_event);
                }
                None => {
                    self.carry(rest);
                    rest = &[];
                }
            }
        }
    }

    /// Keeps part of an unfinished line, bounded by what a field could need.
    fn carry(&mut self, piece: &[u8]) {
        if self.line_overflow {
            return;
        }
        let limit = self.max_data + MAX_EVENT_NAME + 16;
        if self.line.len() + piece.len() > limit {
            let room = limit.saturating_sub(self.line.len());
            self.line.extend_from_slice(&piece[..room.min(piece.len())]);
            self.line_overflow = true;
        } else {
            self.line.extend_from_slice(piece);
        }
    }

    fn end_line(&mut self, piece: &[u8], on_event: &mut dyn FnMut(SseEvent<'_>)) {
        let overflow = std::mem::take(&mut self.line_overflow);
        if self.line.is_empty() {
            self.field(piece, overflow, on_event);
        } else {
            let mut line = std::mem::take(&mut self.line);
            if !overflow {
                line.extend_from_slice(piece);
            }
            self.field(&line, overflow, on_event);
            line.clear();
            self.line = line;
        }
    }

    fn field(&mut self, line: &[u8], overflow: bool, on_event: &mut dyn FnMut(SseEvent<'_>)) {
        if line.is_empty() && !overflow {
            self.dispatch(on_event);
            return;
        }
        if line.first() == Some(&b':') {
            return;
        }
        let (name, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &[][..]),
        };
        match name {
            b"data" => {
                if self.has_data {
                    self.push_data(b"\n");
                }
                self.has_data = true;
                self.push_data(value);
                if overflow {
                    self.truncated = true;
                }
            }
            b"event" => {
                self.event.clear();
                self.event
                    .extend_from_slice(&value[..value.len().min(MAX_EVENT_NAME)]);
            }
            _ => {}
        }
    }

    fn push_data(&mut self, bytes: &[u8]) {
        let room = self.max_data.saturating_sub(self.data.len());
        if bytes.len() > room {
            self.truncated = true;
        }
        self.data.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn dispatch(&mut self, on_event: &mut dyn FnMut(SseEvent<'_>)) {
        if self.has_data || !self.event.is_empty() {
            on_event(SseEvent {
                event: std::str::from_utf8(&self.event).ok().filter(|e| !e.is_empty()),
                data: &self.data,
                truncated: self.truncated,
            });
        }
        self.event.clear();
        self.data.clear();
        self.has_data = false;
        self.truncated = false;
        // Keep buffers from growing past one typical event between frames.
        if self.data.capacity() > 64 * 1024 {
            self.data.shrink_to(4096);
        }
    }
}

#[cfg(test)]
#[path = "parser_tests.rs"]
mod tests;
