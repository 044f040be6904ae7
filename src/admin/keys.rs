//! A tenant's credentials through the admin API (admin listener): gateway API keys (the key shown
//! once, at creation), tenant-bound JWT keys and key sets (checked before they are kept: a key set
//! is fetched once), and revocations; and the audit log.

use super::requests::{CreateApiKey, CreateJwtKey, Revoke, parse};
use super::tenants::{answer, invalid, no_content};
use super::write::{Answer, actor, changeable, known, not_found, store_failed};
use super::{AdminApp, error, views};
use crate::admit::auth::Binding;
use crate::admit::auth::jwks::JwksSource;
use crate::clock::unix_now;
use crate::store::model::{ApiKeyRow, Applied, Change, JwtKeyRow, JwtKeySpec, RevocationRow};
use crate::store::vault::{api_key_hash, last4};
use crate::tenancy::build::TENANT_JWKS_REFRESH;
use http::Response;
use pingora::protocols::http::ServerSession;
use serde_json::json;
use std::sync::Arc;

/// Most audit entries one call returns.
const MAX_AUDIT: i64 = 1000;

fn drawn(e: impl std::fmt::Display) -> Answer {
    tracing::warn!(message = "The system random source failed.", error = %e);
    Box::new(error(
        500,
        "internal_server_error",
        "No random key could be drawn",
    ))
}

impl AdminApp {
    /// `GET /admin/tenants/{t}/api-keys`.
    pub(super) fn list_api_keys(&self, t: &str) -> Result<Response<Vec<u8>>, Answer> {
        let snap = self.tenancy.load();
        known(&snap, t)?;
        let mut keys: Vec<_> = snap.api_keys.values().filter(|k| k.tenant == t).collect();
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(answer(
            200,
            &views::list(keys.into_iter().map(|k| views::api_key(k))),
        ))
    }

    /// `POST /admin/tenants/{t}/api-keys`: the only answer that ever holds a gateway API key.
    pub(super) async fn create_api_key(
        &self,
        session: &ServerSession,
        t: &str,
        body: &[u8],
    ) -> Result<Response<Vec<u8>>, Answer> {
        let snap = self.tenancy.load();
        changeable(&snap, t)?;
        let tenant = snap.tenants.get(t).ok_or_else(|| not_found("Tenant", t))?;
        let req: CreateApiKey = if body.iter().all(u8::is_ascii_whitespace) {
            CreateApiKey::default()
        } else {
            parse(body).map_err(|e| invalid(&e))?
        };
        let apps: Vec<&str> = tenant.apps.iter().map(|a| a.name.as_str()).collect();
        let lifetime = req.check(&apps).map_err(|e| invalid(&e))?;
        let vault = self.store_for_changes()?.vault();
        let key = vault.new_api_key().map_err(drawn)?;
        let now = unix_now() as i64;
        let row = ApiKeyRow {
            id: vault.new_id().map_err(drawn)?,
            tenant: t.to_string(),
            name: req.name,
            app: req.app,
            hash: api_key_hash(&key),
            last4: last4(&key),
            created_at: now,
            expires_at: lifetime.map(|l| now.saturating_add(i64::try_from(l).unwrap_or(i64::MAX))),
        };
        let shown = json!({
            "id": row.id,
            "name": row.name,
            "app": row.app,
            "created_at": row.created_at,
            "expires_at": row.expires_at,
            "key": key,
        });
        match self.write(Change::CreateApiKey(row), actor(session)).await? {
            Applied::NotFound => Err(not_found("Tenant", t)),
            _ => Ok(answer(201, &shown)),
        }
    }

    /// `DELETE /admin/tenants/{t}/api-keys/{id}`.
    pub(super) async fn delete_api_key(
        &self,
        session: &ServerSession,
        t: &str,
        id: &str,
    ) -> Result<Response<Vec<u8>>, Answer> {
        changeable(&self.tenancy.load(), t)?;
        let change = Change::DeleteApiKey {
            tenant: t.to_string(),
            id: id.to_string(),
        };
        match self.write(change, actor(session)).await? {
            Applied::NotFound => Err(not_found("API key", id)),
            _ => Ok(no_content()),
        }
    }

    /// `GET /admin/tenants/{t}/jwt-keys`.
    pub(super) fn list_jwt_keys(&self, t: &str) -> Result<Response<Vec<u8>>, Answer> {
        known(&self.tenancy.load(), t)?;
        let stored = self.tenancy.stored();
        let rows = stored
            .iter()
            .flat_map(|d| d.jwt_keys.iter())
            .filter(|k| k.tenant == t);
        Ok(answer(200, &views::list(rows.map(views::jwt_key))))
    }

