//! Deterministic `LLMUsage` of a simulated answer, priced like a 0.15/0.60 USD per 1M tokens model.

use serde_json::{Value, json};

/// Fixed prompt-template overhead added to the inputs' text length.
pub(crate) const PROMPT_OVERHEAD: u64 = 10;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub latency: f64,
}

/// Amounts in units of 1e-7 USD (Dify quantizes prices to 7 decimals, ROUND_HALF_UP).
fn prompt_units(tokens: u64) -> u64 {
    // tokens * 0.15 * 0.000001 = tokens * 1.5e-7
    (tokens * 15 + 5) / 10
}

fn completion_units(tokens: u64) -> u64 {
    // tokens * 0.60 * 0.000001 = tokens * 6e-7
    tokens * 6
}

/// `format(Decimal, 'f')` of a 7-decimal amount (blocking responses).
fn fixed(units: u64) -> String {
    format!("{}.{:07}", units / 10_000_000, units % 10_000_000)
}

/// `str(Decimal)` of a 7-decimal amount (streaming): scientific below 1e-6, e.g. `0E-7`.
fn decimal_str(units: u64) -> String {
    if units < 10 {
        format!("{units}E-7")
    } else {
        fixed(units)
    }
}

impl Usage {
    /// The `usage` object; `streaming` selects `str()` instead of `format(x, 'f')` for prices.
    pub fn to_json(self, streaming: bool) -> Value {
        let fmt = if streaming { decimal_str } else { fixed };
        let p = prompt_units(self.prompt_tokens);
        let c = completion_units(self.completion_tokens);
        json!({
            "prompt_tokens": self.prompt_tokens,
            "prompt_unit_price": "0.15",
            "prompt_price_unit": "0.000001",
            "prompt_price": fmt(p),
            "completion_tokens": self.completion_tokens,
            "completion_unit_price": "0.60",
            "completion_price_unit": "0.000001",
            "completion_price": fmt(c),
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "total_price": fmt(p + c),
            "currency": "USD",
            "latency": self.latency,
            "time_to_first_token": null,
            "time_to_generate": null,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_match_the_example() {
        let u = Usage {
            prompt_tokens: 1213,
            completion_tokens: 86,
            latency: 1.0,
        };
        let j = u.to_json(true);
        assert_eq!(j["prompt_price"], "0.0001820");
        assert_eq!(j["completion_price"], "0.0000516");
        assert_eq!(j["total_price"], "0.0002336");
        let z = Usage {
            prompt_tokens: 0,
            completion_tokens: 0,
            latency: 0.0,
        };
        assert_eq!(z.to_json(true)["completion_price"], "0E-7");
        assert_eq!(z.to_json(false)["completion_price"], "0.0000000");
    }
}
