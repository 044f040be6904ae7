//! Builds the [`Snapshot`] admission reads (at start-up, on SIGHUP and on every store change): what
//! the configuration file declares ([`Declared`]) merged with what the store holds. Ids are unique
//! across both; on a clash the file wins and the store's tenant is left out with a warning. Pure.

use crate::admit::auth::jwks::JwksSource;
use crate::admit::auth::keys::{
    Binding, JwtPolicy, KeyRing, VerifyKey, decoding_key, fingerprint, pinned_algorithm,
};
use crate::admit::snapshot::{ApiKey, App, Revocations, Snapshot, Source, Tenant};
use crate::store::model::{AppRow, JwtKeySpec, StoreData, TenantRow};
use crate::store::vault::last4;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// How often a tenant's key set added through the admin API is fetched when its provider sends no
/// `max-age`.
pub const TENANT_JWKS_REFRESH: Duration = Duration::from_secs(300);

/// What the configuration file declares: the part a SIGHUP replaces.
#[derive(Debug, Clone)]
pub struct Declared {
    /// `[[tenants]]` (`created_at` unused).
    pub tenants: Vec<TenantRow>,
    /// `[[tenants.apps]]`, in file order.
    pub apps: Vec<AppRow>,
    /// `[[auth.keys]]`.
    pub keys: Vec<Arc<VerifyKey>>,
    /// `[[auth.jwks]]`.
    pub jwks: Vec<JwksSource>,
    /// `[auth]`'s claim names and checks.
    pub policy: Arc<JwtPolicy>,
}

/// A snapshot and what looked wrong while building it.
#[derive(Debug)]
pub struct Built {
    /// The snapshot.
    pub snapshot: Snapshot,
    /// Store rows left out or adjusted, one line each.
    pub warnings: Vec<String>,
}

/// Merges `declared` and `stored` into one snapshot.
pub fn build(declared: &Declared, stored: Option<&StoreData>) -> Built {
    let empty = StoreData::default();
    let data = stored.unwrap_or(&empty);
    let mut warnings = data.warnings.clone();
    let store_tenants = unshadowed(declared, data, &mut warnings);
    let in_store: HashSet<&str> = store_tenants.iter().map(|t| t.id.as_str()).collect();
    let tenants = tenants(declared, data, &store_tenants, &mut warnings);
    let (keys, jwks) = jwt_keys(declared, data, &in_store, &mut warnings);
    Built {
        snapshot: Snapshot {
            revocations: revocations(data, &tenants),
            api_keys: api_keys(data, &in_store),
            tenants,
            keys,
            jwks,
            policy: declared.policy.clone(),
            store_version: stored.map(|d| d.version),
        },
        warnings,
    }
}

/// The store's tenants whose ids the file does not declare (the others are left out, with a warning).
fn unshadowed<'a>(
    declared: &Declared,
    data: &'a StoreData,
    warnings: &mut Vec<String>,
) -> Vec<&'a TenantRow> {
    let config_ids: HashSet<&str> = declared.tenants.iter().map(|t| t.id.as_str()).collect();
    data.tenants
        .iter()
        .filter(|t| {
            let clash = config_ids.contains(t.id.as_str());
            if clash {
                warnings.push(format!(
                    "store tenant `{}` is left out: the configuration file declares a tenant with that id",
                    t.id
                ));
            }
            !clash
        })
        .collect()
}

/// Every tenant with its apps: the file's, then the store's.
fn tenants(
    declared: &Declared,
    data: &StoreData,
    store_tenants: &[&TenantRow],
    warnings: &mut Vec<String>,
) -> HashMap<String, Arc<Tenant>> {
    let in_store: HashSet<&str> = store_tenants.iter().map(|t| t.id.as_str()).collect();
    let store_apps = data.apps.iter().filter(|a| in_store.contains(a.tenant.as_str()));
    let all_apps: Vec<&AppRow> = declared.apps.iter().chain(store_apps).collect();
    let sharers = sharers(&all_apps);
    let capped: HashSet<&str> = all_apps
        .iter()
        .filter(|a| a.max_share.is_some())
        .map(|a| a.api_key.expose())
        .collect();
    let sources = declared
        .tenants
        .iter()
        .map(|t| (t, Source::Config))
        .chain(store_tenants.iter().map(|t| (*t, Source::Store)));
    let mut out = HashMap::new();
    for (t, source) in sources {
        let apps = all_apps
            .iter()
            .filter(|a| a.tenant == t.id)
            .map(|a| {
                let mut app = app(a, &sharers, source, warnings);
                if app.shared && capped.contains(a.api_key.expose()) {
                    app.fair_share = Some(a.max_share.unwrap_or(1.0));
                }
                Arc::new(app)
            })
            .collect();
        let tenant = Tenant {
            id: t.id.clone(),
            source,
            disabled: t.disabled,
            created_at: (source == Source::Store).then_some(t.created_at),
            limits: t.limits.clone(),
            apps,
        };
        out.insert(t.id.clone(), Arc::new(tenant));
    }
    out
}

