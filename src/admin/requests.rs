//! Bodies of the admin API's writes (admin listener): read strictly (unknown fields refused, every
//! problem named by its field) and checked as strictly as the configuration file, then turned into
//! the store rows they create. Pure; the handlers add ids, times and secrets drawn at random.

use super::routes::valid_id;
use crate::admit::auth::keys::{decoding_key, pinned_algorithm};
use crate::admit::limits::Limits;
use crate::config::units;
use crate::config::validate::http_url;
use crate::config::validate::tenants::reserve_problem;
use crate::secret::Secret;
use crate::store::model::{AppRow, JwtKeySpec};
use crate::store::vault::last4;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// A refused body: the field at fault (empty for the body as a whole) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Field path, such as `limits.requests_per_minute`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl Invalid {
    fn at(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Reads a JSON body into `T`, naming the field a problem is at.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Invalid> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." { String::new() } else { field };
        let message = e.inner().to_string();
        // serde_json appends " at line 1 column 9": the field says where.
        let message = message.split(" at line ").next().unwrap_or(&message).to_string();
        Invalid { field, message }
    })?;
    de.end()
        .map_err(|_| Invalid::at("", "trailing characters after the JSON value"))?;
    Ok(value)
}

/// Whether `id` can name a tenant: an id without `:` (scoped users are `tenant:user`).
pub fn tenant_id(id: &str) -> Result<(), Invalid> {
    if valid_id(id) && !id.contains(':') {
        Ok(())
    } else {
        Err(Invalid::at(
            "id",
            "must be 1–128 of A-Z a-z 0-9 . _ - (not starting with a dot)",
        ))
    }
}

fn limits(l: &Limits) -> Result<(), Invalid> {
    match l.problems().into_iter().next() {
        Some((key, msg)) => Err(Invalid::at(&format!("limits.{key}"), msg)),
        None => Ok(()),
    }
}

/// `POST /admin/tenants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Tenant id.
    pub id: String,
    /// Refused with 403 while set.
    #[serde(default)]
    pub disabled: bool,
    /// Its limits.
    #[serde(default)]
    pub limits: Limits,
}

impl CreateTenant {
    /// Checks the id and limits.
    pub fn check(&self) -> Result<(), Invalid> {
        tenant_id(&self.id)?;
        limits(&self.limits)
    }
}

/// `PATCH /admin/tenants/{t}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchTenant {
    /// New state.
    pub disabled: Option<bool>,
    /// New limits (replacing the old ones whole).
    pub limits: Option<Limits>,
}

impl PatchTenant {
    /// At least one change, and sound limits.
    pub fn check(&self) -> Result<(), Invalid> {
        if self.disabled.is_none() && self.limits.is_none() {
            return Err(Invalid::at(
                "",
                "nothing to change: send `disabled` and/or `limits`",
            ));
        }
        self.limits.as_ref().map_or(Ok(()), limits)
    }
}

/// `PUT /admin/tenants/{t}/apps/{app}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutApp {
    /// The Dify app key.
    pub api_key: String,
    /// Prefix Dify's `user` with the tenant id.
    #[serde(default = "yes")]
    pub scope_users: bool,
    /// Open the app-wide endpoints (default: open unless the key is shared).
    pub app_wide_endpoints: Option<bool>,
    /// What a completion reserves against the token limits.
    pub max_tokens_per_request: Option<u64>,
    /// The share of the app's concurrency this tenant may take when the key is shared.
    pub max_share: Option<f64>,
}

fn yes() -> bool {
    true
}

impl PutApp {
    /// The app row for `tenant`/`name`; `sharers` are the other tenants whose apps use the same key.
    pub fn into_row(self, tenant: &str, name: &str, sharers: &[String]) -> Result<AppRow, Invalid> {
        if !valid_id(name) || name.contains(':') {
            return Err(Invalid::at("app", "must be 1–128 of A-Z a-z 0-9 . _ -"));
        }
        let key = self.api_key.trim();
        if key.is_empty() || key.len() > 512 || key.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(Invalid::at(
                "api_key",
                "must be a Dify app key: printable ASCII without spaces",
            ));
        }
        if !sharers.is_empty() && !self.scope_users {
            let msg = format!(
                "must be true: this Dify key is shared with tenant(s) {}, whose end users this tenant could otherwise act as",
                sharers.join(", ")
            );
            return Err(Invalid::at("scope_users", msg));
        }
        if let Some(msg) = reserve_problem(self.max_tokens_per_request) {
            return Err(Invalid::at("max_tokens_per_request", msg));
        }
        if self.max_share.is_some_and(|s| !(s > 0.0 && s <= 1.0)) {
            return Err(Invalid::at(
                "max_share",
                "must be a fraction above 0 and at most 1",
            ));
        }
        Ok(AppRow {
            tenant: tenant.into(),
            name: name.into(),
            key_last4: last4(key),
            api_key: Secret::new(key),
            scope_users: self.scope_users,
            app_wide_endpoints: self.app_wide_endpoints,
            max_tokens_per_request: self.max_tokens_per_request,
            max_share: self.max_share,
        })
    }
}

