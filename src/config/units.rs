//! Parses the unit-suffixed strings of the config file: durations (`"250ms"`, `"30s"`, `"5m"`, `"1h"`)
//! and sizes (`"100MB"`, `"64KiB"`, `"1048576"`). Used by `validate` at start-up.

use std::time::Duration;

/// Parses a duration with a unit (humantime syntax).
pub fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("`{text}` is not a duration with a unit such as \"30s\" ({e})"))
}

/// Parses a size. `K`, `M` and `G` (with or without `B`/`iB`) are binary multiples, as in nginx's
/// `client_max_body_size` and Dify's upload limits, so `"100MB"` is 100 × 1024 × 1024 bytes.
pub fn size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let bad = || format!("`{text}` is not a size such as \"100MB\" or a number of bytes");
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(duration("1200s").unwrap(), Duration::from_secs(1200));
        assert_eq!(duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(duration("30").is_err());
        assert!(duration("soon").is_err());
    }

    #[test]
    fn parses_sizes() {
        assert_eq!(size("100MB").unwrap(), 100 * 1024 * 1024);
        assert_eq!(size("64KiB").unwrap(), 65536);
        assert_eq!(size("12").unwrap(), 12);
        assert_eq!(size("1 g").unwrap(), 1 << 30);
        assert!(size("-1").is_err());
        assert!(size("10XB").is_err());
        assert!(size("99999999999999999999G").is_err());
    }
}
