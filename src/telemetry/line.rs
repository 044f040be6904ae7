//! One structured log line built by hand (the access log, in `logging`, the last step of every
//! request): the same JSON or text shape the tracing formatter gives, built in a reused buffer at a
//! fraction of the formatter's cost, and written with one `write` call.

use crate::config::LogFormat;
use serde_json::ser::{CompactFormatter, Formatter};
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// A line being built into `buf`: fields are added in order, then [`Line::end`] closes it.
pub struct Line<'b> {
    buf: &'b mut Vec<u8>,
    format: LogFormat,
    target: &'static str,
}

impl<'b> Line<'b> {
    /// Starts an `INFO` line of `target` at `now` (clears `buf`).
    pub fn info(buf: &'b mut Vec<u8>, format: LogFormat, now: SystemTime, target: &'static str) -> Self {
        buf.clear();
        match format {
            LogFormat::Json => {
                buf.extend_from_slice(b"{\"timestamp\":\"");
                timestamp(buf, now);
                buf.extend_from_slice(b"\",\"level\":\"INFO\"");
            }
            LogFormat::Text => {
                timestamp(buf, now);
                buf.extend_from_slice(b"  INFO ");
                buf.extend_from_slice(target.as_bytes());
                buf.push(b':');
            }
        }
        Self { buf, format, target }
    }

    fn name(&mut self, name: &str) {
        match self.format {
            LogFormat::Json => {
                self.buf.extend_from_slice(b",\"");
                self.buf.extend_from_slice(name.as_bytes());
                self.buf.extend_from_slice(b"\":");
            }
            LogFormat::Text => {
                self.buf.push(b' ');
                self.buf.extend_from_slice(name.as_bytes());
                self.buf.push(b'=');
            }
        }
    }

    /// A string field (quoted in both formats, like a `&str` field of a tracing event).
    pub fn str(&mut self, name: &str, value: &str) -> &mut Self {
        self.name(name);
        match self.format {
            LogFormat::Json => json_string(self.buf, value),
            LogFormat::Text => debug_string(self.buf, value),
        }
        self
    }

    /// A string field shown as it is in text (like a `%field` of a tracing event), quoted in JSON.
    pub fn display(&mut self, name: &str, value: &str) -> &mut Self {
        self.name(name);
        match self.format {
            LogFormat::Json => json_string(self.buf, value),
            LogFormat::Text => self.buf.extend_from_slice(value.as_bytes()),
        }
        self
    }

    /// An optional string field, left out when `None`.
    pub fn opt_str(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        if let Some(v) = value {
            self.str(name, v);
        }
        self
    }

    /// An unsigned number.
    pub fn u64(&mut self, name: &str, value: u64) -> &mut Self {
        self.name(name);
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
        self
    }

    /// An optional unsigned number, left out when `None`.
    pub fn opt_u64(&mut self, name: &str, value: Option<u64>) -> &mut Self {
        if let Some(v) = value {
            self.u64(name, v);
        }
        self
    }

    /// A float, as serde_json writes it in JSON and as `{:?}` shows it in text.
    pub fn f64(&mut self, name: &str, value: f64) -> &mut Self {
        self.name(name);
        match self.format {
            LogFormat::Json if value.is_finite() => {
                let _ = CompactFormatter.write_f64(self.buf, value);
            }
            LogFormat::Json => self.buf.extend_from_slice(b"null"),
            // Shortest round-trip digits, as `{:?}` gives them (without its formatter).
            LogFormat::Text if value.is_finite() => {
                self.buf
                    .extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
            }
            LogFormat::Text => {
                let mut s = String::new();
                let _ = write!(s, "{value:?}");
                self.buf.extend_from_slice(s.as_bytes());
            }
        }
        self
    }

    /// A boolean.
    pub fn bool(&mut self, name: &str, value: bool) -> &mut Self {
        self.name(name);
        self.buf
            .extend_from_slice(if value { b"true" as &[u8] } else { b"false" });
        self
    }

    /// Closes the line (the target last in JSON, as the tracing formatter puts it) and its newline.
    pub fn end(&mut self) {
        if self.format == LogFormat::Json {
            self.buf.extend_from_slice(b",\"target\":");
            json_string(self.buf, self.target);
            self.buf.push(b'}');
        }
        self.buf.push(b'\n');
    }
}

/// `value` as a JSON string, escaped as serde_json escapes it.
fn json_string(buf: &mut Vec<u8>, value: &str) {
    buf.push(b'"');
    let bytes = value.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => b"",
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            buf.extend_from_slice(b"\\u00");
            buf.push(HEX[usize::from(b >> 4)]);
            buf.push(HEX[usize::from(b & 0xf)]);
        } else {
            buf.extend_from_slice(escape);
        }
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