/// `POST /admin/tenants/{t}/api-keys`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    /// A name for people.
    pub name: Option<String>,
    /// The app the key always selects.
    pub app: Option<String>,
    /// Lifetime (`"90d"`); unset = no expiry.
    pub expires_in: Option<String>,
}

impl CreateApiKey {
    /// Checks the fields; `apps` are the tenant's apps. Returns the lifetime in seconds.
    pub fn check(&self, apps: &[&str]) -> Result<Option<u64>, Invalid> {
        if let Some(n) = &self.name
            && (n.is_empty() || n.len() > 128 || n.chars().any(char::is_control))
        {
            return Err(Invalid::at("name", "must be 1–128 printable characters"));
        }
        if let Some(a) = &self.app
            && !apps.contains(&a.as_str())
        {
            return Err(Invalid::at("app", format!("the tenant has no app `{a}`")));
        }
        match &self.expires_in {
            None => Ok(None),
            Some(t) => match units::duration(t) {
                Ok(d) if d.as_secs() >= 60 => Ok(Some(d.as_secs())),
                Ok(_) => Err(Invalid::at("expires_in", "must be at least a minute")),
                Err(e) => Err(Invalid::at("expires_in", e)),
            },
        }
    }
}

/// `POST /admin/tenants/{t}/jwt-keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateJwtKey {
    /// Key id (the tokens' `kid`); for a key set, a name (default derived from the URL).
    pub id: Option<String>,
    /// `HS256`, `RS256` or `ES256`.
    pub algorithm: Option<String>,
    /// HS256 shared secret.
    pub secret: Option<String>,
    /// RS256/ES256 PEM public key.
    pub public_key: Option<String>,
    /// The tenant's identity provider's key set.
    pub jwks_url: Option<String>,
}

impl CreateJwtKey {
    /// The key's id and material, checked (a PEM or secret that cannot verify is refused here).
    pub fn check(self) -> Result<(String, JwtKeySpec), Invalid> {
        if let Some(url) = self.jwks_url {
            if self.algorithm.is_some() || self.secret.is_some() || self.public_key.is_some() {
                return Err(Invalid::at(
                    "jwks_url",
                    "takes no algorithm, secret or public_key beside it",
                ));
            }
            http_url(&url).map_err(|e| Invalid::at("jwks_url", e))?;
            let id = match self.id {
                Some(id) => id,
                None => {
                    use sha2::Digest;
                    format!(
                        "jwks-{}",
                        &hex::encode(sha2::Sha256::digest(url.as_bytes()))[..12]
                    )
                }
            };
            key_id(&id)?;
            return Ok((id, JwtKeySpec::Jwks(url)));
        }
        let id = self
            .id
            .ok_or_else(|| Invalid::at("id", "is required (the tokens' kid)"))?;
        key_id(&id)?;
        let name = self
            .algorithm
            .ok_or_else(|| Invalid::at("algorithm", "is required: HS256, RS256 or ES256"))?;
        let alg = pinned_algorithm(&name)
            .ok_or_else(|| Invalid::at("algorithm", format!("`{name}` is not one of HS256, RS256, ES256")))?;
        let (field, material, other) = match name.as_str() {
            "HS256" => ("secret", self.secret, self.public_key.map(|_| "public_key")),
            _ => ("public_key", self.public_key, self.secret.map(|_| "secret")),
        };
        if let Some(other) = other {
            return Err(Invalid::at(other, format!("does not go with {name}")));
        }
        let material = material.ok_or_else(|| Invalid::at(field, format!("is required for {name}")))?;
        decoding_key(alg, &material).map_err(|e| Invalid::at(field, e))?;
        let spec = match name.as_str() {
            "HS256" => JwtKeySpec::Hs256(Secret::new(material)),
            "RS256" => JwtKeySpec::Rs256(material),
            _ => JwtKeySpec::Es256(material),
        };
        Ok((id, spec))
    }
}

fn key_id(id: &str) -> Result<(), Invalid> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(Invalid::at("id", "must be 1–128 of A-Z a-z 0-9 . _ : -"))
    }
}

/// `POST /admin/tenants/{t}/revocations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    /// A token id.
    pub jti: Option<String>,
    /// Everything issued before this (Unix seconds).
    pub issued_before: Option<i64>,
}

