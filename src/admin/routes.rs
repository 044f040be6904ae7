//! The admin API's routes (admin listener): method and path to one [`AdminRoute`], or why not (404,
//! or 405 with the methods the path takes). Path segments that could never name a tenant, app or key
//! are not found. Pure.

/// One admin endpoint with the ids its path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminRoute {
    /// `GET /admin/tenants`.
    ListTenants,
    /// `POST /admin/tenants`.
    CreateTenant,
    /// `GET /admin/tenants/{t}`.
    GetTenant(String),
    /// `PATCH /admin/tenants/{t}`.
    PatchTenant(String),
    /// `DELETE /admin/tenants/{t}`.
    DeleteTenant(String),
    /// `PUT /admin/tenants/{t}/apps/{app}`.
    PutApp(String, String),
    /// `DELETE /admin/tenants/{t}/apps/{app}`.
    DeleteApp(String, String),
    /// `GET /admin/tenants/{t}/api-keys`.
    ListApiKeys(String),
    /// `POST /admin/tenants/{t}/api-keys`.
    CreateApiKey(String),
    /// `DELETE /admin/tenants/{t}/api-keys/{id}`.
    DeleteApiKey(String, String),
    /// `GET /admin/tenants/{t}/jwt-keys`.
    ListJwtKeys(String),
    /// `POST /admin/tenants/{t}/jwt-keys`.
    CreateJwtKey(String),
    /// `DELETE /admin/tenants/{t}/jwt-keys/{id}`.
    DeleteJwtKey(String, String),
    /// `GET /admin/tenants/{t}/revocations`.
    ListRevocations(String),
    /// `POST /admin/tenants/{t}/revocations`.
    Revoke(String),
    /// `GET /admin/tenants/{t}/usage`.
    Usage(String),
    /// `GET /admin/audit`.
    Audit,
    /// `POST /admin/cache/invalidate`.
    InvalidateCache,
}

/// Why a request matches no admin route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unrouted {
    /// No such path.
    NotFound,
    /// The path exists; these methods are allowed on it.
    MethodNotAllowed(&'static str),
}

/// Whether `s` can be an id: 1–128 of `[A-Za-z0-9._:-]`, not starting with a dot.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && !s.starts_with('.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// The route of `method` on `path` (without the query).
pub fn route(method: &str, path: &str) -> Result<AdminRoute, Unrouted> {
    let rest = path.strip_prefix("/admin/").ok_or(Unrouted::NotFound)?;
    let parts: Vec<&str> = rest.split('/').collect();
    let id = |s: &str| valid_id(s).then(|| s.to_string()).ok_or(Unrouted::NotFound);
    let pick = |table: &[(&str, AdminRoute)], allow: &'static str| {
        table
            .iter()
            .find(|(m, _)| *m == method)
            .map(|(_, r)| r.clone())
            .ok_or(Unrouted::MethodNotAllowed(allow))
    };
    match parts.as_slice() {
        ["tenants"] => pick(
            &[
                ("GET", AdminRoute::ListTenants),
                ("HEAD", AdminRoute::ListTenants),
                ("POST", AdminRoute::CreateTenant),
            ],
            "GET, HEAD, POST",
        ),
        ["tenants", t] => {
            let t = id(t)?;
            pick(
                &[
                    ("GET", AdminRoute::GetTenant(t.clone())),
                    ("HEAD", AdminRoute::GetTenant(t.clone())),
                    ("PATCH", AdminRoute::PatchTenant(t.clone())),
                    ("DELETE", AdminRoute::DeleteTenant(t)),
                ],
                "GET, HEAD, PATCH, DELETE",
            )
        }
        ["tenants", t, "apps", a] => {
            let (t, a) = (id(t)?, id(a)?);
            pick(
                &[
                    ("PUT", AdminRoute::PutApp(t.clone(), a.clone())),
                    ("DELETE", AdminRoute::DeleteApp(t, a)),
                ],
                "PUT, DELETE",
            )
        }
        ["tenants", t, kind @ ("api-keys" | "jwt-keys" | "revocations")] => {
            let t = id(t)?;
            let (list, create) = match *kind {
                "api-keys" => (AdminRoute::ListApiKeys(t.clone()), AdminRoute::CreateApiKey(t)),
                "jwt-keys" => (AdminRoute::ListJwtKeys(t.clone()), AdminRoute::CreateJwtKey(t)),
                _ => (AdminRoute::ListRevocations(t.clone()), AdminRoute::Revoke(t)),
            };
            pick(
                &[("GET", list.clone()), ("HEAD", list), ("POST", create)],
                "GET, HEAD, POST",
            )
        }
        ["tenants", t, kind @ ("api-keys" | "jwt-keys"), k] => {
            let (t, k) = (id(t)?, id(k)?);
            let delete = if *kind == "api-keys" {
                AdminRoute::DeleteApiKey(t, k)
            } else {
                AdminRoute::DeleteJwtKey(t, k)
            };
            pick(&[("DELETE", delete)], "DELETE")
        }
        ["tenants", t, "usage"] => {
            let t = id(t)?;
            pick(
                &[
                    ("GET", AdminRoute::Usage(t.clone())),
                    ("HEAD", AdminRoute::Usage(t)),
                ],
                "GET, HEAD",
            )
        }
        ["audit"] => pick(
            &[("GET", AdminRoute::Audit), ("HEAD", AdminRoute::Audit)],
            "GET, HEAD",
        ),
        ["cache", "invalidate"] => pick(&[("POST", AdminRoute::InvalidateCache)], "POST"),
        _ => Err(Unrouted::NotFound),
    }
}

