//! The admin API's write path (admin listener): a change goes to the store in one transaction with
//! its audit entry, is counted, and is read back into this replica's snapshot at once (the other
//! replicas follow within a second). Without a store every change is refused (409); while the
//! database does not answer, 503 and nothing changes.

use super::{AdminApp, error};
use crate::admit::snapshot::{Snapshot, Source};
use crate::store::model::{Applied, Change};
use crate::store::{Store, StoreError};
use http::Response;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

/// An answer that ends a request early.
pub type Answer = Box<Response<Vec<u8>>>;

impl AdminApp {
    /// The store changes go to; the refusal when there is none yet.
    pub(super) fn store_for_changes(&self) -> Result<&Arc<Store>, Answer> {
        let Some(handle) = &self.store else {
            let msg =
                "No [store] is configured: tenants come from the configuration file only; change them there";
            return Err(Box::new(error(409, "conflict", msg)));
        };
        handle.get().ok_or_else(|| {
            let msg = "The store has not been reached since start-up; nothing was changed, try again";
            Box::new(error(503, "service_unavailable", msg))
        })
    }

    /// Makes `change` on behalf of `actor`.
    pub(super) async fn write(&self, change: Change, actor: String) -> Result<Applied, Answer> {
        let store = self.store_for_changes()?;
        let action = change.describe().0;
        match store.apply(change, actor).await {
            Ok(a @ (Applied::NotFound | Applied::Conflict)) => Ok(a),
            Ok(a) => {
                self.metrics.admin_change(action);
                if let Err(e) = self.tenancy.refresh(store).await {
                    tracing::warn!(message = "Change made; reading it back failed (the store service will).", error = %e);
                }
                Ok(a)
            }
            Err(e) => Err(Box::new(store_failed(&e))),
        }
    }
}

/// The answer when the store failed; the detail goes to the log only.
pub(super) fn store_failed(e: &StoreError) -> Response<Vec<u8>> {
    tracing::warn!(message = "Admin change failed in the store.", error = %e);
    match e {
        StoreError::Db(_) | StoreError::Timeout => error(
            503,
            "service_unavailable",
            "The store did not answer; nothing was changed, try again",
        ),
        StoreError::Corrupt(_) | StoreError::Secret(_) | StoreError::WrongKey => error(
            500,
            "internal_server_error",
            "The store holds data this gateway cannot read; see the gateway's log",
        ),
    }
}

/// Refuses changes to a tenant the configuration file declares (409); `Ok` for the store's.
pub(super) fn changeable(snap: &Snapshot, tenant: &str) -> Result<(), Answer> {
    match snap.tenants.get(tenant) {
        Some(t) if t.source == Source::Config => {
            let msg = format!("Tenant {tenant} is defined in the configuration file; change it there");
            Err(Box::new(error(409, "conflict", &msg)))
        }
        _ => Ok(()),
    }
}

/// 404 for a tenant the snapshot does not know.
pub(super) fn known(snap: &Snapshot, tenant: &str) -> Result<(), Answer> {
    if snap.tenants.contains_key(tenant) {
        Ok(())
    } else {
        Err(not_found("Tenant", tenant))
    }
}

/// `404 not_found` naming what is missing.
pub(super) fn not_found(what: &str, id: &str) -> Answer {
    Box::new(error(404, "not_found", &format!("{what} {id} not found")))
}

/// Who asks, for the audit log: the `X-Actor` header (letters, digits, `.@_-`, at most 64) and
/// the caller's address.
pub(super) fn actor(session: &ServerSession) -> String {
    let named: String = session
        .req_header()
        .headers
        .get("x-actor")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || ".@_-".contains(*c))
        .take(64)
        .collect();
    let addr = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map_or_else(|| "unknown".to_string(), |a| a.ip().to_string());
    if named.is_empty() {
        addr
    } else {
        format!("{named} ({addr})")
    }
}