impl Revoke {
    /// Exactly one of the two, sound.
    pub fn check(&self) -> Result<(), Invalid> {
        match (&self.jti, self.issued_before) {
            (Some(j), None) if !j.is_empty() && j.len() <= 256 => Ok(()),
            (Some(_), None) => Err(Invalid::at("jti", "must be 1–256 characters")),
            (None, Some(t)) if t > 0 => Ok(()),
            (None, Some(_)) => Err(Invalid::at(
                "issued_before",
                "must be a positive Unix time in seconds",
            )),
            _ => Err(Invalid::at("", "send exactly one of `jti` and `issued_before`")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const RSA_PUB: &str = include_str!("../../tests/fixtures/keys/rsa-public.pem");

    #[test]
    fn names_the_field_of_each_problem() {
        let e =
            parse::<CreateTenant>(br#"{"id": "acme", "limits": {"requests_per_minute": "x"}}"#).unwrap_err();
        assert_eq!(e.field, "limits.requests_per_minute");
        assert!(!e.message.contains("line"), "{e}");
        let e = parse::<CreateTenant>(br#"{"id": "acme", "colour": 1}"#).unwrap_err();
        assert!(e.message.contains("colour"), "{e}");
        let bad_id = parse::<CreateTenant>(br#"{"id": "a:b"}"#)
            .unwrap()
            .check()
            .unwrap_err();
        assert_eq!(bad_id.field, "id");
        let zero = parse::<CreateTenant>(br#"{"id": "a", "limits": {"tokens_per_day": 0}}"#)
            .unwrap()
            .check();
        assert_eq!(zero.unwrap_err().field, "limits.tokens_per_day");
        assert!(parse::<PatchTenant>(b"{}").unwrap().check().is_err());
        assert!(parse::<CreateTenant>(b"{\"id\": \"a\"} x").is_err());
    }

    #[test]
    fn apps_keep_shared_keys_scoped() {
        let body = || parse::<PutApp>(br#"{"api_key": "app-123456", "scope_users": false}"#).unwrap();
        assert_eq!(
            body()
                .into_row("acme", "w", &["globex".into()])
                .unwrap_err()
                .field,
            "scope_users"
        );
        let row = body().into_row("acme", "w", &[]).unwrap();
        assert_eq!((row.key_last4.as_str(), row.scope_users), ("3456", false));
        let spaced = parse::<PutApp>(br#"{"api_key": "app 1"}"#).unwrap();
        assert_eq!(spaced.into_row("acme", "w", &[]).unwrap_err().field, "api_key");
    }

    #[test]
    fn jwt_keys_are_checked_before_they_are_kept() {
        let hs = |body: &str| parse::<CreateJwtKey>(body.as_bytes()).unwrap().check();
        assert_eq!(
            hs(r#"{"id": "k", "algorithm": "HS256", "secret": "short"}"#)
                .unwrap_err()
                .field,
            "secret"
        );
        assert_eq!(
            hs(r#"{"id": "k", "algorithm": "RS256", "public_key": "junk"}"#)
                .unwrap_err()
                .field,
            "public_key"
        );
        assert_eq!(
            hs(r#"{"id": "k", "algorithm": "none", "secret": "x"}"#)
                .unwrap_err()
                .field,
            "algorithm"
        );
        assert_eq!(
            hs(r#"{"jwks_url": "ftp://idp/keys"}"#).unwrap_err().field,
            "jwks_url"
        );
        let pem = serde_json::json!({"id": "k", "algorithm": "RS256", "public_key": RSA_PUB}).to_string();
        assert!(matches!(hs(&pem).unwrap().1, JwtKeySpec::Rs256(_)));
        let (id, spec) = hs(r#"{"jwks_url": "http://127.0.0.1:9/jwks"}"#).unwrap();
        assert!(id.starts_with("jwks-") && matches!(spec, JwtKeySpec::Jwks(_)));
    }

    #[test]
    fn api_keys_and_revocations() {
        let k = CreateApiKey {
            app: Some("nope".into()),
            ..Default::default()
        };
        assert_eq!(k.check(&["writer"]).unwrap_err().field, "app");
        let k = CreateApiKey {
            expires_in: Some("90d".into()),
            ..Default::default()
        };
        assert_eq!(k.check(&[]).unwrap(), Some(90 * 86400));
        assert!(
            parse::<Revoke>(br#"{"jti": "a", "issued_before": 5}"#)
                .unwrap()
                .check()
                .is_err()
        );
        assert!(
            parse::<Revoke>(br#"{"issued_before": 1796000000}"#)
                .unwrap()
                .check()
                .is_ok()
        );
    }
}
