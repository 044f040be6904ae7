//! The SQL behind the store (admin writes, snapshot rebuilds): one code path for SQLite and
//! PostgreSQL through sqlx's `Any` driver. Every write is one transaction that first bumps the change
//! counter (which takes the write lock, so concurrent writers on any replica serialize and no update
//! is lost), makes the change, appends to the audit log and, on PostgreSQL, notifies the replicas.

use super::model::{
    ApiKeyRow, AppRow, Applied, AuditEntry, Change, JwtKeyRow, JwtKeySpec, RevocationRow, StoreData,
    TenantRow,
};
use super::vault::Vault;
use super::{Backend, StoreError};
use crate::admit::limits::Limits;
use crate::secret::Secret;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, Row};

/// The notification channel of PostgreSQL replicas.
pub const CHANNEL: &str = "dify_gateway_changes";

/// A statement with `$1`-style placeholders, which both PostgreSQL and sqlx's SQLite driver number.
fn q(_backend: Backend, text: &'static str) -> Query<'static, Any, AnyArguments<'static>> {
    sqlx::query(text)
}

fn bool_of(row: &AnyRow, col: &str) -> Result<bool, sqlx::Error> {
    Ok(row.try_get::<i64, _>(col)? != 0)
}

/// Reads everything in one transaction.
/// A row that cannot be read is left out with a warning: one bad row must not stop every change
/// from reaching the snapshot.
pub async fn load(
    conn: &mut AnyConnection,
    backend: Backend,
    vault: &Vault,
) -> Result<StoreData, StoreError> {
    let mut warnings = Vec::new();
    let data = StoreData {
        version: version(&mut *conn, backend).await?,
        tenants: kept(tenants(&mut *conn, backend).await?, &mut warnings),
        apps: kept(apps(&mut *conn, backend, vault).await?, &mut warnings),
        api_keys: kept(api_keys(&mut *conn, backend).await?, &mut warnings),
        jwt_keys: kept(jwt_keys(&mut *conn, backend, vault).await?, &mut warnings),
        revocations: kept(revocations(&mut *conn, backend).await?, &mut warnings),
        warnings: Vec::new(),
    };
    Ok(StoreData { warnings, ..data })
}

/// The rows read; the others become warnings.
fn kept<T>(rows: Vec<Result<T, String>>, warnings: &mut Vec<String>) -> Vec<T> {
    rows.into_iter()
        .filter_map(|r| r.map_err(|w| warnings.push(w)).ok())
        .collect()
}

/// A row, or why it was left out.
type Read<T> = Vec<Result<T, String>>;

async fn tenants(conn: &mut AnyConnection, backend: Backend) -> Result<Read<TenantRow>, StoreError> {
    let rows = q(
        backend,
        "SELECT id, disabled, limits, created_at FROM gw_tenants ORDER BY id",
    )
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            let id: String = row.try_get("id")?;
            let limits: String = row.try_get("limits")?;
            let Ok(limits) = serde_json::from_str::<Limits>(&limits) else {
                return Ok(Err(format!(
                    "store tenant `{id}` is left out: its limits cannot be read"
                )));
            };
            Ok(Ok(TenantRow {
                id,
                disabled: bool_of(row, "disabled")?,
                limits,
                created_at: row.try_get("created_at")?,
            }))
        })
        .collect()
}

async fn apps(conn: &mut AnyConnection, backend: Backend, vault: &Vault) -> Result<Read<AppRow>, StoreError> {
    let text = "SELECT tenant, name, key_sealed, key_last4, scope_users, app_wide, max_tokens, max_share \
                FROM gw_apps ORDER BY tenant, created_at, name";
    let rows = q(backend, text).fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            let (tenant, name): (String, String) = (row.try_get("tenant")?, row.try_get("name")?);
            let sealed: Vec<u8> = row.try_get("key_sealed")?;
            let Ok(key) = vault.open(&app_binding(&tenant, &name), &sealed) else {
                return Ok(Err(format!(
                    "app `{tenant}/{name}` is left out: its Dify key cannot be decrypted"
                )));
            };
            Ok(Ok(AppRow {
                api_key: Secret::new(key),
                key_last4: row.try_get("key_last4")?,
                scope_users: bool_of(row, "scope_users")?,
                app_wide_endpoints: row.try_get::<Option<i64>, _>("app_wide")?.map(|v| v != 0),
                max_tokens_per_request: row
                    .try_get::<Option<i64>, _>("max_tokens")?
                    .map(|v| v.max(0) as u64),
                max_share: row.try_get("max_share")?,
                tenant,
                name,
            }))
        })
        .collect()
}

