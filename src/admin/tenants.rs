//! Tenants and their apps through the admin API (admin listener): list, show, create, change,
//! delete, and create or rotate an app's Dify key. Reads come from the snapshot; changes go
//! through [`super::write`].

use super::requests::{CreateTenant, Invalid, PatchTenant, PutApp, parse};
use super::write::{Answer, actor, changeable, known, not_found};
use super::{AdminApp, error, json, views};
use crate::clock::unix_now;
use crate::store::model::{Applied, Change, TenantRow};
use http::Response;
use pingora::protocols::http::ServerSession;

/// JSON `value` with `status`.
pub(super) fn answer(status: u16, value: &serde_json::Value) -> Response<Vec<u8>> {
    json(status, serde_json::to_vec(value).unwrap_or_default())
}

/// `400 invalid_param` for a refused body.
pub(super) fn invalid(e: &Invalid) -> Answer {
    Box::new(error(400, "invalid_param", &e.to_string()))
}

/// `204`, no body.
pub(super) fn no_content() -> Response<Vec<u8>> {
    Response::builder()
        .status(204)
        .body(Vec::new())
        .unwrap_or_default()
}

impl AdminApp {
    /// `GET /admin/tenants`.
    pub(super) fn list_tenants(&self) -> Response<Vec<u8>> {
        let snap = self.tenancy.load();
        let mut tenants: Vec<_> = snap.tenants.values().collect();
        tenants.sort_by(|a, b| a.id.cmp(&b.id));
        answer(200, &views::list(tenants.into_iter().map(|t| views::tenant(t))))
    }

    /// `GET /admin/tenants/{t}`.
    pub(super) fn get_tenant(&self, t: &str) -> Result<Response<Vec<u8>>, Answer> {
        let snap = self.tenancy.load();
        let tenant = snap.tenants.get(t).ok_or_else(|| not_found("Tenant", t))?;
        Ok(answer(200, &views::tenant(tenant)))
    }

    /// The tenant as this replica now sees it, with `status`.
    fn show(&self, t: &str, status: u16) -> Response<Vec<u8>> {
        match self.tenancy.load().tenants.get(t) {
            Some(tenant) => answer(status, &views::tenant(tenant)),
            None => answer(status, &serde_json::json!({"id": t})),
        }
    }

    /// `POST /admin/tenants`.
    pub(super) async fn create_tenant(
        &self,
        session: &ServerSession,
        body: &[u8],
    ) -> Result<Response<Vec<u8>>, Answer> {
        let req: CreateTenant = parse(body).map_err(|e| invalid(&e))?;
        req.check().map_err(|e| invalid(&e))?;
        if self.tenancy.load().tenants.contains_key(&req.id) {
            return Err(conflict(&req.id));
        }
        let row = TenantRow {
            id: req.id.clone(),
            disabled: req.disabled,
            limits: req.limits,
            created_at: unix_now() as i64,
        };
        match self.write(Change::CreateTenant(row), actor(session)).await? {
            Applied::Conflict => Err(conflict(&req.id)),
            _ => Ok(self.show(&req.id, 201)),
        }
    }

    /// `PATCH /admin/tenants/{t}`.
    pub(super) async fn patch_tenant(
        &self,
        session: &ServerSession,
        t: &str,
        body: &[u8],
    ) -> Result<Response<Vec<u8>>, Answer> {
        changeable(&self.tenancy.load(), t)?;
        let req: PatchTenant = parse(body).map_err(|e| invalid(&e))?;
        req.check().map_err(|e| invalid(&e))?;
        let change = Change::PatchTenant {
            id: t.to_string(),
            disabled: req.disabled,
            limits: req.limits,
        };
        match self.write(change, actor(session)).await? {
            Applied::NotFound => Err(not_found("Tenant", t)),
            _ => Ok(self.show(t, 200)),
        }
    }

    /// `DELETE /admin/tenants/{t}`.
    pub(super) async fn delete_tenant(
        &self,
        session: &ServerSession,
        t: &str,
    ) -> Result<Response<Vec<u8>>, Answer> {
        changeable(&self.tenancy.load(), t)?;
        match self
            .write(Change::DeleteTenant(t.to_string()), actor(session))
            .await?
        {
            Applied::NotFound => Err(not_found("Tenant", t)),
            _ => Ok(no_content()),
        }
    }

    /// `PUT /admin/tenants/{t}/apps/{app}`: creates the app, or replaces it (key rotation).
    pub(super) async fn put_app(
        &self,
        session: &ServerSession,
        t: &str,
        app: &str,
        body: &[u8],
    ) -> Result<Response<Vec<u8>>, Answer> {
        let snap = self.tenancy.load();
        changeable(&snap, t)?;
        known(&snap, t)?;
        let req: PutApp = parse(body).map_err(|e| invalid(&e))?;
        let key = req.api_key.trim().to_string();
        let mut sharers: Vec<String> = snap
            .tenants
            .values()
            .filter(|o| o.id != t && o.apps.iter().any(|a| a.api_key.expose() == key))
            .map(|o| o.id.clone())
            .collect();
        sharers.sort();
        let row = req.into_row(t, app, &sharers).map_err(|e| invalid(&e))?;
        let status = match self.write(Change::PutApp(row), actor(session)).await? {
            Applied::NotFound => return Err(not_found("Tenant", t)),
            Applied::Created => 201,
            _ => 200,
        };
        let snap = self.tenancy.load();
        match snap.tenants.get(t).and_then(|tenant| tenant.app(app)) {
            Some(a) => Ok(answer(status, &views::app(a))),
            None => Ok(answer(status, &serde_json::json!({"name": app}))),
        }
    }

    /// `DELETE /admin/tenants/{t}/apps/{app}`.
    pub(super) async fn delete_app(
        &self,
        session: &ServerSession,
        t: &str,
        app: &str,
    ) -> Result<Response<Vec<u8>>, Answer> {
        changeable(&self.tenancy.load(), t)?;
        let change = Change::DeleteApp {
            tenant: t.to_string(),
            name: app.to_string(),
        };
        match self.write(change, actor(session)).await? {
            Applied::NotFound => Err(not_found("App", &format!("{t}/{app}"))),
            _ => Ok(no_content()),
        }
    }

    /// `GET /admin/tenants/{t}/usage`: the tenant's limits and what it uses in their current windows
    /// (shared by every replica with Redis; this replica's without).
    pub(super) async fn usage(&self, t: &str) -> Result<Response<Vec<u8>>, Answer> {
        let snap = self.tenancy.load();
        let tenant = snap.tenants.get(t).ok_or_else(|| not_found("Tenant", t))?;
        let usage = self
            .limiter
            .usage(&tenant.id, &tenant.limits)
            .await
            .ok_or_else(|| {
                Box::new(error(
                    503,
                    "service_unavailable",
                    "Redis did not answer; the usage cannot be read now",
                ))
            })?;
        Ok(answer(
            200,
            &serde_json::json!({"limits": tenant.limits, "usage": usage}),
        ))
    }
}

fn conflict(id: &str) -> Answer {
    Box::new(error(409, "conflict", &format!("Tenant {id} exists")))
}
