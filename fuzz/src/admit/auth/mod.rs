//! `src/admit/auth`: the bearer parser and the JWT header reader.
#[path = "../../../../src/admit/auth/bearer.rs"]
pub mod bearer;
#[path = "../../../../src/admit/auth/error.rs"]
pub mod error;
#[path = "../../../../src/admit/auth/header.rs"]
pub mod header;