async fn api_keys(conn: &mut AnyConnection, backend: Backend) -> Result<Read<ApiKeyRow>, StoreError> {
    let text = "SELECT id, tenant, name, app, hash, last4, created_at, expires_at FROM gw_api_keys ORDER BY created_at, id";
    let rows = q(backend, text).fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            let hash: Vec<u8> = row.try_get("hash")?;
            let id: String = row.try_get("id")?;
            let Ok(hash) = <[u8; 32]>::try_from(hash) else {
                return Ok(Err(format!(
                    "API key `{id}` is left out: its hash is not 32 bytes"
                )));
            };
            Ok(Ok(ApiKeyRow {
                id,
                tenant: row.try_get("tenant")?,
                name: row.try_get("name")?,
                app: row.try_get("app")?,
                hash,
                last4: row.try_get("last4")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
            }))
        })
        .collect()
}

async fn jwt_keys(
    conn: &mut AnyConnection,
    backend: Backend,
    vault: &Vault,
) -> Result<Read<JwtKeyRow>, StoreError> {
    let text =
        "SELECT tenant, id, algorithm, material, jwks_url, created_at FROM gw_jwt_keys ORDER BY tenant, id";
    let rows = q(backend, text).fetch_all(conn).await?;
    rows.iter()
        .map(|row| match jwt_key(row, vault) {
            Ok(k) => Ok(Ok(k)),
            Err(StoreError::Corrupt(w)) => Ok(Err(format!("{w}: left out"))),
            Err(StoreError::Secret(_)) => {
                Ok(Err("a JWT key is left out: its secret cannot be decrypted".into()))
            }
            Err(e) => Err(e),
        })
        .collect()
}

async fn revocations(conn: &mut AnyConnection, backend: Backend) -> Result<Read<RevocationRow>, StoreError> {
    let text = "SELECT tenant, jti, issued_before, created_at FROM gw_revocations ORDER BY seq";
    let rows = q(backend, text).fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            Ok(Ok(RevocationRow {
                tenant: row.try_get("tenant")?,
                jti: row.try_get("jti")?,
                issued_before: row.try_get("issued_before")?,
                created_at: row.try_get("created_at")?,
            }))
        })
        .collect()
}

fn jwt_key(row: &AnyRow, vault: &Vault) -> Result<JwtKeyRow, StoreError> {
    let (tenant, id, algorithm): (String, String, String) = (
        row.try_get("tenant")?,
        row.try_get("id")?,
        row.try_get("algorithm")?,
    );
    let material: Option<Vec<u8>> = row.try_get("material")?;
    let text = |m: Option<Vec<u8>>| {
        m.and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| StoreError::Corrupt(format!("JWT key {tenant}/{id} has no readable key")))
    };
    let spec = match algorithm.as_str() {
        "HS256" => {
            let sealed = material
                .ok_or_else(|| StoreError::Corrupt(format!("JWT key {tenant}/{id} has no secret")))?;
            JwtKeySpec::Hs256(Secret::new(vault.open(&jwt_binding(&tenant, &id), &sealed)?))
        }
        "RS256" => JwtKeySpec::Rs256(text(material)?),
        "ES256" => JwtKeySpec::Es256(text(material)?),
        "JWKS" => JwtKeySpec::Jwks(
            row.try_get::<Option<String>, _>("jwks_url")?
                .ok_or_else(|| StoreError::Corrupt(format!("JWT key set {tenant}/{id} has no URL")))?,
        ),
        other => {
            return Err(StoreError::Corrupt(format!(
                "JWT key {tenant}/{id} has algorithm {other}"
            )));
        }
    };
    let created_at = row.try_get("created_at")?;
    Ok(JwtKeyRow {
        tenant,
        id,
        spec,
        created_at,
    })
}

/// What an app's sealed key is bound to.
pub fn app_binding(tenant: &str, name: &str) -> String {
    format!("app:{tenant}:{name}")
}

/// What a tenant JWT secret is bound to.
pub fn jwt_binding(tenant: &str, id: &str) -> String {
    format!("jwt:{tenant}:{id}")
}

/// The change counter.
pub async fn version(conn: &mut AnyConnection, backend: Backend) -> Result<i64, StoreError> {
    let row = q(backend, "SELECT version FROM gw_meta WHERE id = 1")
        .fetch_one(conn)
        .await?;
    Ok(row.try_get("version")?)
}

/// The newest `limit` audit entries, newest first.
pub async fn audit(
    conn: &mut AnyConnection,
    backend: Backend,
    limit: i64,
) -> Result<Vec<AuditEntry>, StoreError> {
    let rows = q(
        backend,
        "SELECT at, actor, action, target, replica FROM gw_audit ORDER BY seq DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditEntry {
                at: r.try_get("at")?,
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                target: r.try_get("target")?,
                replica: r.try_get("replica")?,
            })
        })
        .collect()
}