    /// `POST /admin/tenants/{t}/jwt-keys`: a key set is fetched once and must hold a usable key.
    pub(super) async fn create_jwt_key(
        &self,
        session: &ServerSession,
        t: &str,
        body: &[u8],
    ) -> Result<Response<Vec<u8>>, Answer> {
        let snap = self.tenancy.load();
        changeable(&snap, t)?;
        known(&snap, t)?;
        let req: CreateJwtKey = parse(body).map_err(|e| invalid(&e))?;
        let (id, spec) = req.check().map_err(|e| invalid(&e))?;
        self.store_for_changes()?;
        if let JwtKeySpec::Jwks(url) = &spec {
            let probe = JwksSource {
                id: Arc::from(format!("probe:{t}/{id}")),
                url: url.clone(),
                binding: Binding::Tenants(Arc::from([t.to_string()])),
                refresh: TENANT_JWKS_REFRESH,
            };
            if let Err(e) = self.jwks.fetch_keys(&probe).await {
                let msg = format!("jwks_url: the key set could not be used: {e}");
                return Err(Box::new(error(400, "invalid_param", &msg)));
            }
        }
        let row = JwtKeyRow {
            tenant: t.to_string(),
            id: id.clone(),
            spec,
            created_at: unix_now() as i64,
        };
        let shown = views::jwt_key(&row);
        match self.write(Change::AddJwtKey(row), actor(session)).await? {
            Applied::NotFound => Err(not_found("Tenant", t)),
            Applied::Conflict => Err(Box::new(error(409, "conflict", &format!("JWT key {id} exists")))),
            _ => Ok(answer(201, &shown)),
        }
    }

    /// `DELETE /admin/tenants/{t}/jwt-keys/{id}`.
    pub(super) async fn delete_jwt_key(
        &self,
        session: &ServerSession,
        t: &str,
        id: &str,
    ) -> Result<Response<Vec<u8>>, Answer> {
        changeable(&self.tenancy.load(), t)?;
        let change = Change::DeleteJwtKey {
            tenant: t.to_string(),
            id: id.to_string(),
        };
        match self.write(change, actor(session)).await? {
            Applied::NotFound => Err(not_found("JWT key", id)),
            _ => Ok(no_content()),
        }
    }

    /// `GET /admin/tenants/{t}/revocations`.
    pub(super) fn list_revocations(&self, t: &str) -> Result<Response<Vec<u8>>, Answer> {
        known(&self.tenancy.load(), t)?;
        let stored = self.tenancy.stored();
        let rows = stored
            .iter()
            .flat_map(|d| d.revocations.iter())
            .filter(|r| r.tenant == t);
        Ok(answer(200, &views::list(rows.map(views::revocation))))
    }

    /// `POST /admin/tenants/{t}/revocations` (the file's tenants' tokens can be revoked too).
    pub(super) async fn revoke(
        &self,
        session: &ServerSession,
        t: &str,
        body: &[u8],
    ) -> Result<Response<Vec<u8>>, Answer> {
        known(&self.tenancy.load(), t)?;
        let req: Revoke = parse(body).map_err(|e| invalid(&e))?;
        req.check().map_err(|e| invalid(&e))?;
        let row = RevocationRow {
            tenant: t.to_string(),
            jti: req.jti,
            issued_before: req.issued_before,
            created_at: unix_now() as i64,
        };
        let shown = views::revocation(&row);
        self.write(Change::Revoke(row), actor(session)).await?;
        Ok(answer(201, &shown))
    }

    /// `GET /admin/audit?limit=N`: newest first.
    pub(super) async fn audit(&self, query: Option<&str>) -> Result<Response<Vec<u8>>, Answer> {
        let limit = match query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .find_map(|p| p.strip_prefix("limit="))
        {
            None => 100,
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (1..=MAX_AUDIT).contains(&n) => n,
                _ => {
                    let msg = format!("limit: must be a number from 1 to {MAX_AUDIT}");
                    return Err(Box::new(error(400, "invalid_param", &msg)));
                }
            },
        };
        if self.store.is_none() {
            return Ok(answer(200, &views::list(std::iter::empty())));
        }
        let store = self.store_for_changes()?;
        let entries = store.audit(limit).await.map_err(|e| Box::new(store_failed(&e)))?;
        Ok(answer(200, &views::list(entries.iter().map(views::audit))))
    }
}
