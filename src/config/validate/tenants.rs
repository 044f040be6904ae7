//! Validation of `[[tenants]]` (start-up step 2): ids, apps, Dify keys, limits, and which keys
//! several tenants share (their users must be scoped; their app-wide endpoints are closed by default).

use super::problems::{Problems, one_of};
use crate::admit::limits::Limits;
use crate::config::file::{AppSection, FileConfig};
use crate::secret::Secret;
use crate::store::model::{AppRow, TenantRow};
use crate::store::vault::last4;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// `store` says whether tenants may also come from a store (then the file may declare none).
pub(super) fn tenants(
    p: &mut Problems,
    raw: &FileConfig,
    base: &Path,
    store: bool,
) -> (Vec<TenantRow>, Vec<AppRow>) {
    if raw.tenants.is_empty() && !store {
        p.add(
            "tenants",
            "at least one tenant is required (or a [store] to add them through the admin API)",
        );
    }
    // Keys first: whether an app is shared by several tenants decides its app-wide endpoints.
    let keys: Vec<Vec<Option<String>>> = raw
        .tenants
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let keys = t.apps.iter().enumerate();
            keys.map(|(j, a)| app_key(p, &format!("tenants[{i}].apps[{j}]"), a, base))
                .collect()
        })
        .collect();
    let mut owners: HashMap<&str, HashSet<&str>> = HashMap::new();
    for (t, ks) in raw.tenants.iter().zip(&keys) {
        for k in ks.iter().flatten() {
            owners.entry(k.as_str()).or_default().insert(t.id.as_str());
        }
    }
    let mut out: Vec<TenantRow> = Vec::new();
    let mut apps = Vec::new();
    for (i, (t, ks)) in raw.tenants.iter().zip(&keys).enumerate() {
        let path = format!("tenants[{i}]");
        if t.id.is_empty() {
            p.add(format!("{path}.id"), "must not be empty");
        } else if t.id.contains(':') {
            // Scoped users are `tenant:user`: a `:` in a tenant id would let two tenants' users collide.
            p.add(format!("{path}.id"), "must not contain `:`");
        } else if out.iter().any(|o| o.id == t.id) {
            p.add(
                format!("{path}.id"),
                format!("`{}` is used by another tenant", t.id),
            );
        }
        if t.apps.is_empty() {
            p.add(format!("{path}.apps"), "at least one app is required");
        }
        for (key, msg) in t.limits.problems() {
            p.add(format!("{path}.limits.{key}"), msg);
        }
        let mut names = HashSet::new();
        for (j, (a, key)) in t.apps.iter().zip(ks).enumerate() {
            if a.name.is_empty() {
                p.add(format!("{path}.apps[{j}].name"), "must not be empty");
            } else if !names.insert(a.name.clone()) {
                let msg = format!("`{}` is used by another app of this tenant", a.name);
                p.add(format!("{path}.apps[{j}].name"), msg);
            }
            if let Some(key) = key {
                let sharing = owners.get(key.as_str()).filter(|o| o.len() > 1);
                if let Some(others) = sharing {
                    shared_key(p, &format!("{path}.apps[{j}]"), a, &t.id, others);
                }
                apps.push(AppRow {
                    tenant: t.id.clone(),
                    name: a.name.clone(),
                    api_key: Secret::new(key.clone()),
                    key_last4: last4(key),
                    scope_users: a.scope_users,
                    app_wide_endpoints: a.app_wide_endpoints,
                    max_tokens_per_request: a.max_tokens_per_request,
                    max_share: a.max_share,
                });
            }
            app_limits(p, &format!("{path}.apps[{j}]"), a, &t.limits);
        }
        out.push(TenantRow {
            id: t.id.clone(),
            disabled: t.disabled,
            limits: t.limits.clone(),
            created_at: 0,
        });
    }
    (out, apps)
}

/// An app's reservation and share: at least one token; a share in (0, 1].
fn app_limits(p: &mut Problems, path: &str, a: &AppSection, limits: &Limits) {
    if let Some(msg) = reserve_problem(a.max_tokens_per_request) {
        p.add(format!("{path}.max_tokens_per_request"), msg);
    }
    let per_minute = limits
        .tokens_per_minute
        .into_iter()
        .chain(limits.tokens_per_day)
        .min();
    if let (Some(r), Some(q)) = (a.max_tokens_per_request, per_minute)
        && r > q
    {
        let msg =
            format!("reserves more than the tenant's token limit ({q}): its completions run one at a time");
        p.warn(format!("{path}.max_tokens_per_request"), msg);
    }
    if let Some(s) = a.max_share
        && !(s > 0.0 && s <= 1.0)
    {
        p.add(
            format!("{path}.max_share"),
            "must be a fraction above 0 and at most 1",
        );
    }
}

/// An app whose Dify key other tenants use too: its users must be scoped (else one tenant could act
/// as another's end users); opening its app-wide endpoints is allowed but worth a warning.
fn shared_key(p: &mut Problems, path: &str, a: &AppSection, tenant: &str, owners: &HashSet<&str>) {
    let mut others: Vec<&str> = owners.iter().copied().filter(|o| *o != tenant).collect();
    others.sort_unstable();
    let others = others.join(", ");
    if !a.scope_users {
        let msg = format!(
            "must be true: this Dify key is shared with tenant(s) {others}, whose end users this tenant could otherwise act as"
        );
        p.add(format!("{path}.scope_users"), msg);
    }
    if a.app_wide_endpoints == Some(true) {
        let msg = format!(
            "this Dify key is shared with tenant(s) {others}: annotations and the app's feedback list of all of them are open to this tenant"
        );
        p.warn(format!("{path}.app_wide_endpoints"), msg);
    }
}

pub(super) fn app_key(p: &mut Problems, path: &str, a: &AppSection, base: &Path) -> Option<String> {
    let key = one_of(
        p,
        path,
        ("api_key", &a.api_key),
        ("api_key_file", &a.api_key_file),
        base,
    )?;
    if key
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || !b.is_ascii())
    {
        p.add(
            format!("{path}.api_key"),
            "must be printable ASCII without spaces",
        );
        return None;
    }
    Some(key)
}

/// The largest reservation accepted (no model answers more tokens than this).
pub const MAX_RESERVE: u64 = 1_000_000_000;

/// What is wrong with an app's `max_tokens_per_request`, if anything (config and admin API).
pub fn reserve_problem(v: Option<u64>) -> Option<String> {
    match v {
        Some(0) => Some("must be at least 1 (leave it out to reserve nothing)".into()),
        Some(n) if n > MAX_RESERVE => Some(format!("must be at most {MAX_RESERVE}")),
        _ => None,
    }
}