/// The gateway API keys of the store's tenants, by hash.
fn api_keys(data: &StoreData, in_store: &HashSet<&str>) -> HashMap<[u8; 32], Arc<ApiKey>> {
    data.api_keys
        .iter()
        .filter(|k| in_store.contains(k.tenant.as_str()))
        .map(|k| {
            let key = ApiKey {
                id: k.id.clone(),
                tenant: k.tenant.clone(),
                name: k.name.clone(),
                app: k.app.clone(),
                last4: k.last4.clone(),
                created_at: k.created_at.max(0) as u64,
                expires_at: k.expires_at.map(|e| e.max(0) as u64),
            };
            (k.hash, Arc::new(key))
        })
        .collect()
}

/// The revocations of known tenants; of several cut-offs the latest counts.
fn revocations(data: &StoreData, tenants: &HashMap<String, Arc<Tenant>>) -> Revocations {
    let mut out = Revocations::default();
    for r in data
        .revocations
        .iter()
        .filter(|r| tenants.contains_key(&r.tenant))
    {
        let entry = out.0.entry(r.tenant.clone()).or_default();
        if let Some(j) = &r.jti {
            entry.jtis.insert(j.clone());
        }
        if let Some(b) = r.issued_before {
            let b = b.max(0) as u64;
            entry.issued_before = Some(entry.issued_before.map_or(b, |old| old.max(b)));
        }
    }
    out
}

/// For each Dify key, the tenants whose apps use it.
fn sharers<'a>(apps: &[&'a AppRow]) -> HashMap<&'a str, HashSet<&'a str>> {
    let mut out: HashMap<&str, HashSet<&str>> = HashMap::new();
    for a in apps {
        out.entry(a.api_key.expose())
            .or_default()
            .insert(a.tenant.as_str());
    }
    out
}

/// An app as admission sees it: a key shared with other tenants closes the app-wide endpoints
/// unless they were opened explicitly, and always scopes users (the file refuses otherwise; a store
/// row that would not is scoped anyway, with a warning).
fn app(
    a: &AppRow,
    sharers: &HashMap<&str, HashSet<&str>>,
    source: Source,
    warnings: &mut Vec<String>,
) -> App {
    let shared = sharers.get(a.api_key.expose()).is_some_and(|s| s.len() > 1);
    let mut scope_users = a.scope_users;
    if shared && !scope_users {
        scope_users = true;
        warnings.push(format!(
            "{} app `{}/{}` shares its Dify key with another tenant: its users are scoped although scope_users is false",
            source.name(),
            a.tenant,
            a.name
        ));
    }
    App {
        name: a.name.clone(),
        api_key: a.api_key.clone(),
        key_last4: last4(a.api_key.expose()),
        scope_users,
        app_wide: a.app_wide_endpoints.unwrap_or(!shared),
        app_wide_endpoints: a.app_wide_endpoints,
        max_tokens_per_request: a.max_tokens_per_request,
        max_share: a.max_share,
        shared,
        fair_share: None,
    }
}

