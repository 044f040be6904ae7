//! Unit tests of authentication: every rejection reason, tenant-bound keys, the lifetime cap,
//! revocation after the verified-token cache, and gateway API keys.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::admit::snapshot::{ApiKey, Revoked};
use crate::clock::unix_now;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, encode};
use serde_json::json;
use std::time::Duration;

const SECRET: &[u8] = b"unit-test-secret";
const RSA_PRIV: &str = include_str!("../../../tests/fixtures/keys/rsa-private.pem");
const RSA_PUB: &str = include_str!("../../../tests/fixtures/keys/rsa-public.pem");

fn policy() -> JwtPolicy {
    JwtPolicy {
        tenant_claim: "tenant".into(),
        app_claim: "app".into(),
        issuer: Some("https://idp.test".into()),
        audience: Some("dify-gateway".into()),
        leeway: Duration::from_secs(5),
        max_lifetime: None,
    }
}

fn key(id: &str, algorithm: Algorithm, key: DecodingKey, binding: Binding) -> Arc<VerifyKey> {
    Arc::new(VerifyKey {
        id: id.into(),
        algorithm,
        binding,
        origin: Arc::from(format!("config:{id}")),
        key,
    })
}

fn snap() -> Snapshot {
    let mut s = Snapshot::empty();
    s.policy = Arc::new(policy());
    s.keys = KeyRing::new(vec![
        key(
            "hs",
            Algorithm::HS256,
            DecodingKey::from_secret(SECRET),
            Binding::Any,
        ),
        key(
            "rs",
            Algorithm::RS256,
            DecodingKey::from_rsa_pem(RSA_PUB.as_bytes()).unwrap(),
            Binding::Any,
        ),
    ]);
    s
}

fn claims(exp_offset: i64) -> serde_json::Value {
    let now = unix_now() as i64;
    json!({"tenant": "acme", "app": "writer", "exp": now + exp_offset, "iss": "https://idp.test", "aud": "dify-gateway"})
}

fn hs(kid: Option<&str>, c: &serde_json::Value) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = kid.map(str::to_string);
    encode(&h, c, &EncodingKey::from_secret(SECRET)).unwrap()
}

fn bearer(token: &str) -> Vec<u8> {
    format!("Bearer {token}").into_bytes()
}

async fn with(auth: &Authenticator, s: &Snapshot, token: &str, now: u64) -> Result<Arc<Identity>, AuthError> {
    auth.authenticate(Some(&bearer(token)), s, now).await
}

fn check(token: &str) -> Result<Arc<Identity>, AuthError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(with(&Authenticator::new(100), &snap(), token, unix_now()))
}

#[test]
fn accepts_hs256_and_rs256() {
    let id = check(&hs(Some("hs"), &claims(60))).unwrap();
    assert_eq!((id.tenant.as_str(), id.app.as_deref()), ("acme", Some("writer")));
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("rs".into());
    let rs = encode(
        &h,
        &claims(60),
        &EncodingKey::from_rsa_pem(RSA_PRIV.as_bytes()).unwrap(),
    )
    .unwrap();
    assert_eq!(check(&rs).unwrap().tenant, "acme");
    // Without a kid every key with the token's algorithm is tried.
    assert!(check(&hs(None, &claims(60))).is_ok());
}

#[test]
fn rejects_each_bad_token_with_its_reason() {
    let mut c = claims(60);
    assert_eq!(check("not-a-jwt").unwrap_err(), AuthError::Malformed);
    assert_eq!(check(&hs(Some("nope"), &c)).unwrap_err(), AuthError::UnknownKeyId);
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &c,
        &EncodingKey::from_secret(b"other"),
    )
    .unwrap();
    assert_eq!(check(&forged).unwrap_err(), AuthError::BadSignature);
    assert_eq!(check(&hs(None, &claims(-60))).unwrap_err(), AuthError::Expired);
    c["nbf"] = json!(unix_now() + 600);
    assert_eq!(check(&hs(None, &c)).unwrap_err(), AuthError::NotYetValid);
    let mut c = claims(60);
    c["iss"] = json!("https://evil");
    assert_eq!(check(&hs(None, &c)).unwrap_err(), AuthError::WrongIssuer);
    let mut c = claims(60);
    c["aud"] = json!("someone-else");
    assert_eq!(check(&hs(None, &c)).unwrap_err(), AuthError::WrongAudience);
    let mut c = claims(60);
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(check(&hs(None, &c)).unwrap_err(), AuthError::MissingExp);
    let mut c = claims(60);
    c.as_object_mut().unwrap().remove("tenant");
    assert_eq!(check(&hs(None, &c)).unwrap_err(), AuthError::MissingTenant);
}