/// Who made a change, for the audit log.
pub struct Author<'a> {
    /// The admin caller.
    pub actor: &'a str,
    /// This replica.
    pub replica: &'a str,
    /// Unix seconds.
    pub now: i64,
}

/// Makes `change` inside the open transaction `conn`; the caller commits.
pub async fn apply(
    conn: &mut AnyConnection,
    backend: Backend,
    vault: &Vault,
    change: &Change,
    who: &Author<'_>,
) -> Result<Applied, StoreError> {
    let version: i64 = q(
        backend,
        "UPDATE gw_meta SET version = version + 1 WHERE id = 1 RETURNING version",
    )
    .fetch_one(&mut *conn)
    .await?
    .try_get("version")?;
    let applied = write(conn, backend, vault, change, who.now).await?;
    if matches!(applied, Applied::NotFound | Applied::Conflict) {
        return Ok(applied);
    }
    let (action, target) = change.describe();
    q(
        backend,
        "INSERT INTO gw_audit (at, actor, action, target, replica) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(who.now)
    .bind(who.actor.to_string())
    .bind(action)
    .bind(target)
    .bind(who.replica.to_string())
    .execute(&mut *conn)
    .await?;
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(version.to_string())
            .execute(&mut *conn)
            .await?;
    }
    Ok(applied)
}

async fn exists(
    conn: &mut AnyConnection,
    backend: Backend,
    text: &'static str,
    args: &[&str],
) -> Result<bool, StoreError> {
    let mut query = q(backend, text);
    for a in args {
        query = query.bind(a.to_string());
    }
    Ok(query.fetch_optional(conn).await?.is_some())
}

async fn tenant_exists(conn: &mut AnyConnection, backend: Backend, id: &str) -> Result<bool, StoreError> {
    exists(
        conn,
        backend,
        "SELECT 1 AS one FROM gw_tenants WHERE id = $1",
        &[id],
    )
    .await
}

