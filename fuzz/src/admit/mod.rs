//! `src/admit`: the route table and the credential readers.
pub mod auth;
#[path = "../../../src/admit/route.rs"]
pub mod route;
