//! `Secret`: a string that never shows itself in `Debug` or `Display` (Dify app keys, JWT secrets).
//! Used from config validation onwards; the only way to read one is [`Secret::expose`].

use std::fmt;

/// A secret value; `Debug`/`Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself. Call sites are where a secret leaves the gateway's hands: keep them few.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// The last four characters of a secret: all a listing ever shows of it.
pub fn last4(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("app-very-secret");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "app-very-secret");
    }
}