async fn write(
    conn: &mut AnyConnection,
    backend: Backend,
    vault: &Vault,
    change: &Change,
    now: i64,
) -> Result<Applied, StoreError> {
    let tenant = change.tenant();
    let known = tenant_exists(conn, backend, tenant).await?;
    match change {
        Change::CreateTenant(_) if known => return Ok(Applied::Conflict),
        // Tokens of the configuration file's tenants can be revoked too.
        Change::CreateTenant(_) | Change::Revoke(_) => {}
        _ if !known => return Ok(Applied::NotFound),
        _ => {}
    }
    match change {
        Change::CreateTenant(t) => {
            let limits = serde_json::to_string(&t.limits).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            q(
                backend,
                "INSERT INTO gw_tenants (id, disabled, limits, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(t.id.clone())
            .bind(i64::from(t.disabled))
            .bind(limits)
            .bind(t.created_at)
            .execute(conn)
            .await?;
            Ok(Applied::Created)
        }
        Change::PatchTenant { id, disabled, limits } => {
            if let Some(d) = disabled {
                q(backend, "UPDATE gw_tenants SET disabled = $1 WHERE id = $2")
                    .bind(i64::from(*d))
                    .bind(id.clone())
                    .execute(&mut *conn)
                    .await?;
            }
            if let Some(l) = limits {
                let text = serde_json::to_string(l).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                q(backend, "UPDATE gw_tenants SET limits = $1 WHERE id = $2")
                    .bind(text)
                    .bind(id.clone())
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(Applied::Updated)
        }
        Change::DeleteTenant(id) => {
            for table in [
                "DELETE FROM gw_apps WHERE tenant = $1",
                "DELETE FROM gw_api_keys WHERE tenant = $1",
                "DELETE FROM gw_jwt_keys WHERE tenant = $1",
                "DELETE FROM gw_tenants WHERE id = $1",
            ] {
                q(backend, table).bind(id.clone()).execute(&mut *conn).await?;
            }
            // Its revocations stay, and every token issued so far is cut: a tenant created again
            // under the same id does not bring its old tokens back.
            q(
                backend,
                "INSERT INTO gw_revocations (tenant, jti, issued_before, created_at) VALUES ($1, NULL, $2, $2)",
            )
            .bind(id.clone())
            .bind(now)
            .execute(&mut *conn)
            .await?;
            Ok(Applied::Deleted)
        }
        Change::PutApp(a) => put_app(conn, backend, vault, a, now).await,
        Change::DeleteApp { tenant, name } => {
            delete(
                conn,
                backend,
                "DELETE FROM gw_apps WHERE tenant = $1 AND name = $2",
                tenant,
                name,
            )
            .await
        }
        Change::CreateApiKey(k) => {
            q(
                backend,
                "INSERT INTO gw_api_keys (id, tenant, name, app, hash, last4, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(k.id.clone())
            .bind(k.tenant.clone())
            .bind(k.name.clone())
            .bind(k.app.clone())
            .bind(k.hash.to_vec())
            .bind(k.last4.clone())
            .bind(k.created_at)
            .bind(k.expires_at)
            .execute(conn)
            .await?;
            Ok(Applied::Created)
        }
        Change::DeleteApiKey { tenant, id } => {
            delete(
                conn,
                backend,
                "DELETE FROM gw_api_keys WHERE tenant = $1 AND id = $2",
                tenant,
                id,
            )
            .await
        }
        Change::AddJwtKey(k) => add_jwt_key(conn, backend, vault, k).await,
        Change::DeleteJwtKey { tenant, id } => {
            delete(
                conn,
                backend,
                "DELETE FROM gw_jwt_keys WHERE tenant = $1 AND id = $2",
                tenant,
                id,
            )
            .await
        }
        Change::Revoke(r) => {
            q(
                backend,
                "INSERT INTO gw_revocations (tenant, jti, issued_before, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(r.tenant.clone())
            .bind(r.jti.clone())
            .bind(r.issued_before)
            .bind(r.created_at)
            .execute(conn)
            .await?;
            Ok(Applied::Created)
        }
    }
}

async fn delete(
    conn: &mut AnyConnection,
    backend: Backend,
    text: &'static str,
    tenant: &str,
    id: &str,
) -> Result<Applied, StoreError> {
    let done = q(backend, text)
        .bind(tenant.to_string())
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(if done.rows_affected() > 0 {
        Applied::Deleted
    } else {
        Applied::NotFound
    })
}

async fn put_app(
    conn: &mut AnyConnection,
    backend: Backend,
    vault: &Vault,
    a: &AppRow,
    now: i64,
) -> Result<Applied, StoreError> {
    let replacing = exists(
        conn,
        backend,
        "SELECT 1 AS one FROM gw_apps WHERE tenant = $1 AND name = $2",
        &[&a.tenant, &a.name],
    )
    .await?;
    let sealed = vault.seal(&app_binding(&a.tenant, &a.name), a.api_key.expose())?;
    let max_tokens = a
        .max_tokens_per_request
        .map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    let text = if replacing {
        "UPDATE gw_apps SET key_sealed = $3, key_last4 = $4, scope_users = $5, app_wide = $6, max_tokens = $7, \
         max_share = $8, updated_at = $9 WHERE tenant = $1 AND name = $2"
    } else {
        "INSERT INTO gw_apps (tenant, name, key_sealed, key_last4, scope_users, app_wide, max_tokens, max_share, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)"
    };
    q(backend, text)
        .bind(a.tenant.clone())
        .bind(a.name.clone())
        .bind(sealed)
        .bind(a.key_last4.clone())
        .bind(i64::from(a.scope_users))
        .bind(a.app_wide_endpoints.map(i64::from))
        .bind(max_tokens)
        .bind(a.max_share)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(if replacing {
        Applied::Updated
    } else {
        Applied::Created
    })
}

async fn add_jwt_key(
    conn: &mut AnyConnection,
    backend: Backend,
    vault: &Vault,
    k: &JwtKeyRow,
) -> Result<Applied, StoreError> {
    let taken = exists(
        conn,
        backend,
        "SELECT 1 AS one FROM gw_jwt_keys WHERE tenant = $1 AND id = $2",
        &[&k.tenant, &k.id],
    )
    .await?;
    if taken {
        return Ok(Applied::Conflict);
    }
    let (material, url): (Option<Vec<u8>>, Option<String>) = match &k.spec {
        JwtKeySpec::Hs256(s) => (
            Some(vault.seal(&jwt_binding(&k.tenant, &k.id), s.expose())?),
            None,
        ),
        JwtKeySpec::Rs256(pem) | JwtKeySpec::Es256(pem) => (Some(pem.as_bytes().to_vec()), None),
        JwtKeySpec::Jwks(u) => (None, Some(u.clone())),
    };
    q(
        backend,
        "INSERT INTO gw_jwt_keys (tenant, id, algorithm, material, jwks_url, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(k.tenant.clone())
    .bind(k.id.clone())
    .bind(k.spec.algorithm())
    .bind(material)
    .bind(url)
    .bind(k.created_at)
    .execute(conn)
    .await?;
    Ok(Applied::Created)
}