/// Every route as `(method, path template)`, for the OpenAPI check.
pub const TEMPLATES: &[(&str, &str)] = &[
    ("GET", "/admin/tenants"),
    ("POST", "/admin/tenants"),
    ("GET", "/admin/tenants/{tenant}"),
    ("PATCH", "/admin/tenants/{tenant}"),
    ("DELETE", "/admin/tenants/{tenant}"),
    ("PUT", "/admin/tenants/{tenant}/apps/{app}"),
    ("DELETE", "/admin/tenants/{tenant}/apps/{app}"),
    ("GET", "/admin/tenants/{tenant}/api-keys"),
    ("POST", "/admin/tenants/{tenant}/api-keys"),
    ("DELETE", "/admin/tenants/{tenant}/api-keys/{id}"),
    ("GET", "/admin/tenants/{tenant}/jwt-keys"),
    ("POST", "/admin/tenants/{tenant}/jwt-keys"),
    ("DELETE", "/admin/tenants/{tenant}/jwt-keys/{id}"),
    ("GET", "/admin/tenants/{tenant}/revocations"),
    ("POST", "/admin/tenants/{tenant}/revocations"),
    ("GET", "/admin/tenants/{tenant}/usage"),
    ("GET", "/admin/audit"),
    ("POST", "/admin/cache/invalidate"),
];

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_template_routes_and_odd_paths_do_not() {
        for (method, template) in TEMPLATES {
            let path = template
                .replace("{tenant}", "acme")
                .replace("{app}", "writer")
                .replace("{id}", "k-1");
            assert!(route(method, &path).is_ok(), "{method} {path}");
        }
        assert_eq!(
            route("PUT", "/admin/tenants/acme").unwrap_err(),
            Unrouted::MethodNotAllowed("GET, HEAD, PATCH, DELETE")
        );
        assert_eq!(
            route("GET", "/admin/tenants/acme/apps/writer").unwrap_err(),
            Unrouted::MethodNotAllowed("PUT, DELETE")
        );
        for odd in [
            "/admin/tenants/",
            "/admin/tenants/a%20b",
            "/admin/tenants/../audit",
            "/admin/tenants/acme/apps",
            "/admin/tenants/acme/other",
            "/admin/audit/",
            "/adminx/tenants",
        ] {
            assert_eq!(route("GET", odd).unwrap_err(), Unrouted::NotFound, "{odd}");
        }
        assert_eq!(
            route("DELETE", "/admin/tenants/acme/jwt-keys/kid:1").unwrap(),
            AdminRoute::DeleteJwtKey("acme".into(), "kid:1".into())
        );
    }
}
