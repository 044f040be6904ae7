//! Work beside the request flow, one Pingora background service per file; each is thin and calls the
//! step it serves: SIGHUP reloads ([`reload`]), store changes made by any replica ([`store_sync`]),
//! lease renewal and limit gauges ([`limits`]),
//! identity providers' key sets ([`jwks_refresh`]), re-resolution of Dify's name ([`resolve`]), cache
//! invalidations from other replicas ([`redis_sync`]), stops of open generations at shutdown
//! ([`shutdown`]), the last trace export ([`trace_flush`]) and an early exit once nothing is left in
//! flight ([`drain`]).

pub mod drain;
pub mod jwks_refresh;
pub mod limits;
pub mod redis_sync;
pub mod reload;
pub mod resolve;
pub mod shutdown;
pub mod store_sync;
pub mod trace_flush;

use pingora::server::ShutdownWatch;
use std::time::Duration;

/// Time after the grace period that stops of still-open streams get before Pingora shuts down.
pub const STOP_MARGIN: Duration = Duration::from_secs(3);

/// Waits for the shutdown signal, then for `grace`; false when the signal can no longer come.
pub async fn after_grace(shutdown: &mut ShutdownWatch, grace: Duration) -> bool {
    if shutdown.changed().await.is_err() {
        return false;
    }
    tokio::time::sleep(grace).await;
    true
}
