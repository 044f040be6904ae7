//! The observer a response gets (response step: `response_filter` chooses, `response_body_filter`
//! feeds): completion streams and blocking completions for task ids, message
//! ids and usage, annotation creations and annotation-reply jobs for their ids.

use super::{BlockingObserver, Observation, SseObserver};
use crate::admit::route::Endpoint;
use crate::config::StreamSettings;
use std::time::Instant;

/// The observer a response gets.
#[derive(Debug, Default)]
pub enum Watch {
    /// Nothing to learn from this response.
    #[default]
    Nothing,
    /// A completion stream.
    Sse(Box<SseObserver>),
    /// A blocking completion body.
    Blocking(BlockingObserver),
    /// The body of an annotation creation or an annotation-reply job (for the id it hands out).
    Ids(BlockingObserver),
}

/// Whether a content type is `text/event-stream`.
pub fn is_event_stream(ctype: &str) -> bool {
    ctype
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("text/event-stream")
}

impl Watch {
    /// The observer for a response of `status` and `ctype` to `endpoint`.
    pub fn choose(
        endpoint: Endpoint,
        status: u16,
        ctype: &str,
        cfg: &StreamSettings,
        started: Instant,
    ) -> Self {
        match (endpoint, status) {
            (Endpoint::CompletionMessages, 200) if is_event_stream(ctype) => {
                Self::Sse(Box::new(SseObserver::new(cfg.max_event_bytes, started)))
            }
            (Endpoint::CompletionMessages, 200) => {
                Self::Blocking(BlockingObserver::new(cfg.max_blocking_body))
            }
            (Endpoint::AnnotationCreate, 201) => Self::Ids(BlockingObserver::new(cfg.max_blocking_body)),
            (Endpoint::AnnotationReply, 200) => Self::Ids(BlockingObserver::new(64 * 1024)),
            _ => Self::Nothing,
        }
    }

    /// Feeds one chunk. At the end of a blocking body, returns what it said.
    pub fn feed(&mut self, chunk: Option<&[u8]>, eos: bool, now: Instant) -> Option<Observation> {
        match self {
            Self::Nothing => None,
            Self::Sse(o) => {
                if let Some(c) = chunk {
                    o.on_chunk(c, now);
                }
                None
            }
            Self::Blocking(o) | Self::Ids(o) => {
                if let Some(c) = chunk {
                    o.on_chunk(c);
                }
                eos.then(|| o.finish())
            }
        }
    }

    /// What a stream has shown so far.
    pub fn stream(&self) -> Option<&Observation> {
        match self {
            Self::Sse(o) => Some(&o.seen),
            _ => None,
        }
    }
}