/// `value` as `{:?}` shows it (quoted, escaped); plain printable ASCII is copied as it is.
fn debug_string(buf: &mut Vec<u8>, value: &str) {
    if value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        buf.push(b'"');
        buf.extend_from_slice(value.as_bytes());
        buf.push(b'"');
    } else {
        let mut s = String::new();
        let _ = write!(s, "{value:?}");
        buf.extend_from_slice(s.as_bytes());
    }
}

/// `now` in RFC 3339, UTC, to the microsecond (`2026-11-30T03:48:16.123456Z`), as the tracing
/// formatter's default timer writes it.
fn timestamp(buf: &mut Vec<u8>, now: SystemTime) {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_date(secs / 86_400);
    let in_day = secs % 86_400;
    let fields = [
        (year, 4, b'-'),
        (month, 2, b'-'),
        (day, 2, b'T'),
        (in_day / 3600, 2, b':'),
        (in_day / 60 % 60, 2, b':'),
        (in_day % 60, 2, b'.'),
        (u64::from(since.subsec_micros()), 6, b'Z'),
    ];
    for (value, width, then) in fields {
        digits(buf, value, width);
        buf.push(then);
    }
}

/// `value` in exactly `width` decimal digits (zero-padded; higher digits dropped).
fn digits(buf: &mut Vec<u8>, value: u64, width: usize) {
    let mut out = [b'0'; 8];
    let mut v = value;
    for d in out[..width.min(8)].iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    buf.extend_from_slice(&out[..width.min(8)]);
}

/// Year, month and day of the civil (proleptic Gregorian) date `days` after 1970-01-01.
fn civil_date(days: u64) -> (u64, u64, u64) {
    // Howard Hinnant's days-to-civil, over eras of 400 years starting on 0000-03-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, micros: u32) -> String {
        let mut buf = Vec::new();
        timestamp(&mut buf, UNIX_EPOCH + Duration::new(secs, micros * 1000));
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn timestamps_are_rfc3339_to_the_microsecond() {
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(at(1_796_010_496, 123_456), "2026-11-30T03:48:16.123456Z");
        assert_eq!(at(4_107_542_399, 999_999), "2100-02-28T23:59:59.999999Z");
        assert_eq!(at(253_402_300_799, 0), "9999-12-31T23:59:59.000000Z");
    }

    #[test]
    fn every_day_of_four_centuries_follows_the_one_before() {
        // Day after day, the date moves by one day, one month or one year, never otherwise.
        let mut prev = civil_date(0);
        for d in 1..146_097 * 2 {
            let next = civil_date(d);
            let ok = (next.0 == prev.0 && next.1 == prev.1 && next.2 == prev.2 + 1)
                || (next.0 == prev.0 && next.1 == prev.1 + 1 && next.2 == 1)
                || (next.0 == prev.0 + 1 && (next.1, next.2) == (1, 1) && (prev.1, prev.2) == (12, 31));
            assert!(ok, "day {d}: {prev:?} -> {next:?}");
            prev = next;
        }
    }

    #[test]
    fn json_strings_escape_as_serde_json_does() {
        for s in [
            "plain",
            "q\"uote",
            "back\\slash",
            "line\nbreak\r\t",
            "\u{1}\u{1f}\u{8}\u{c}",
            "ünï ☃",
            "",
        ] {
            let mut buf = Vec::new();
            json_string(&mut buf, s);
            assert_eq!(String::from_utf8(buf).unwrap(), serde_json::to_string(s).unwrap());
        }
    }

    #[test]
    fn durations_show_as_debug_does() {
        for v in [
            0.0015,
            1.0,
            12.345,
            2.879909,
            999.5,
            60_000.25,
            1234567.891,
            0.001,
        ] {
            let mut buf = Vec::new();
            let mut line = Line::info(&mut buf, LogFormat::Text, UNIX_EPOCH, "t");
            line.f64("d", v);
            let text = String::from_utf8(buf).unwrap();
            assert!(text.ends_with(&format!(" d={v:?}")), "{text}");
        }
    }

    #[test]
    fn text_strings_show_as_debug_does() {
        for s in [
            "plain",
            "q\"uote",
            "back\\slash",
            "line\nbreak",
            "\u{1}",
            "ünï ☃",
            "it's",
        ] {
            let mut buf = Vec::new();
            debug_string(&mut buf, s);
            assert_eq!(String::from_utf8(buf).unwrap(), format!("{s:?}"));
        }
    }
}
