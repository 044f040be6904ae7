//! Strict reading of header parameters (`type; key=value; key="quoted"`), for the multipart rewriter
//! (request step 7): anything werkzeug could read differently (RFC 2231 `key*`, repeated keys, stray
//! quotes, values it would split another way) is an error, so that such a body is refused rather than
//! passed on with a `user` the gateway did not see.

/// A header value split into its first element and its parameters (keys lower-cased).
#[derive(Debug, PartialEq, Eq)]
pub struct Params {
    /// The part before the first `;`, trimmed (`form-data`, `multipart/form-data`).
    pub head: String,
    /// `(key, value)` pairs in order, quoted values unescaped.
    pub pairs: Vec<(String, String)>,
}

impl Params {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Parses `value`; `None` when it is not plainly `head *(";" token "=" (token | quoted-string))`.
pub fn parse(value: &str) -> Option<Params> {
    let (head, mut rest) = match value.split_once(';') {
        Some((h, r)) => (h, r),
        None => (value, ""),
    };
    if head.contains('"') || head.contains('=') {
        return None;
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let eq = rest.find('=')?;
        let key = rest[..eq].trim().to_ascii_lowercase();
        let bad_key = key.is_empty()
            || key
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b"*\";,".contains(&b));
        if bad_key || pairs.iter().any(|(k, _)| *k == key) {
            return None;
        }
        let after = rest[eq + 1..].trim_start();
        let (val, tail) = if let Some(q) = after.strip_prefix('"') {
            quoted(q)?
        } else {
            let end = after.find(';').unwrap_or(after.len());
            let v = after[..end].trim();
            if v.contains('"') {
                return None;
            }
            (v.to_string(), &after[end..])
        };
        pairs.push((key, val));
        let tail = tail.trim_start();
        rest = match tail.strip_prefix(';') {
            Some(r) => r,
            None if tail.is_empty() => "",
            None => return None,
        };
    }
    Some(Params {
        head: head.trim().to_string(),
        pairs,
    })
}

/// Reads a quoted string whose opening quote is gone; returns it unescaped and what follows.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?.1),
            '"' => return Some((out, &s[i + 1..])),
            _ => out.push(c),
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_parameters() {
        let p = parse("form-data; name=\"user\"; filename=\"a;b.png\"").unwrap();
        assert_eq!(p.head, "form-data");
        assert_eq!(
            (p.get("name"), p.get("filename")),
            (Some("user"), Some("a;b.png"))
        );
        let p = parse("multipart/form-data; boundary=abc ; charset=utf-8").unwrap();
        assert_eq!(p.get("boundary"), Some("abc"));
        assert_eq!(parse("form-data").unwrap().pairs, vec![]);
    }

    #[test]
    fn refuses_what_could_be_read_otherwise() {
        for bad in [
            "form-data; name*0=user",
            "form-data; name*=utf-8''user",
            "form-data; x=a\"b; name=user; c\"",
            "form-data; name=x; name=user",
            "form-data; name=\"user",
            "form-data; name=\"user\" junk",
            "form-data; name",
            "multipart/form-data; boundary=fake; x=a\"; boundary=real; \"",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
