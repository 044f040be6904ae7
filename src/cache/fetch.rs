//! Fills the cache from Dify (request step 5, on a miss): one `GET` with the app key
//! through the gateway's Dify client, the body read under a cap. Runs in its own task so that a
//! client leaving does not waste the answer.

use crate::upstream::{Call, CallError, DifyClient, Reply};
use std::sync::Arc;
use std::time::Duration;

/// Fetches from Dify.
pub struct Fetcher {
    client: Arc<DifyClient>,
    timeout: Duration,
    max_body: usize,
}

impl Fetcher {
    /// A fetcher through `client`, waiting `timeout` at most and reading at most `max_body` bytes.
    pub fn new(client: Arc<DifyClient>, timeout: Duration, max_body: usize) -> Self {
        Self {
            client,
            timeout,
            max_body,
        }
    }

    /// `GET path` with `api_key`.
    pub async fn get(&self, path: &str, api_key: &str, request_id: &str) -> Result<Reply, CallError> {
        let call = Call {
            method: "GET",
            path,
            api_key,
            json: None,
            request_id,
            timeout: self.timeout,
            max_body: self.max_body,
        };
        self.client.call(&call).await
    }
}
