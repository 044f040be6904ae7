//! Every way a tenant JWT can be wrong is refused with 401/403 in Dify's envelope, and none of them
//! reaches Dify; valid HS256, RS256 and ES256 tokens map to the right app key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use serde_json::json;

async fn info(env: &Env, auth: Option<String>) -> reqwest::Response {
    let mut req = env.http.get(env.url("/v1/info"));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn each_bad_token_is_refused_before_dify() {
    let _bound = bound(120);
    let env = Env::start().await;
    let base = claims("acme", None);
    let with = |k: &str, v: serde_json::Value| {
        let mut c = base.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = base.clone();
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &base,
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-secret-not-the-secret-xx"),
    )
    .unwrap();
    use base64::Engine;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap())
    };
    let alg_none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(base.clone())
    );
    let rsa_pub = std::fs::read(RSA_PUBLIC_FILE).unwrap();
    let mut confused_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    confused_header.kid = Some("rs".into());
    let confused = jsonwebtoken::encode(
        &confused_header,
        &base,
        &jsonwebtoken::EncodingKey::from_secret(&rsa_pub),
    )
    .unwrap();

    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("missing header", None, "Authorization header must be provided"),
        (
            "basic scheme",
            Some("Basic YWxhZGRpbjpvcGVu".into()),
            "scheme must be 'Bearer'",
        ),
        ("malformed", Some(bearer("not.a.jwt")), "malformed"),
        ("bad signature", Some(bearer(&forged)), "signature"),
        (
            "expired",
            Some(bearer(&sign_hs(None, &with("exp", json!(now() - 120))))),
            "expired",
        ),
        ("no exp", Some(bearer(&sign_hs(None, &without("exp")))), "expiry"),
        (
            "future nbf",
            Some(bearer(&sign_hs(None, &with("nbf", json!(now() + 600))))),
            "not valid yet",
        ),
        (
            "wrong iss",
            Some(bearer(&sign_hs(None, &with("iss", json!("https://evil"))))),
            "issuer",
        ),
        (
            "wrong aud",
            Some(bearer(&sign_hs(None, &with("aud", json!("other"))))),
            "audience",
        ),
        ("alg none", Some(bearer(&alg_none)), "algorithm"),
        ("HS/RS confusion", Some(bearer(&confused)), "algorithm"),
        (
            "unknown kid",
            Some(bearer(&sign_hs(Some("nope"), &base))),
            "key id",
        ),
        (
            "no tenant claim",
            Some(bearer(&sign_hs(None, &without("tenant")))),
            "tenant",
        ),
    ];
    for (name, auth, msg) in cases {
        let resp = info(&env, auth).await;
        let www = resp
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        let body = assert_envelope(resp, 401, "unauthorized").await;
        assert!(
            www.is_some_and(|w| w.starts_with("Bearer")),
            "{name}: no WWW-Authenticate"
        );
        assert!(body["message"].as_str().unwrap().contains(msg), "{name}: {body}");
    }
    for (name, tok) in [
        ("unknown tenant", token("initech", None)),
        ("unknown app claim", token("acme", Some("nope"))),
        ("other tenant's app", token("globex", Some("editor"))),
    ] {
        let resp = info(&env, Some(bearer(&tok))).await;
        let body = assert_envelope(resp, 403, "forbidden").await;
        assert!(!body.to_string().contains(KEY_ACME_WRITER), "{name} leaked a key");
    }
    let resp = env
        .http
        .get(env.url("/v1/info"))
        .header("authorization", bearer(&token("acme", None)))
        .header("x-dify-app", "nope")
        .send()
        .await
        .unwrap();
    assert_envelope(resp, 403, "forbidden").await;
    assert_eq!(env.upstream_count(), 0, "a refused call reached Dify");
    env.gw
        .metrics_contain("dify_gateway_auth_failures_total{reason=\"expired\"} 1")
        .await;
    env.gw
        .metrics_contain("dify_gateway_auth_failures_total{reason=\"unknown_tenant\"} 1")
        .await;
}

#[tokio::test]
async fn valid_tokens_of_each_algorithm_map_to_the_right_app_key() {
    let _bound = bound(120);
    let env = Env::start().await;
    let cases = [
        (sign_hs(Some("hs"), &claims("acme", None)), None, KEY_ACME_WRITER),
        (sign_rs(&claims("acme", Some("editor"))), None, KEY_ACME_EDITOR),
        (sign_es(&claims("globex", None)), None, KEY_GLOBEX),
        (
            sign_hs(None, &claims("acme", None)),
            Some("editor"),
            KEY_ACME_EDITOR,
        ),
        // The claim wins over the header.
        (
            sign_hs(None, &claims("acme", Some("writer"))),
            Some("editor"),
            KEY_ACME_WRITER,
        ),
    ];
    for (i, (tok, header_app, key)) in cases.iter().enumerate() {
        let mut req = env
            .http
            .get(env.url("/v1/app/feedbacks"))
            .header("authorization", bearer(tok));
        if let Some(a) = header_app {
            req = req.header("x-dify-app", *a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200, "case {i}");
        let seen = env.sim.requests();
        let last = seen.last().unwrap();
        assert_eq!(
            last.authorization.as_deref(),
            Some(format!("Bearer {key}").as_str()),
            "case {i}"
        );
        assert!(last.header("x-dify-app").is_none(), "X-Dify-App reached Dify");
    }
    // A repeated token keeps working (served from the verified-token cache).
    let tok = token("acme", None);
    for _ in 0..3 {
        let resp = info(&env, Some(bearer(&tok))).await;
        assert_eq!(resp.status(), 200);
    }
}
