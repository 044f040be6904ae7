//! Fuzzes the JSON `user` rewriter: any body never panics; and whatever it rewrites, an independent
//! full parse (serde_json's `Value`, which reads repeated keys as Python does) of the output finds
//! the scoped user, and every other top-level member exactly as a full parse of the input found it.
#![no_main]

use dify_gateway_fuzz::scope::json::inspect;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    for default_user in [false, true] {
        let Ok(seen) = inspect(data, "acme", true, default_user) else {
            continue;
        };
        let Some(out) = seen.rewritten else { continue };
        let Ok(Value::Object(input)) = serde_json::from_slice::<Value>(data) else {
            continue;
        };
        let output: Value = serde_json::from_slice(&out).expect("a rewritten body is JSON");
        let output = output.as_object().expect("a rewritten body is an object");
        let user = output.get("user").and_then(Value::as_str);
        assert_eq!(user, seen.dify_user.as_deref(), "the scoped user is the one Dify reads");
        assert!(user.is_some_and(|u| u.starts_with("acme:")));
        for (k, v) in &input {
            if k != "user" {
                assert_eq!(output.get(k), Some(v), "member {k} changed");
            }
        }
        assert_eq!(output.len(), input.len() + usize::from(!input.contains_key("user")));
    }
});
