//! What admission consults: the immutable [`Snapshot`] of tenants, apps and JWT keys, published
//! through one `ArcSwap` so that a request loads it once (`new_ctx`) and a reload swaps it whole.

use super::auth::JwtVerifier;
use crate::secret::Secret;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// A Dify app a tenant may call.
#[derive(Debug)]
pub struct App {
    /// Name used in the app claim and `X-Dify-App`.
    pub name: String,
    /// The Dify app key; never leaves the gateway except towards Dify.
    pub api_key: Secret,
    /// Dify's `user` is prefixed with the tenant id.
    pub scope_users: bool,
    /// The endpoints that act on the whole Dify app are open to this tenant.
    pub app_wide: bool,
}

/// A tenant and its apps; the first app is the default.
#[derive(Debug)]
pub struct Tenant {
    /// Tenant id as carried in the tenant claim.
    pub id: String,
    /// The tenant's apps in config order.
    pub apps: Vec<Arc<App>>,
}

impl Tenant {
    /// The app called `name`.
    pub fn app(&self, name: &str) -> Option<&Arc<App>> {
        self.apps.iter().find(|a| a.name == name)
    }
}

/// Everything a reload replaces at once.
pub struct Snapshot {
    /// Tenants by id.
    pub tenants: HashMap<String, Arc<Tenant>>,
    /// JWT keys and the verified-token cache that belongs to them.
    pub verifier: JwtVerifier,
}

impl Snapshot {
    /// Builds a snapshot.
    pub fn new(tenants: HashMap<String, Arc<Tenant>>, verifier: JwtVerifier) -> Self {
        Self { tenants, verifier }
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("tenants", &self.tenants)
            .finish_non_exhaustive()
    }
}

/// The current snapshot, swappable as a whole.
pub struct SharedSnapshot(ArcSwap<Snapshot>);

impl SharedSnapshot {
    /// Publishes `snap` as the first snapshot.
    pub fn new(snap: Snapshot) -> Self {
        Self(ArcSwap::from_pointee(snap))
    }

    /// The snapshot in force now; hold the `Arc` for the whole request.
    pub fn load(&self) -> Arc<Snapshot> {
        self.0.load_full()
    }

    /// Replaces the snapshot; requests in flight keep the one they loaded.
    pub fn store(&self, snap: Snapshot) {
        self.0.store(Arc::new(snap));
    }
}
