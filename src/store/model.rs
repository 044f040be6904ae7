//! What the store holds (tenants and keys at runtime, read when the snapshot is rebuilt, written by
//! the admin API): plain rows with their secrets already opened, and the changes the admin API makes.

use crate::admit::limits::Limits;
use crate::secret::Secret;

/// A tenant created through the admin API.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantRow {
    /// Id, as the tenant claim carries it.
    pub id: String,
    /// Refused with 403 while set.
    pub disabled: bool,
    /// Its limits.
    pub limits: Limits,
    /// Unix seconds.
    pub created_at: i64,
}

/// A tenant's Dify app.
#[derive(Debug, Clone, PartialEq)]
pub struct AppRow {
    /// Tenant id.
    pub tenant: String,
    /// App name.
    pub name: String,
    /// The Dify app key (opened from the store).
    pub api_key: Secret,
    /// Its last four characters.
    pub key_last4: String,
    /// Prefix Dify's `user` with the tenant id.
    pub scope_users: bool,
    /// Open the app-wide endpoints (`None`: open unless the key is shared).
    pub app_wide_endpoints: Option<bool>,
    /// What a completion reserves against the token limits.
    pub max_tokens_per_request: Option<u64>,
    /// The share of the app's concurrency this tenant may take when the key is shared.
    pub max_share: Option<f64>,
}

/// A gateway API key (only its hash is kept).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRow {
    /// Id (for listing and deleting).
    pub id: String,
    /// Tenant id.
    pub tenant: String,
    /// A name for people.
    pub name: Option<String>,
    /// The app it always selects.
    pub app: Option<String>,
    /// SHA-256 of the key.
    pub hash: [u8; 32],
    /// The key's last four characters.
    pub last4: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; `None` = no expiry.
    pub expires_at: Option<i64>,
}

/// How a tenant-bound JWT key verifies.
#[derive(Debug, Clone, PartialEq)]
pub enum JwtKeySpec {
    /// A shared secret (sealed in the store).
    Hs256(Secret),
    /// An RSA public key (PEM).
    Rs256(String),
    /// An ECDSA P-256 public key (PEM).
    Es256(String),
    /// Keys published by the tenant's identity provider.
    Jwks(String),
}

impl JwtKeySpec {
    /// The algorithm name as stored (`JWKS` for a key set).
    pub fn algorithm(&self) -> &'static str {
        match self {
            Self::Hs256(_) => "HS256",
            Self::Rs256(_) => "RS256",
            Self::Es256(_) => "ES256",
            Self::Jwks(_) => "JWKS",
        }
    }
}

/// A tenant-bound JWT key.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtKeyRow {
    /// Tenant id.
    pub tenant: String,
    /// Key id (matched to the token's `kid`), or the key set's id.
    pub id: String,
    /// The key.
    pub spec: JwtKeySpec,
    /// Unix seconds.
    pub created_at: i64,
}

/// A revocation: tokens with this `jti`, or issued before this time, are refused.
#[derive(Debug, Clone, PartialEq)]
pub struct RevocationRow {
    /// Tenant id.
    pub tenant: String,
    /// The token id.
    pub jti: Option<String>,
    /// Unix seconds.
    pub issued_before: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
}

/// One line of the audit log: who changed what, where and when; never a secret.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditEntry {
    /// Unix seconds.
    pub at: i64,
    /// Who asked (the admin caller's address).
    pub actor: String,
    /// What was done (`tenant.create`, `app.put`, …).
    pub action: String,
    /// What it was done to (`tenant:acme`, `app:acme/writer`, …).
    pub target: String,
    /// The replica that made the change.
    pub replica: String,
}

/// Everything the store holds, read in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreData {
    /// The change counter this read saw.
    pub version: i64,
    /// Tenants.
    pub tenants: Vec<TenantRow>,
    /// Apps.
    pub apps: Vec<AppRow>,
    /// Gateway API keys.
    pub api_keys: Vec<ApiKeyRow>,
    /// Tenant JWT keys.
    pub jwt_keys: Vec<JwtKeyRow>,
    /// Revocations.
    pub revocations: Vec<RevocationRow>,
    /// Rows left out because they could not be read (each named, never with a secret).
    pub warnings: Vec<String>,
}

