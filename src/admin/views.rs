//! What the admin API shows (admin listener): tenants, apps, API keys, JWT keys, revocations and
//! audit entries as JSON. Only the last four characters of any key ever appear. Pure.

use crate::admit::snapshot::{ApiKey, App, Tenant};
use crate::store::model::{AuditEntry, JwtKeyRow, JwtKeySpec, RevocationRow};
use serde_json::{Value, json};

/// A tenant object.
pub fn tenant(t: &Tenant) -> Value {
    json!({
        "id": t.id,
        "disabled": t.disabled,
        "source": t.source.name(),
        "created_at": t.created_at,
        "limits": t.limits,
        "apps": t.apps.iter().map(|a| app(a)).collect::<Vec<_>>(),
    })
}

/// An app object (its key shown by the last four characters).
pub fn app(a: &App) -> Value {
    json!({
        "name": a.name,
        "key_last4": a.key_last4,
        "scope_users": a.scope_users,
        "app_wide_endpoints": a.app_wide,
        "max_tokens_per_request": a.max_tokens_per_request,
        "max_share": a.max_share,
    })
}

/// A gateway API key as listed (never the key).
pub fn api_key(k: &ApiKey) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "app": k.app,
        "created_at": k.created_at,
        "expires_at": k.expires_at,
        "last4": k.last4,
    })
}

/// A tenant JWT key as listed (never a secret; a public key by its algorithm only).
pub fn jwt_key(k: &JwtKeyRow) -> Value {
    let mut v = json!({
        "id": k.id,
        "algorithm": k.spec.algorithm(),
        "created_at": k.created_at,
    });
    if let JwtKeySpec::Jwks(url) = &k.spec {
        v["jwks_url"] = json!(url);
    }
    v
}

/// A revocation.
pub fn revocation(r: &RevocationRow) -> Value {
    let mut v = json!({"created_at": r.created_at});
    if let Some(j) = &r.jti {
        v["jti"] = json!(j);
    }
    if let Some(b) = r.issued_before {
        v["issued_before"] = json!(b);
    }
    v
}

/// An audit entry.
pub fn audit(e: &AuditEntry) -> Value {
    json!({
        "at": e.at,
        "action": e.action,
        "target": e.target,
        "replica": e.replica,
        "actor": e.actor,
    })
}

/// `{"data": [...]}`.
pub fn list(items: impl Iterator<Item = Value>) -> Value {
    json!({"data": items.collect::<Vec<_>>()})
}
