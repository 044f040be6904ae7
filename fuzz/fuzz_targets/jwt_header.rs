//! Fuzzes what is read of a tenant's credentials before any key is tried: the `Authorization`
//! parser never panics and caps the token; the JWT header reader never panics, and where
//! jsonwebtoken reads the same header, both agree on `alg` and `kid`.
#![no_main]

use dify_gateway_fuzz::admit::auth::bearer::{MAX_TOKEN, bearer_token};
use dify_gateway_fuzz::admit::auth::header::peek;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = bearer_token(Some(data)) {
        assert!(!token.is_empty() && token.len() <= MAX_TOKEN);
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let (Ok(ours), Ok(theirs)) = (peek(text), jsonwebtoken::decode_header(text)) {
        assert_eq!(ours.kid, theirs.kid);
        assert_eq!(ours.alg, format!("{:?}", theirs.alg));
    }
});