#[test]
fn rejects_alg_none_and_rs_hs_confusion() {
    use base64::Engine;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap())
    };
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims(60))
    );
    assert_eq!(check(&none).unwrap_err(), AuthError::AlgorithmNotAllowed);
    // HS256 signed with the RSA public key as the secret, aimed at the RS256 key.
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("rs".into());
    let confused = encode(&h, &claims(60), &EncodingKey::from_secret(RSA_PUB.as_bytes())).unwrap();
    assert_eq!(check(&confused).unwrap_err(), AuthError::AlgorithmNotAllowed);
}

#[tokio::test]
async fn leeway_applies_and_repeated_tokens_come_from_the_cache() {
    let (a, s) = (Authenticator::new(100), snap());
    // Expired 2 s ago, within the 5 s leeway.
    assert!(with(&a, &s, &hs(None, &claims(-2)), unix_now()).await.is_ok());
    let token = hs(None, &claims(60));
    let now = unix_now();
    let first = with(&a, &s, &token, now).await.unwrap();
    let second = with(&a, &s, &token, now).await.unwrap();
    assert!(
        Arc::ptr_eq(&first, &second),
        "second verification was not served from the cache"
    );
    // Past its exp the cached entry is not used: a fresh verification yields a new Identity.
    let later = with(&a, &s, &token, first.exp).await.unwrap();
    assert!(!Arc::ptr_eq(&first, &later));
}

