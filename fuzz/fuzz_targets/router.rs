//! Fuzzes the route table: any method and path never panics; a served route's path has no tricks
//! in it (only unreserved characters, no empty or dot segments), and a wrong method lists `OPTIONS`.
#![no_main]

use dify_gateway_fuzz::admit::route::{RouteError, classify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u8, &str)| {
    let methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW"];
    let (m, path) = input;
    let method = methods[usize::from(m) % methods.len()];
    match classify(method, path) {
        Ok(route) => {
            assert!(path.starts_with("/v1/"));
            assert!(
                path[4..]
                    .split('/')
                    .all(|s| !s.is_empty() && s != "." && s != "..")
            );
            assert!(
                path.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~/".contains(&b))
            );
            assert_eq!(route.id.is_some(), route.endpoint.template().contains('{'));
        }
        Err(RouteError::MethodNotAllowed { allow }) => assert!(allow.ends_with("OPTIONS")),
        Err(RouteError::NotFound) => {}
    }
});
