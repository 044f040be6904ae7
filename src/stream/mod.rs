//! Streams that know Dify (response step): the incremental SSE parser and the observers that read
//! task ids, message ids and usage from completion responses as they pass.

pub mod observer;
pub mod parser;

pub use observer::{BlockingObserver, EventKind, Observation, SseObserver, Usage};
pub use parser::{SseEvent, SseParser};
