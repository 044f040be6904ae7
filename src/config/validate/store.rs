//! Validation of `[store]` (start-up step 2): which database (`sqlite://` with its path resolved
//! against the config file's folder, or `postgres://`), and the 32-byte key that seals the secrets
//! it keeps. A store without a usable key is refused.

use super::problems::{Problems, one_of};
use crate::config::file::StoreSection;
use crate::secret::Secret;
use crate::store::{Backend, StoreSettings, decode_key};
use std::path::Path;

pub(super) fn store(p: &mut Problems, s: &StoreSection, base: &Path) -> Option<StoreSettings> {
    let key_set = s.encryption_key.is_some() || s.encryption_key_file.is_some();
    let Some(url) = s.url.as_deref() else {
        if key_set {
            p.add("store.url", "is required when [store] is set");
        }
        return None;
    };
    let key = one_of(
        p,
        "store",
        ("encryption_key", &s.encryption_key),
        ("encryption_key_file", &s.encryption_key_file),
        base,
    );
    let key = key.map(Secret::new).filter(|k| {
        let ok = decode_key(k).is_some();
        if !ok {
            let msg = "must be 32 random bytes in base64 (for example from `openssl rand -base64 32`)";
            p.add("store.encryption_key", msg);
        }
        ok
    });
    let (url, backend) = match database(url, base) {
        Ok(found) => found,
        Err(msg) => {
            p.add("store.url", msg);
            return None;
        }
    };
    Some(StoreSettings {
        url: Secret::new(url),
        backend,
        encryption_key: key?,
    })
}

/// The database `url` names, a relative SQLite path made absolute against `base`.
fn database(url: &str, base: &Path) -> Result<(String, Backend), String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((url.to_string(), Backend::Postgres));
    }
    let Some(rest) = url.strip_prefix("sqlite://") else {
        return Err("must start with sqlite:// (one host) or postgres:// (many replicas)".into());
    };
    let (path, query) = rest.split_once('?').map_or((rest, None), |(p, q)| (p, Some(q)));
    if path.is_empty() || path.contains(":memory:") {
        return Err("must name a file: a store in memory would lose every change on restart".into());
    }
    let full = base.join(path);
    let mut out = format!("sqlite://{}", full.display());
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok((out, Backend::Sqlite))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_resolve_against_the_config_folder() {
        let base = Path::new("/etc/gw");
        assert_eq!(
            database("sqlite://./data/gw.db", base).unwrap(),
            ("sqlite:///etc/gw/./data/gw.db".to_string(), Backend::Sqlite)
        );
        assert_eq!(
            database("sqlite:///var/lib/gw.db?mode=rw", base).unwrap().0,
            "sqlite:///var/lib/gw.db?mode=rw"
        );
        assert_eq!(database("postgres://u@db/gw", base).unwrap().1, Backend::Postgres);
        assert!(database("sqlite://:memory:", base).is_err());
        assert!(database("mysql://db/gw", base).is_err());
    }
}
