//! Readable output of the operators' commands: aligned tables and UTC times. Pure.

use serde_json::Value;
use std::time::{Duration, UNIX_EPOCH};

/// Rows under `headers`, each column as wide as its widest cell, two spaces apart.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = vec![line(headers.to_vec())];
    out.extend(rows.iter().map(|r| line(r.iter().map(String::as_str).collect())));
    out.join("\n")
}

/// A Unix time in seconds as `2026-11-29 22:33:10Z`; `-` for none.
pub fn time(v: &Value) -> String {
    match v.as_u64() {
        Some(secs) => {
            let t = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string();
            t.replacen('T', " ", 1)
        }
        None => "-".into(),
    }
}

/// A JSON scalar as a cell; `-` for null.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A limits object as `key=value` pairs; `-` when empty.
pub fn limits(v: &Value) -> String {
    match v.as_object() {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", cell(v)))
            .collect::<Vec<_>>()
            .join(" "),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn aligns_columns_and_formats_times() {
        let t = render(
            &["ID", "SOURCE"],
            &[
                vec!["acme".into(), "config".into()],
                vec!["a".into(), "store".into()],
            ],
        );
        assert_eq!(t, "ID    SOURCE\nacme  config\na     store");
        assert_eq!(time(&json!(0)), "1970-01-01 00:00:00Z");
        assert_eq!(time(&Value::Null), "-");
        assert_eq!(
            limits(&json!({"requests_per_minute": 5})),
            "requests_per_minute=5"
        );
    }
}
