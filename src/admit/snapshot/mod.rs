//! What admission consults: the immutable [`Snapshot`] of tenants, apps, keys, API keys and
//! revocations, merged from the configuration file and the store (by the tenancy module), published
//! through one `ArcSwap` so that a request loads it once (`new_ctx`) and a change swaps it whole.

use super::auth::jwks::JwksSource;
use super::auth::{AuthError, Identity, JwtPolicy, KeyRing, Via};
use super::limits::Limits;
use crate::secret::Secret;
use arc_swap::ArcSwap;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

/// Where a tenant is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The configuration file (read-only through the admin API).
    Config,
    /// The store (managed through the admin API).
    Store,
}

impl Source {
    /// `config` or `store`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Store => "store",
        }
    }
}

/// A Dify app a tenant may call.
#[derive(Debug)]
pub struct App {
    /// Name used in the app claim and `X-Dify-App`.
    pub name: String,
    /// The Dify app key; never leaves the gateway except towards Dify.
    pub api_key: Secret,
    /// Its last four characters, for listings.
    pub key_last4: String,
    /// Dify's `user` is prefixed with the tenant id.
    pub scope_users: bool,
    /// The endpoints that act on the whole Dify app are open to this tenant.
    pub app_wide: bool,
    /// `app_wide_endpoints` as set (`None`: open unless the key is shared).
    pub app_wide_endpoints: Option<bool>,
    /// What a completion reserves against the token limits.
    pub max_tokens_per_request: Option<u64>,
    /// This tenant's share of the app's concurrency, when the key is shared.
    pub max_share: Option<f64>,
    /// Other tenants use the same Dify key.
    pub shared: bool,
    /// When a tenant sharing the key has a `max_share`: this tenant's share (1 = no cap of its own).
    /// Every completion on such an app is counted, so that the shares see each other.
    pub fair_share: Option<f64>,
}

/// A tenant and its apps; the first app is the default.
#[derive(Debug)]
pub struct Tenant {
    /// Tenant id as carried in the tenant claim.
    pub id: String,
    /// Where it is defined.
    pub source: Source,
    /// Refused with 403 while set.
    pub disabled: bool,
    /// Unix seconds (store tenants).
    pub created_at: Option<i64>,
    /// Its limits.
    pub limits: Limits,
    /// The tenant's apps in order.
    pub apps: Vec<Arc<App>>,
}

impl App {
    /// An app of its own (not shared), users scoped, nothing reserved.
    pub fn new(name: impl Into<String>, api_key: Secret) -> Self {
        let key_last4 = crate::secret::last4(api_key.expose());
        Self {
            name: name.into(),
            api_key,
            key_last4,
            scope_users: true,
            app_wide: true,
            app_wide_endpoints: None,
            max_tokens_per_request: None,
            max_share: None,
            shared: false,
            fair_share: None,
        }
    }
}

impl Tenant {
    /// A configuration file's tenant with `apps`, enabled, without limits.
    pub fn new(id: impl Into<String>, apps: Vec<Arc<App>>) -> Self {
        Self {
            id: id.into(),
            source: Source::Config,
            disabled: false,
            created_at: None,
            limits: Limits::default(),
            apps,
        }
    }

    /// The app called `name`.
    pub fn app(&self, name: &str) -> Option<&Arc<App>> {
        self.apps.iter().find(|a| a.name == name)
    }
}

/// A gateway API key (its hash is the lookup key).
#[derive(Debug)]
pub struct ApiKey {
    /// Id.
    pub id: String,
    /// Tenant id.
    pub tenant: String,
    /// A name for people.
    pub name: Option<String>,
    /// The key's last four characters.
    pub last4: String,
    /// The app it always selects.
    pub app: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds; `None` = no expiry.
    pub expires_at: Option<u64>,
}

/// One tenant's revocations.
#[derive(Debug, Default)]
pub struct Revoked {
    /// Refused token ids.
    pub jtis: HashSet<String>,
    /// Everything issued before this (Unix seconds) is refused.
    pub issued_before: Option<u64>,
}

/// Every tenant's revocations.
#[derive(Debug, Default)]
pub struct Revocations(pub HashMap<String, Revoked>);

impl Revocations {
    /// `Err(Revoked)` when `id` was revoked: its `jti`, or issued before the tenant's cut-off (a
    /// token without `iat` cannot show it was not, and an API key counts from its creation).
    pub fn check(&self, id: &Identity) -> Result<(), AuthError> {
        let Some(r) = self.0.get(&id.tenant) else {
            return Ok(());
        };
        let (jti, issued) = match &id.via {
            Via::Jwt { jti, iat, .. } => (jti.as_deref(), *iat),
            Via::ApiKey { created_at, .. } => (None, Some(*created_at)),
        };
        if jti.is_some_and(|j| r.jtis.contains(j)) {
            return Err(AuthError::Revoked);
        }
        match (r.issued_before, issued) {
            (Some(cut), Some(t)) if t < cut => Err(AuthError::Revoked),
            (Some(_), None) => Err(AuthError::Revoked),
            _ => Ok(()),
        }
    }
}

/// Everything a change replaces at once.
pub struct Snapshot {
    /// Tenants by id.
    pub tenants: HashMap<String, Arc<Tenant>>,
    /// The static JWT keys (configuration and store).
    pub keys: KeyRing,
    /// The identity providers' key sets to consult.
    pub jwks: Vec<JwksSource>,
    /// Gateway API keys by the SHA-256 of the key.
    pub api_keys: HashMap<[u8; 32], Arc<ApiKey>>,
    /// Revoked tokens.
    pub revocations: Revocations,
    /// Claim names and checks.
    pub policy: Arc<JwtPolicy>,
    /// The store's change counter this snapshot includes (`None` without a store).
    pub store_version: Option<i64>,
}

impl Snapshot {
    /// A snapshot that admits nobody (before the first build).
    pub fn empty() -> Self {
        Self {
            tenants: HashMap::new(),
            keys: KeyRing::default(),
            jwks: Vec::new(),
            api_keys: HashMap::new(),
            revocations: Revocations::default(),
            policy: Arc::new(JwtPolicy::default()),
            store_version: None,
        }
    }
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot")
            .field("tenants", &self.tenants)
            .field("keys", &self.keys.all().len())
            .field("jwks", &self.jwks)
            .field("api_keys", &self.api_keys.len())
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
