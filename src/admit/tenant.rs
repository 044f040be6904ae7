//! Maps a verified identity to its tenant and Dify app (request step 1, `request_filter`).
//! App choice: the token's app claim, else the `X-Dify-App` header, else the tenant's first app.

use super::auth::Identity;
use crate::admit::snapshot::{App, Snapshot, Tenant};
use std::sync::Arc;

/// Why a verified caller may not proceed (403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    /// The tenant claim names no configured tenant.
    #[error("Tenant is not known to the gateway")]
    UnknownTenant,
    /// The chosen app is not one of the tenant's apps.
    #[error("App is not available to this tenant")]
    UnknownApp,
    /// The tenant is disabled.
    #[error("Tenant is disabled")]
    Disabled,
}

impl TenantError {
    /// Every reason, for metric pre-creation.
    pub const ALL: [TenantError; 3] = [Self::UnknownTenant, Self::UnknownApp, Self::Disabled];

    /// Bounded label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownTenant => "unknown_tenant",
            Self::UnknownApp => "unknown_app",
            Self::Disabled => "tenant_disabled",
        }
    }
}

/// Resolves the tenant and app for `id`; `header_app` is the `X-Dify-App` header, if any.
pub fn resolve(
    id: &Identity,
    header_app: Option<&str>,
    snap: &Snapshot,
) -> Result<(Arc<Tenant>, Arc<App>), TenantError> {
    let tenant = snap.tenants.get(&id.tenant).ok_or(TenantError::UnknownTenant)?;
    if tenant.disabled {
        return Err(TenantError::Disabled);
    }
    let app = match id.app.as_deref().or(header_app.map(str::trim)) {
        Some(name) => tenant.app(name),
        None => tenant.apps.first(),
    }
    .ok_or(TenantError::UnknownApp)?;
    Ok((tenant.clone(), app.clone()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::admit::auth::Via;
    use crate::secret::Secret;

    fn snap() -> Snapshot {
        let app = |n: &str| Arc::new(App::new(n, Secret::new(format!("app-{n}"))));
        let t = Arc::new(Tenant::new("acme", vec![app("writer"), app("editor")]));
        let mut s = Snapshot::empty();
        s.tenants.insert("acme".to_string(), t);
        s
    }

    fn id(tenant: &str, app: Option<&str>) -> Identity {
        Identity {
            tenant: tenant.into(),
            app: app.map(Into::into),
            exp: 0,
            via: Via::ApiKey {
                id: "k".into(),
                created_at: 0,
            },
        }
    }
    #[test]
    fn picks_claim_then_header_then_first_app() {
        let s = snap();
        assert_eq!(
            resolve(&id("acme", Some("editor")), Some("writer"), &s)
                .unwrap()
                .1
                .name,
            "editor"
        );
        assert_eq!(
            resolve(&id("acme", None), Some("editor"), &s).unwrap().1.name,
            "editor"
        );
        assert_eq!(resolve(&id("acme", None), None, &s).unwrap().1.name, "writer");
    }

    #[test]
    fn refuses_unknown_tenant_and_app() {
        let s = snap();
        assert_eq!(
            resolve(&id("evil", None), None, &s).unwrap_err(),
            TenantError::UnknownTenant
        );
        assert_eq!(
            resolve(&id("acme", Some("x")), None, &s).unwrap_err(),
            TenantError::UnknownApp
        );
        assert_eq!(
            resolve(&id("acme", None), Some("x"), &s).unwrap_err(),
            TenantError::UnknownApp
        );
    }
}
