//! Identity providers' key sets: tokens verify with a provider's keys, a rotation is picked up at the
//! first token naming the new `kid` (one fetch, then at most one per 30 s), the last good set keeps
//! serving while the provider is down, and a set bound to tenants signs for no one else.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::store::*;
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A signing key of the test provider.
struct IdpKey {
    kid: String,
    private_pem: String,
    jwk: Value,
}

impl IdpKey {
    fn new(kid: &str) -> IdpKey {
        use base64::Engine;
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let raw = kp.public_key_raw();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        IdpKey {
            kid: kid.into(),
            private_pem: kp.serialize_pem(),
            jwk: json!({"kty": "EC", "crv": "P-256", "x": b64(&raw[1..33]), "y": b64(&raw[33..65]), "kid": kid, "alg": "ES256", "use": "sig"}),
        }
    }

    fn sign(&self, tenant: &str) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(self.kid.clone());
        let mut c = claims(tenant, None);
        c["jti"] = json!(uuid_like());
        jsonwebtoken::encode(
            &h,
            &c,
            &EncodingKey::from_ec_pem(self.private_pem.as_bytes()).unwrap(),
        )
        .unwrap()
    }
}

fn uuid_like() -> String {
    format!("{:x}", rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now());
    h.finish()
}

/// A provider serving `GET /jwks` over plain HTTP on loopback; the set can be replaced and the
/// server stopped (connections refused from then on).
struct Idp {
    url: String,
    set: Arc<parking_lot::Mutex<Value>>,
    fetches: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Idp {
    async fn start(keys: &[&IdpKey]) -> Idp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let set = Arc::new(parking_lot::Mutex::new(json!({})));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (s, f) = (set.clone(), fetches.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else {
                    return;
                };
                let (s, f) = (s.clone(), f.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut read = 0;
                    while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf[read..]).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read += n,
                        }
                    }
                    f.fetch_add(1, Ordering::SeqCst);
                    let body = s.lock().to_string();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: max-age=600\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(body.as_bytes()).await;
                });
            }
        });
        let idp = Idp {
            url,
            set,
            fetches,
            task,
        };
        idp.publish(keys);
        idp
    }

    fn publish(&self, keys: &[&IdpKey]) {
        *self.set.lock() = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn stop(&self) {
        self.task.abort();
    }
}

async fn status(env: &Env, token: &str) -> u16 {
    env.http
        .get(env.url("/v1/info"))
        .header("authorization", bearer(token))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn provider_keys_verify_rotate_and_outlive_an_outage() {
    let _bound = bound(90);
    let (a, b, c) = (IdpKey::new("key-a"), IdpKey::new("key-b"), IdpKey::new("key-c"));
    let idp = Idp::start(&[&a]).await;
    let env = Env::with(Setup {
        extra: format!(
            "[[auth.jwks]]\nurl = \"{}\"\ntenants = [\"acme\"]\nrefresh = \"10m\"\n",
            idp.url
        ),
        ..Setup::default()
    })
    .await;
    assert_eq!(status(&env, &a.sign("acme")).await, 200);
    assert_eq!(
        status(&env, &a.sign("globex")).await,
        401,
        "the set signs for acme only"
    );

    // Rotation: the first token naming the new kid fetches the set again, once.
    idp.publish(&[&b]);
    let before = idp.fetches();
    assert_eq!(status(&env, &b.sign("acme")).await, 200);
    assert_eq!(idp.fetches(), before + 1);
    assert_eq!(
        status(&env, &a.sign("acme")).await,
        401,
        "a key rotated out is refused"
    );
    // Unknown kids do not make the gateway hammer the provider: at most one fetch per 30 s.
    let before = idp.fetches();
    for _ in 0..5 {
        assert_eq!(status(&env, &c.sign("acme")).await, 401);
    }
    assert_eq!(idp.fetches(), before, "an unknown kid fetched again within 30 s");

    // The provider goes away: the last good set keeps serving.
    idp.stop();
    for _ in 0..3 {
        assert_eq!(status(&env, &b.sign("acme")).await, 200);
    }
    let m = env.gw.metrics().await;
    assert!(
        metric_sum(&m, "dify_gateway_jwks_fetches_total", &["outcome=\"ok\""]) >= 2.0,
        "{m}"
    );
}

#[tokio::test]
async fn a_tenants_own_provider_through_the_admin_api() {
    let _bound = bound(90);
    let key = IdpKey::new("t-key");
    let idp = Idp::start(&[&key]).await;
    let dir = tempfile::tempdir().unwrap();
    let env = Env::with(Setup {
        extra: store_toml(&sqlite_url(dir.path())),
        ..Setup::default()
    })
    .await;
    let admin = Admin::of(&env.gw);
    admin.onboard("initech", KEY_GLOBEX).await;
    let (s, v) = admin
        .post(
            "/admin/tenants/initech/jwt-keys",
            json!({"id": "idp", "jwks_url": idp.url}),
        )
        .await;
    assert_eq!((s, v["algorithm"].as_str()), (201, Some("JWKS")), "{v}");
    assert_eq!(status(&env, &key.sign("initech")).await, 200);
    assert_eq!(status(&env, &key.sign("acme")).await, 401, "bound to its tenant");
    idp.publish(&[]);
    let (s, v) = admin
        .post(
            "/admin/tenants/initech/jwt-keys",
            json!({"id": "empty", "jwks_url": idp.url}),
        )
        .await;
    assert_eq!(s, 400, "a set without a usable key: {v}");
    assert_eq!(admin.delete("/admin/tenants/initech/jwt-keys/idp").await.0, 204);
    assert_eq!(status(&env, &key.sign("initech")).await, 401, "deleted: refused");
}