#[tokio::test]
async fn a_cached_token_falls_with_its_key_and_with_revocation() {
    let a = Authenticator::new(100);
    let mut c = claims(60);
    c["jti"] = json!("t-1");
    c["iat"] = json!(unix_now() - 10);
    let token = hs(Some("hs"), &c);
    assert!(with(&a, &snap(), &token, unix_now()).await.is_ok());
    // The key is gone: the cached verification does not stand.
    let mut gone = snap();
    gone.keys = KeyRing::new(vec![]);
    assert_eq!(
        with(&a, &gone, &token, unix_now()).await.unwrap_err(),
        AuthError::UnknownKeyId
    );
    // Revoked by jti, then by issue time; another tenant's revocations change nothing.
    let revoke = |r: Revoked, tenant: &str| {
        let mut s = snap();
        s.revocations.0.insert(tenant.into(), r);
        s
    };
    let by_jti = Revoked {
        jtis: ["t-1".to_string()].into(),
        issued_before: None,
    };
    let by_time = Revoked {
        jtis: Default::default(),
        issued_before: Some(unix_now()),
    };
    for s in [revoke(by_jti, "acme"), revoke(by_time, "acme")] {
        assert_eq!(
            with(&a, &s, &token, unix_now()).await.unwrap_err(),
            AuthError::Revoked
        );
    }
    let other = Revoked {
        jtis: Default::default(),
        issued_before: Some(unix_now()),
    };
    assert!(
        with(&a, &revoke(other, "globex"), &token, unix_now())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn tenant_bound_keys_and_the_lifetime_cap() {
    let a = Authenticator::new(100);
    let mut s = snap();
    let bound = Binding::Tenants(Arc::from(["globex".to_string()]));
    s.keys = KeyRing::new(vec![key(
        "hs",
        Algorithm::HS256,
        DecodingKey::from_secret(SECRET),
        bound,
    )]);
    assert_eq!(
        with(&a, &s, &hs(Some("hs"), &claims(60)), unix_now())
            .await
            .unwrap_err(),
        AuthError::WrongTenant
    );
    let mut c = claims(60);
    c["tenant"] = json!("globex");
    assert!(with(&a, &s, &hs(Some("hs"), &c), unix_now()).await.is_ok());
    // Capped at one hour: a token without iat, or living two hours, is refused; one of 60 s passes.
    let mut capped = snap();
    capped.policy = Arc::new(JwtPolicy {
        max_lifetime: Some(Duration::from_secs(3600)),
        ..policy()
    });
    let now = unix_now();
    assert_eq!(
        with(&a, &capped, &hs(None, &claims(7200)), now)
            .await
            .unwrap_err(),
        AuthError::LifetimeTooLong
    );
    let mut long = claims(7200);
    long["iat"] = json!(now);
    assert_eq!(
        with(&a, &capped, &hs(None, &long), now).await.unwrap_err(),
        AuthError::LifetimeTooLong
    );
    let mut short = claims(60);
    short["iat"] = json!(now);
    assert!(with(&a, &capped, &hs(None, &short), now).await.is_ok());
}

#[tokio::test]
async fn api_keys_are_found_by_hash_and_expire() {
    let a = Authenticator::new(100);
    let mut s = snap();
    let now = unix_now();
    let entry = |app: Option<&str>, expires_at| {
        Arc::new(ApiKey {
            id: "k1".into(),
            tenant: "acme".into(),
            name: None,
            last4: "abcd".into(),
            app: app.map(Into::into),
            created_at: now - 100,
            expires_at,
        })
    };
    s.api_keys
        .insert(apikey::api_key_hash("dgw-good"), entry(Some("writer"), None));
    s.api_keys
        .insert(apikey::api_key_hash("dgw-old"), entry(None, Some(now - 1)));
    let id = with(&a, &s, "dgw-good", now).await.unwrap();
    assert_eq!((id.tenant.as_str(), id.app.as_deref()), ("acme", Some("writer")));
    assert_eq!(
        with(&a, &s, "dgw-old", now).await.unwrap_err(),
        AuthError::ApiKeyExpired
    );
    assert_eq!(
        with(&a, &s, "dgw-nope", now).await.unwrap_err(),
        AuthError::UnknownApiKey
    );
    // An API key counts as issued when it was created: a later cut-off refuses it.
    s.revocations.0.insert(
        "acme".into(),
        Revoked {
            jtis: Default::default(),
            issued_before: Some(now),
        },
    );
    assert_eq!(
        with(&a, &s, "dgw-good", now).await.unwrap_err(),
        AuthError::Revoked
    );
}

#[test]
fn bearer_parsing() {
    assert_eq!(bearer_token(Some(b"bearer abc")).unwrap(), "abc");
    assert_eq!(bearer_token(Some(b"Bearer  abc ")).unwrap(), "abc");
    assert_eq!(bearer_token(None).unwrap_err(), AuthError::Missing);
    assert_eq!(bearer_token(Some(b"Bearer")).unwrap_err(), AuthError::Missing);
    assert_eq!(
        bearer_token(Some(b"Basic abc")).unwrap_err(),
        AuthError::BadScheme
    );
}

#[tokio::test]
async fn a_key_replaced_under_the_same_id_drops_tokens_of_the_old_one() {
    let a = Authenticator::new(100);
    let token = hs(Some("hs"), &claims(60));
    let mut before = snap();
    before.keys = KeyRing::new(vec![Arc::new(VerifyKey {
        id: "hs".into(),
        algorithm: Algorithm::HS256,
        binding: Binding::Any,
        origin: Arc::from(format!("config:hs@{}", keys::fingerprint(SECRET))),
        key: DecodingKey::from_secret(SECRET),
    })]);
    assert!(with(&a, &before, &token, unix_now()).await.is_ok());
    let new_secret = b"a-brand-new-secret-after-the-leak-000";
    let mut after = snap();
    after.keys = KeyRing::new(vec![Arc::new(VerifyKey {
        id: "hs".into(),
        algorithm: Algorithm::HS256,
        binding: Binding::Any,
        origin: Arc::from(format!("config:hs@{}", keys::fingerprint(new_secret))),
        key: DecodingKey::from_secret(new_secret),
    })]);
    assert_eq!(
        with(&a, &after, &token, unix_now()).await.unwrap_err(),
        AuthError::BadSignature
    );
    // And it does not come back from the cache when the old key does.
    assert!(
        with(&a, &before, &token, unix_now()).await.is_ok(),
        "verified afresh"
    );
}
