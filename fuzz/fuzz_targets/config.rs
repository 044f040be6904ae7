//! Fuzzes the configuration loader: any text, with any environment lookups, never panics, and every
//! problem it reports names a key path or the syntax error's position.
#![no_main]

use dify_gateway_fuzz::config::load::parse;
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

fuzz_target!(|text: &str| {
    let env: HashMap<String, String> = HashMap::from([("SET".to_string(), "value".to_string())]);
    let problems = match parse(text, &env) {
        Ok((_, problems)) => problems,
        Err(problems) => {
            assert!(!problems.is_empty());
            problems
        }
    };
    for p in problems {
        assert!(p.contains(": ") || p.starts_with("syntax error"), "{p}");
    }
});