/// The static keys (file first, then each store tenant's) and the key sets to consult.
fn jwt_keys(
    declared: &Declared,
    data: &StoreData,
    in_store: &HashSet<&str>,
    warnings: &mut Vec<String>,
) -> (KeyRing, Vec<JwksSource>) {
    let mut keys = declared.keys.clone();
    let mut jwks = declared.jwks.clone();
    for k in data
        .jwt_keys
        .iter()
        .filter(|k| in_store.contains(k.tenant.as_str()))
    {
        let binding = Binding::Tenants(Arc::from([k.tenant.clone()]));
        let origin = format!("store:{}/{}", k.tenant, k.id);
        let (algorithm, material) = match &k.spec {
            JwtKeySpec::Jwks(url) => {
                jwks.push(JwksSource {
                    id: Arc::from(origin),
                    url: url.clone(),
                    binding,
                    refresh: TENANT_JWKS_REFRESH,
                });
                continue;
            }
            JwtKeySpec::Hs256(s) => ("HS256", s.expose()),
            JwtKeySpec::Rs256(pem) | JwtKeySpec::Es256(pem) => (k.spec.algorithm(), pem.as_str()),
        };
        let Some(alg) = pinned_algorithm(algorithm) else {
            continue;
        };
        match decoding_key(alg, material) {
            Ok(key) => keys.push(Arc::new(VerifyKey {
                id: k.id.clone(),
                algorithm: alg,
                binding,
                origin: Arc::from(format!("{origin}@{}", fingerprint(material.as_bytes()))),
                key,
            })),
            Err(e) => warnings.push(format!(
                "JWT key `{}/{}` is left out: the key {e}",
                k.tenant, k.id
            )),
        }
    }
    (KeyRing::new(keys), jwks)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::admit::limits::Limits;
    use crate::secret::Secret;
    use crate::store::model::{ApiKeyRow, JwtKeyRow, RevocationRow};

    fn tenant(id: &str) -> TenantRow {
        TenantRow {
            id: id.into(),
            disabled: false,
            limits: Limits::default(),
            created_at: 1_700_000_000,
        }
    }

    fn app(tenant: &str, name: &str, key: &str, scope_users: bool) -> AppRow {
        AppRow {
            tenant: tenant.into(),
            name: name.into(),
            api_key: Secret::new(key),
            key_last4: last4(key),
            scope_users,
            app_wide_endpoints: None,
            max_tokens_per_request: None,
            max_share: None,
        }
    }

    fn declared() -> Declared {
        Declared {
            tenants: vec![tenant("acme")],
            apps: vec![app("acme", "writer", "app-shared", true)],
            keys: vec![],
            jwks: vec![],
            policy: Arc::new(JwtPolicy {
                tenant_claim: "tenant".into(),
                app_claim: "app".into(),
                issuer: None,
                audience: None,
                leeway: Duration::ZERO,
                max_lifetime: None,
            }),
        }
    }

    fn stored() -> StoreData {
        StoreData {
            version: 7,
            warnings: vec!["app `x/y` is left out: its Dify key cannot be decrypted".into()],
            tenants: vec![tenant("acme"), tenant("globex")],
            apps: vec![
                app("acme", "shadowed", "app-x", true),
                app("globex", "writer", "app-shared", false),
                app("globex", "solo", "app-solo", true),
            ],
            api_keys: vec![ApiKeyRow {
                id: "k1".into(),
                tenant: "globex".into(),
                name: None,
                app: None,
                hash: [1; 32],
                last4: "abcd".into(),
                created_at: 5,
                expires_at: None,
            }],
            jwt_keys: vec![
                JwtKeyRow {
                    tenant: "globex".into(),
                    id: "kid-1".into(),
                    spec: JwtKeySpec::Hs256(Secret::new("a-tenant-secret-of-more-than-32-bytes")),
                    created_at: 5,
                },
                JwtKeyRow {
                    tenant: "globex".into(),
                    id: "bad".into(),
                    spec: JwtKeySpec::Rs256("not a pem".into()),
                    created_at: 5,
                },
                JwtKeyRow {
                    tenant: "globex".into(),
                    id: "idp".into(),
                    spec: JwtKeySpec::Jwks("http://127.0.0.1:1/jwks".into()),
                    created_at: 5,
                },
            ],
            revocations: vec![
                RevocationRow {
                    tenant: "acme".into(),
                    jti: Some("t1".into()),
                    issued_before: None,
                    created_at: 5,
                },
                RevocationRow {
                    tenant: "acme".into(),
                    jti: None,
                    issued_before: Some(100),
                    created_at: 5,
                },
                RevocationRow {
                    tenant: "acme".into(),
                    jti: None,
                    issued_before: Some(50),
                    created_at: 6,
                },
            ],
        }
    }

    #[test]
    fn the_file_wins_a_clash_and_shared_keys_are_scoped_and_closed() {
        let b = build(&declared(), Some(&stored()));
        let s = &b.snapshot;
        let acme = &s.tenants["acme"];
        assert_eq!(acme.source, Source::Config);
        assert_eq!(acme.apps.len(), 1, "the store's acme is left out whole");
        assert!(
            b.warnings.iter().any(|w| w.contains("store tenant `acme`")),
            "{:?}",
            b.warnings
        );
        let globex = &s.tenants["globex"];
        assert_eq!(globex.source, Source::Store);
        let shared = globex.app("writer").unwrap();
        assert!(
            shared.scope_users && !shared.app_wide,
            "shared across file and store"
        );
        assert!(!acme.apps[0].app_wide);
        assert!(globex.app("solo").unwrap().app_wide);
        assert!(b.warnings.iter().any(|w| w.contains("globex/writer")));
        assert_eq!(s.store_version, Some(7));
    }

    #[test]
    fn keys_are_bound_to_their_tenant_and_bad_ones_left_out() {
        let b = build(&declared(), Some(&stored()));
        let s = &b.snapshot;
        let origins: Vec<&str> = s.keys.all().iter().map(|k| &*k.origin).collect();
        assert_eq!(origins.len(), 1);
        assert!(origins[0].starts_with("store:globex/kid-1@"), "{origins:?}");
        assert!(s.keys.all()[0].binding.allows("globex") && !s.keys.all()[0].binding.allows("acme"));
        assert!(b.warnings.iter().any(|w| w.contains("globex/bad")));
        assert!(
            b.warnings.iter().any(|w| w.contains("x/y")),
            "the store's own warnings are kept"
        );
        assert_eq!(&*s.jwks[0].id, "store:globex/idp");
        assert_eq!(s.api_keys[&[1; 32]].tenant, "globex");
        let acme = &s.revocations.0["acme"];
        assert!(acme.jtis.contains("t1"));
        assert_eq!(acme.issued_before, Some(100), "the latest cut-off wins");
    }

    #[test]
    fn without_a_store_only_the_file_counts() {
        let s = build(&declared(), None).snapshot;
        assert_eq!(s.tenants.len(), 1);
        assert_eq!(s.store_version, None);
        assert!(s.tenants["acme"].apps[0].app_wide, "not shared with anyone");
    }
}
