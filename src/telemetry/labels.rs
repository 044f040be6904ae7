//! Bounded label values of the metrics (recorded in `logging`): every value comes from a fixed set,
//! so no request can create a new series.

/// Folds a method into a bounded label.
pub fn method_label(m: &str) -> &'static str {
    match m {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// A currency code as a bounded label: three ASCII capitals, else `other`.
pub fn currency_label(code: &str) -> &str {
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        code
    } else {
        "other"
    }
}

/// Every value [`status_class`] gives.
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// `2xx`…`5xx`, or `none` when no response was sent.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fold_into_fixed_sets() {
        assert_eq!(method_label("BREW"), "other");
        assert_eq!(status_class(0), "none");
        assert_eq!(status_class(404), "4xx");
        assert_eq!(currency_label("USD"), "USD");
        assert_eq!(currency_label("usd$"), "other");
    }
}