/// One change the admin API makes.
#[derive(Debug, Clone)]
pub enum Change {
    /// Creates a tenant (`Conflict` when the id exists).
    CreateTenant(TenantRow),
    /// Changes a tenant's `disabled` and/or limits.
    PatchTenant {
        /// Tenant id.
        id: String,
        /// New state.
        disabled: Option<bool>,
        /// New limits.
        limits: Option<Limits>,
    },
    /// Deletes a tenant and everything of it.
    DeleteTenant(String),
    /// Creates or replaces an app (key rotation).
    PutApp(AppRow),
    /// Deletes an app.
    DeleteApp {
        /// Tenant id.
        tenant: String,
        /// App name.
        name: String,
    },
    /// Adds a gateway API key.
    CreateApiKey(ApiKeyRow),
    /// Deletes a gateway API key.
    DeleteApiKey {
        /// Tenant id.
        tenant: String,
        /// Key id.
        id: String,
    },
    /// Adds a tenant-bound JWT key (`Conflict` when the id exists for the tenant).
    AddJwtKey(JwtKeyRow),
    /// Deletes a tenant-bound JWT key.
    DeleteJwtKey {
        /// Tenant id.
        tenant: String,
        /// Key id.
        id: String,
    },
    /// Revokes tokens.
    Revoke(RevocationRow),
}

/// Every audit action (the `action` label of `admin_changes_total`).
pub const ACTIONS: [&str; 10] = [
    "tenant.create",
    "tenant.update",
    "tenant.delete",
    "app.put",
    "app.delete",
    "api_key.create",
    "api_key.delete",
    "jwt_key.create",
    "jwt_key.delete",
    "token.revoke",
];

impl Change {
    /// The audit action and target (no secrets).
    pub fn describe(&self) -> (&'static str, String) {
        match self {
            Self::CreateTenant(t) => ("tenant.create", format!("tenant:{}", t.id)),
            Self::PatchTenant { id, .. } => ("tenant.update", format!("tenant:{id}")),
            Self::DeleteTenant(id) => ("tenant.delete", format!("tenant:{id}")),
            Self::PutApp(a) => ("app.put", format!("app:{}/{}", a.tenant, a.name)),
            Self::DeleteApp { tenant, name } => ("app.delete", format!("app:{tenant}/{name}")),
            Self::CreateApiKey(k) => ("api_key.create", format!("api_key:{}/{}", k.tenant, k.id)),
            Self::DeleteApiKey { tenant, id } => ("api_key.delete", format!("api_key:{tenant}/{id}")),
            Self::AddJwtKey(k) => ("jwt_key.create", format!("jwt_key:{}/{}", k.tenant, k.id)),
            Self::DeleteJwtKey { tenant, id } => ("jwt_key.delete", format!("jwt_key:{tenant}/{id}")),
            Self::Revoke(r) => ("token.revoke", format!("tenant:{}", r.tenant)),
        }
    }

    /// The tenant the change belongs to.
    pub fn tenant(&self) -> &str {
        match self {
            Self::CreateTenant(t) => &t.id,
            Self::PatchTenant { id, .. } | Self::DeleteTenant(id) => id,
            Self::PutApp(a) => &a.tenant,
            Self::CreateApiKey(k) => &k.tenant,
            Self::AddJwtKey(k) => &k.tenant,
            Self::Revoke(r) => &r.tenant,
            Self::DeleteApp { tenant, .. }
            | Self::DeleteApiKey { tenant, .. }
            | Self::DeleteJwtKey { tenant, .. } => tenant,
        }
    }
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A new row.
    Created,
    /// An existing row was replaced or changed.
    Updated,
    /// Removed.
    Deleted,
    /// Nothing matched (404).
    NotFound,
    /// It exists already (409).
    Conflict,
}
