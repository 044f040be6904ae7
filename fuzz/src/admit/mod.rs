//! `src/admit`: the route table, the credential readers and the limits object.
pub mod auth;
#[path = "../../../src/admit/route.rs"]
pub mod route;
pub mod limits;
