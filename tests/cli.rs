//! The command line: `check` reports every problem by key path and exits 64, bad config exits 64
//! before any port is bound, and `token` prints a JWT the gateway accepts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dify-gateway"))
}

#[test]
fn check_accepts_the_reference_config() {
    let out = bin()
        .args(["check", "--config", "config/gateway.toml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn check_reports_every_problem_by_key_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[server]
listen = "nowhere"
max_request_body = "lots"
typo = 1
[upstream]
url = "ftp://dify"
read_timeout = "20"
[[auth.keys]]
id = "k"
algorithm = "HS512"
[[auth.keys]]
id = "short"
algorithm = "HS256"
secret = "tooshort"
[[tenants]]
id = "acme"
[[tenants.apps]]
name = "writer"
api_key = "${DIFY_KEY_THAT_IS_NOT_SET}"
[[tenants]]
id = "acme"
[[tenants]]
id = "a:b"
[[tenants.apps]]
name = "w"
api_key = "app-x"
[cache]
ttl = "soon"
[cache.endpoint_ttl]
chat = "1m"
"#,
    )
    .unwrap();
    let out = bin()
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("DIFY_KEY_THAT_IS_NOT_SET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "server.listen: `nowhere` is not an ip:port address",
        "server.max_request_body: ",
        "server.typo: unknown key",
        "upstream.url: `ftp://dify` must start with http:// or https://",
        "upstream.read_timeout: ",
        "auth.keys[0].algorithm: `HS512` is not one of",
        "auth.keys[1].secret: must be at least 32 bytes",
        "tenants[0].apps[0].api_key: environment variable DIFY_KEY_THAT_IS_NOT_SET is not set",
        "tenants[1].id: `acme` is used by another tenant",
        "tenants[1].apps: at least one app is required",
        "tenants[2].id: must not contain `:`",
        "cache.ttl: ",
        "cache.endpoint_ttl.chat: is not one of info, parameters, site, meta",
    ] {
        assert!(err.contains(expected), "missing `{expected}` in:\n{err}");
    }
}

#[test]
fn bad_config_exits_64_before_binding_any_port() {
    // The listen port is held here: a gateway that bound before validating would fail on it.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let cfg = format!("[server]\nlisten = \"127.0.0.1:{port}\"\n[upstream]\nurl = \"http://127.0.0.1:1\"\n");
    std::fs::write(&path, cfg).unwrap();
    let out = bin().arg("-c").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("auth.keys: at least one key is required"), "{err}");
    assert!(!err.to_lowercase().contains("address already in use"), "{err}");
    let out = bin().output().unwrap();
    assert_eq!(out.status.code(), Some(64), "no config at all is a usage error");
    drop(held);
}

#[tokio::test]
async fn token_command_signs_a_token_the_gateway_accepts() {
    let env = Env::start().await;
    let cfg = env.gw.dir.path().join("gateway.toml");
    let out = bin()
        .args(["token", "--tenant", "globex", "--ttl", "10m", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let tok = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let resp = env
        .http
        .get(env.url("/v1/site"))
        .header("authorization", bearer(&tok))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        env.sim.requests()[0].authorization.as_deref(),
        Some(format!("Bearer {KEY_GLOBEX}").as_str())
    );
}

#[test]
fn the_container_config_is_valid() {
    let out = bin()
        .args(["check", "--config", "deploy/gateway.toml"])
        .env("DIFY_URL", "http://dify-api:5001")
        .env("GW_JWT_SECRET", "a-deployment-secret-of-32-bytes-or-more")
        .env("GW_ADMIN_TOKEN", "an-admin-token-0123456789")
        .env("DIFY_KEY_ACME_WRITER", "app-key")
        .env_remove("GW_REDIS_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Without its secrets it refuses to start, naming each missing one.
    let out = bin()
        .args(["check", "--config", "deploy/gateway.toml"])
        .env_remove("GW_JWT_SECRET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("auth.keys[0].secret: environment variable GW_JWT_SECRET is not set")
    );
}
