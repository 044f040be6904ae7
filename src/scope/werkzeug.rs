//! A faithful transcription of how werkzeug 3.1.6 (the version Dify 1.14.1 locks) reads a
//! `multipart/form-data` body that arrives in one piece: its delimiter regexes, states and header
//! parsing (`werkzeug/sansio/multipart.py`), and `request.form`'s first-value lookup. Used only to
//! check the streaming rewriter against it (unit property tests and the `multipart_scoper` fuzz
//! target); never on the request path.

use regex::bytes::Regex;

/// One part as werkzeug hands it to Flask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The `name` parameter (werkzeug's key `None` when absent).
    pub name: Option<String>,
    /// The `filename` parameter: present makes it a file, absent a form field.
    pub filename: Option<String>,
    /// The part's data.
    pub data: Vec<u8>,
}

const LB: &str = r"(?:\r\n|\n|\r)";
/// Python's bytes `[^\S\n\r]`: horizontal whitespace, vertical tab and form feed.
const WS: &str = r"[\t\x0b\x0c ]";

/// werkzeug's regexes for one boundary.
struct Res {
    preamble: Regex,
    boundary: Regex,
    blank_line: Regex,
    line_break: Regex,
    continuation: Regex,
}

impl Res {
    fn new(boundary: &[u8]) -> Option<Self> {
        let b = regex::escape(std::str::from_utf8(boundary).ok()?);
        let tail = format!("(--{WS}*{LB}?|{WS}*{LB})");
        Some(Self {
            preamble: Regex::new(&format!("(?-u){LB}?--{b}{tail}")).ok()?,
            boundary: Regex::new(&format!("(?-u){LB}--{b}{tail}")).ok()?,
            blank_line: Regex::new(r"(?-u)(?:\r\n\r\n|\r\r|\n\n)").ok()?,
            line_break: Regex::new(&format!("(?-u){LB}")).ok()?,
            continuation: Regex::new(&format!("(?-u){LB}[ \\t]")).ok()?,
        })
    }
}

/// The parts werkzeug reads from `body` with `boundary`, in order; `None` where werkzeug raises
/// (Flask's form parser is silent: Dify then sees an empty form).
pub fn parse(body: &[u8], boundary: &[u8]) -> Option<Vec<Part>> {
    let re = Res::new(boundary)?;
    let marker = [b"--", boundary].concat();
    let mut buf: &[u8] = body;
    // PREAMBLE
    let m = re.preamble.captures(buf)?;
    let (whole, group) = (m.get(0)?, m.get(1)?);
    if group.as_bytes().starts_with(b"--") {
        return Some(Vec::new());
    }
    buf = &buf[whole.end()..];
    let mut parts = Vec::new();
    loop {
        // PART: headers up to the first blank line; the second line break stays for DATA_START.
        let blank = re.blank_line.find(buf)?;
        let headers = parse_headers(&re, &buf[..blank.start()])?;
        buf = &buf[(blank.start() + blank.end()) / 2..];
        let disposition = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-disposition"))
            .map(|(_, v)| v.as_str())?;
        let (name, filename) = options(disposition);
        // DATA_START / DATA: one line break, then data up to the next delimiter.
        let start = re.line_break.find(buf).filter(|m| m.start() == 0)?.end();
        // No `--boundary` at all: werkzeug waits for more data, and at the end raises.
        find(buf, &marker)?;
        let m = re.boundary.captures(buf)?;
        let (whole, group) = (m.get(0)?, m.get(1)?);
        parts.push(Part {
            name,
            filename,
            // Python's slice: empty when the delimiter's line break is the one after the headers.
            data: buf.get(start..whole.start()).unwrap_or_default().to_vec(),
        });
        if group.as_bytes().starts_with(b"--") {
            return Some(parts);
        }
        buf = &buf[whole.end()..];
    }
}

/// `request.form.get(name)`: the first form field (not file) called `name`.
pub fn field<'a>(parts: &'a [Part], name: &str) -> Option<&'a [u8]> {
    parts
        .iter()
        .find(|p| p.filename.is_none() && p.name.as_deref() == Some(name))
        .map(|p| p.data.as_slice())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `_parse_headers`: continuations joined, one header per line, strict UTF-8 (else werkzeug raises).
fn parse_headers(re: &Res, data: &[u8]) -> Option<Vec<(String, String)>> {
    let joined = re.continuation.replace_all(data, &b" "[..]);
    let text = std::str::from_utf8(&joined).ok()?;
    let mut out = Vec::new();
    // Python's bytes.splitlines(): \n, \r and \r\n.
    for line in text.split("\r\n").flat_map(|l| l.split(['\n', '\r'])) {
        let line = line.trim_matches(is_py_space);
        if line.is_empty() {
            continue;
        }
        let (k, v) = line.split_once(':').unwrap_or((line, ""));
        out.push((
            k.trim_matches(is_py_space).to_string(),
            v.trim_matches(is_py_space).to_string(),
        ));
    }
    Some(out)
}

fn is_py_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// The `name` and `filename` of a plain `form-data; k=v; k="v"` disposition (the rewriter refuses
/// every other form, so the model needs no more of `parse_options_header`).
fn options(value: &str) -> (Option<String>, Option<String>) {
    let mut name = None;
    let mut filename = None;
    for item in value.split(';').skip(1) {
        let Some((k, v)) = item.split_once('=') else {
            continue;
        };
        let v = v.trim();
        let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
        match k.trim().to_ascii_lowercase().as_str() {
            "name" if name.is_none() => name = Some(v.to_string()),
            "filename" if filename.is_none() => filename = Some(v.to_string()),
            _ => {}
        }
    }
    (name, filename)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_werkzeug_reads() {
        let body = b"--B\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nbob\r\n--B--\r\n";
        let parts = parse(body, b"B").unwrap();
        assert_eq!(field(&parts, "user"), Some(&b"bob"[..]));
    }

    #[test]
    fn junk_before_the_first_boundary_is_a_preamble() {
        let body = b"X--B\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nvictim\r\n--B--";
        assert_eq!(field(&parse(body, b"B").unwrap(), "user"), Some(&b"victim"[..]));
    }

    #[test]
    fn a_boundary_followed_by_other_bytes_is_data() {
        let body = b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n\
                     x\r\n--BX: y\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nbob\r\n--B--";
        let parts = parse(body, b"B").unwrap();
        assert_eq!(parts.len(), 1, "{parts:?}");
        assert_eq!(field(&parts, "user"), None);
    }

    #[test]
    fn bare_line_feeds_delimit_and_a_missing_close_empties_the_form() {
        let body = b"--B\nContent-Disposition: form-data; name=\"user\"\n\nbob\n--B--";
        assert_eq!(field(&parse(body, b"B").unwrap(), "user"), Some(&b"bob"[..]));
        assert_eq!(
            parse(
                b"--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx",
                b"B"
            ),
            None
        );
    }
}
