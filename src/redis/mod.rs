//! Redis shared by the replicas (used by the cache, id ownership and invalidation notices): one
//! connection manager, every call under a hard timeout and behind a circuit breaker. Redis being slow,
//! down or absent never fails a request: the call is counted and the caller carries on with what it
//! has in process. Also carries invalidations between replicas over pub/sub. Every value and notice is
//! sealed with an HMAC ([`seal`]): what does not verify is ignored.

pub mod breaker;
pub mod conn;
pub mod seal;

use crate::config::RedisSettings;
use crate::telemetry::Metrics;
use arc_swap::ArcSwapOption;
use breaker::Breaker;
use conn::Conn;
use parking_lot::Mutex;
use redis::AsyncCommands;
use seal::Sealer;
use std::future::Future;
use std::time::{Duration, Instant};

/// The operations of `redis_errors_total`.
pub const OPS: [&str; 7] = ["get", "set", "del", "scan", "publish", "subscribe", "limit"];
/// The failure kinds of `redis_errors_total`.
pub const FAILURES: [&str; 4] = ["error", "timeout", "circuit_open", "unverified"];

/// Pub/sub channel carrying invalidations.
pub const CHANNEL: &str = "dify-gw:cache:invalidate";
/// Time limit of invalidation calls (a SCAN may take several round trips).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(2);

/// The Redis tier.
pub struct RedisTier {
    settings: RedisSettings,
    conn: ArcSwapOption<Conn>,
    timeout: Duration,
    breaker: Mutex<Breaker>,
    sealer: Sealer,
    metrics: Metrics,
}

impl RedisTier {
    /// A tier per `s`; nothing connects until [`RedisTier::connect`] runs on a lasting runtime.
    pub fn new(s: &RedisSettings, metrics: Metrics) -> Self {
        Self {
            settings: s.clone(),
            conn: ArcSwapOption::empty(),
            timeout: s.timeout,
            breaker: Mutex::new(Breaker::new(3, Duration::from_secs(2))),
            sealer: Sealer::new(s.hmac_key.expose().as_bytes()),
            metrics,
        }
    }

    /// A pub/sub connection (`attempt` picks a cluster node in turn).
    pub async fn pubsub(&self, attempt: usize) -> redis::RedisResult<redis::aio::PubSub> {
        conn::pubsub(&self.settings, attempt).await
    }

    /// Opens the connection; it connects lazily and reconnects by itself. Must run on a runtime
    /// that lives as long as the process (its driver task is spawned there).
    pub fn connect(&self) -> redis::RedisResult<()> {
        self.conn
            .store(Some(std::sync::Arc::new(conn::open(&self.settings)?)));
        Ok(())
    }

    /// Opens the connection now (a PING with a generous limit), so that the first request's call,
    /// under the short `redis_timeout`, does not pay for the connect and TLS handshake.
    pub async fn warm(&self) -> bool {
        let pong: Option<String> = self
            .call_within("get", ADMIN_TIMEOUT, |mut c| async move {
                redis::cmd("PING").query_async(&mut c).await
            })
            .await;
        pong.is_some()
    }

    /// Whether Redis is considered up (connected and the breaker closed).
    pub fn is_up(&self) -> bool {
        self.conn.load().is_some() && !self.breaker.lock().is_open()
    }

    /// Runs `op` under the timeout and the breaker; `None` when skipped or failed (counted by `op`).
    async fn call<T, F, Fut>(&self, name: &'static str, op: F) -> Option<T>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.call_within(name, self.timeout, op).await
    }

    /// [`RedisTier::call`] with its own time limit (admin operations may scan).
    async fn call_within<T, F, Fut>(&self, name: &'static str, limit: Duration, op: F) -> Option<T>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.conn.load_full()?;
        if !self.breaker.lock().allow(Instant::now()) {
            self.metrics.redis_error(name, "circuit_open");
            return None;
        }
        let outcome = tokio::time::timeout(limit, op((*conn).clone())).await;
        let value = match outcome {
            Ok(Ok(v)) => {
                self.breaker.lock().success();
                Some(v)
            }
            Ok(Err(e)) => {
                self.breaker.lock().failure(Instant::now());
                // The connection's own response timeout is the same limit as ours.
                self.metrics
                    .redis_error(name, if e.is_timeout() { "timeout" } else { "error" });
                tracing::debug!(message = "Redis call failed.", op = name, error = %e);
                None
            }
            Err(_) => {
                self.breaker.lock().failure(Instant::now());
                self.metrics.redis_error(name, "timeout");
                None
            }
        };
        self.metrics.redis_up.set(i64::from(self.is_up()));
        value
    }

    /// The value the gateway stored at `key`; `None` on a miss, any failure, or a value that does
    /// not verify (counted as `kind="unverified"` and dropped).
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let owned = key.to_string();
        let sealed: Vec<u8> = self
            .call("get", |mut c| async move { c.get(owned).await })
            .await
            .flatten()?;
        self.open("get", key, &sealed)
    }

    /// Verifies a sealed value read from `key` (or received on channel `key`).
    pub fn open(&self, op: &'static str, key: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        let value = self.sealer.open(key, sealed).map(<[u8]>::to_vec);
        if value.is_none() {
            self.metrics.redis_error(op, "unverified");
            tracing::warn!(
                message = "A value in Redis failed authentication and was ignored.",
                op
            );
        }
        value
    }

    /// Stores `value` at `key` for `keep`, sealed; false on any failure.
    pub async fn set(&self, key: &str, value: &[u8], keep: Duration) -> bool {
        let value = self.sealer.seal(key, value);
        let (key, secs) = (key.to_string(), keep.as_secs().max(1));
        let done: Option<()> = self
            .call("set", |mut c| async move { c.set_ex(key, value, secs).await })
            .await;
        done.is_some()
    }

    /// Deletes `keys`; false on any failure.
    pub async fn delete(&self, keys: Vec<String>) -> bool {
        if keys.is_empty() {
            return true;
        }
        let done: Option<()> = self
            .call_within("del", ADMIN_TIMEOUT, |mut c| async move { c.del(keys).await })
            .await;
        done.is_some()
    }

    /// Deletes every key under `prefix` (SCAN, so Redis is never blocked); false on any failure.
    pub async fn delete_prefix(&self, prefix: &str) -> bool {
        let pattern = format!("{prefix}*");
        let found: Option<Vec<String>> = self
            .call_within(
                "scan",
                ADMIN_TIMEOUT,
                |c| async move { conn::scan(c, &pattern).await },
            )
            .await;
        match found {
            Some(keys) => self.delete(keys).await,
            None => false,
        }
    }

    /// Runs `script` on `key` with `args` (the limits); `None` when skipped or failed.
    pub async fn eval(
        &self,
        op: &'static str,
        script: &redis::Script,
        key: &str,
        args: Vec<String>,
    ) -> Option<redis::Value> {
        self.call(op, |mut c| async move {
            let mut call = script.key(key);
            for a in &args {
                call.arg(a);
            }
            call.invoke_async(&mut c).await
        })
        .await
    }

    /// Tells every replica about an invalidation (sealed for the channel); false on any failure.
    pub async fn publish(&self, message: &[u8]) -> bool {
        let message = self.sealer.seal(CHANNEL, message);
        let sent: Option<()> = self
            .call_within("publish", ADMIN_TIMEOUT, |mut c| async move {
                c.publish(CHANNEL, message).await
            })
            .await;
        sent.is_some()
    }
}
