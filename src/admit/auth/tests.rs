//! Unit tests of JWT verification: every rejection reason and the verified-token cache.
#![allow(clippy::unwrap_used)]

use super::*;
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
    }
}

fn verifier() -> JwtVerifier {
    let p = policy();
    let keys = vec![
        VerifyKey::new(
            "hs".into(),
            Algorithm::HS256,
            DecodingKey::from_secret(SECRET),
            &p,
        ),
        VerifyKey::new(
            "rs".into(),
            Algorithm::RS256,
            DecodingKey::from_rsa_pem(RSA_PUB.as_bytes()).unwrap(),
            &p,
        ),
    ];
    JwtVerifier::new(keys, p, 1000)
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

fn check(token: &str) -> Result<Arc<Identity>, AuthError> {
    verifier().verify(token, unix_now())
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

#[test]
fn leeway_applies_and_repeated_tokens_come_from_the_cache() {
    let v = verifier();
    // Expired 2 s ago, within the 5 s leeway.
    assert!(v.verify(&hs(None, &claims(-2)), unix_now()).is_ok());
    let token = hs(None, &claims(60));
    let now = unix_now();
    let first = v.verify(&token, now).unwrap();
    let second = v.verify(&token, now).unwrap();
    assert!(
        Arc::ptr_eq(&first, &second),
        "second verification was not served from the cache"
    );
    // Past its exp the cached entry is not used: a fresh verification yields a new Identity.
    let later = v.verify(&token, first.exp).unwrap();
    assert!(!Arc::ptr_eq(&first, &later));
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
