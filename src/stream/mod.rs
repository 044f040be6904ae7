//! Streams that know Dify (request step 4 decides whether an answer will stream; the response steps
//! read it): the incremental SSE [`parser`], the [`observer`]s that read task ids, message ids and
//! usage as completions pass, the [`watch`] a response gets, the [`stop`]s of abandoned generations,
//! and the Pingora phases ([`pingora`]).

pub mod mode;
pub mod observer;
pub mod parser;
pub mod pingora;
pub mod stop;
pub mod watch;

pub use observer::{BlockingObserver, EventKind, Observation, SseObserver, Usage};
pub use parser::{SseEvent, SseParser};
pub use pingora::{For, Streams};
pub use watch::Watch;

/// What the response steps learn about Dify's answer (filled by this step).
#[derive(Debug, Default)]
pub struct StreamState {
    /// The answer will be a stream: upstream reads wait `stream_idle_timeout` at most.
    pub expects: bool,
    /// The observer of this response.
    pub watch: Watch,
    /// What a finished blocking body said.
    pub seen: Option<Observation>,
    /// The stream's ids have been recorded.
    pub recorded: bool,
    /// Handle in the active-stream registry while a generation runs.
    pub active: Option<u64>,
    /// The response is a stream (SSE or audio) and counted in `active_streams`.
    pub streaming: bool,
}

impl StreamState {
    /// What Dify's completion said: the stream seen so far, or the finished blocking body.
    pub fn observation(&self) -> Option<&Observation> {
        self.watch.stream().or(self.seen.as_ref())
    }
}
