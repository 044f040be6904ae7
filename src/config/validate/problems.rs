//! Problems found while validating the configuration (start-up step 2), collected by key path, and
//! the small parsers every section shares.

use crate::config::units;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// Collects problems (and warnings about valid settings that are probably mistakes) by key path.
#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<String>, pub(super) Vec<String>);

impl Problems {
    pub(super) fn add(&mut self, path: impl std::fmt::Display, msg: impl std::fmt::Display) {
        self.0.push(format!("{path}: {msg}"));
    }

    pub(super) fn warn(&mut self, path: impl std::fmt::Display, msg: impl std::fmt::Display) {
        self.1.push(format!("{path}: {msg}"));
    }

    pub(super) fn duration(&mut self, path: &str, text: &str) -> Duration {
        match units::duration(text) {
            Ok(d) if d.is_zero() => {
                self.add(path, "must be greater than zero");
                d
            }
            Ok(d) => d,
            Err(e) => {
                self.add(path, e);
                Duration::ZERO
            }
        }
    }

    pub(super) fn addr(&mut self, path: &str, text: &str) -> SocketAddr {
        text.parse().unwrap_or_else(|_| {
            self.add(path, format!("`{text}` is not an ip:port address"));
            SocketAddr::from(([127, 0, 0, 1], 0))
        })
    }
}

/// Exactly one of an inline value and a file holding it.
pub(super) fn one_of(
    p: &mut Problems,
    path: &str,
    inline: (&str, &Option<String>),
    file: (&str, &Option<String>),
    base: &Path,
) -> Option<String> {
    match (inline.1, file.1) {
        (Some(v), None) if !v.is_empty() => Some(v.clone()),
        (Some(_), None) => {
            p.add(format!("{path}.{}", inline.0), "must not be empty");
            None
        }
        (None, Some(f)) => match std::fs::read_to_string(base.join(f)) {
            Ok(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
            Ok(_) => {
                p.add(format!("{path}.{}", file.0), format!("`{f}` is empty"));
                None
            }
            Err(e) => {
                p.add(format!("{path}.{}", file.0), format!("cannot read `{f}`: {e}"));
                None
            }
        },
        (Some(_), Some(_)) => {
            p.add(path, format!("set either {} or {}, not both", inline.0, file.0));
            None
        }
        (None, None) => {
            p.add(path, format!("{} or {} is required", inline.0, file.0));
            None
        }
    }
}
