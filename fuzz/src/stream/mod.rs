//! `src/stream`: the SSE parser.
#[path = "../../../src/stream/parser.rs"]
pub mod parser;
