//! The official Dify SDKs work unchanged through the gateway: the Python (`dify-client` 0.1.10 from
//! PyPI) and Node (`dify-client` 2.3.2 from npm) clients run a blocking and a streaming completion,
//! a feedback, the parameters and an upload with a tenant's credentials as their API key: a JWT, or
//! a gateway API key (`dgw-...`) created through the admin API.
//! `scripts/setup.sh` installs both under `target/sdk/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/sdk")
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk").join(name)
}

/// Runs an SDK script (`program script BASE CREDENTIAL` in `cwd`) and asserts it succeeds.
async fn run_sdk(program: &str, script: PathBuf, cwd: PathBuf, env: &Env, credential: &str) {
    let (base, credential, program) = (env.url("/v1"), credential.to_string(), program.to_string());
    // Blocking for the script's run, off the runtime that serves the simulator.
    let out = tokio::task::spawn_blocking(move || {
        Command::new(program)
            .arg(script)
            .args([&base, &credential])
            .current_dir(cwd)
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("SDK: all calls succeeded"), "{text}");
}

/// Every request Dify saw carried the app key, never the tenant's credential.
fn only_app_keys_reached_dify(env: &Env) {
    let want = format!("Bearer {KEY_ACME_WRITER}");
    let seen = env.sim.requests();
    assert!(seen.len() >= 5, "{} requests", seen.len());
    assert!(
        seen.iter()
            .all(|r| r.authorization.as_deref() == Some(want.as_str()))
    );
}

#[tokio::test]
async fn the_python_sdk_works_through_the_gateway() {
    let _bound = bound(120);
    let env = Env::start().await;
    let python = sdk_dir().join("venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: scripts/setup.sh installs it",
        python.display()
    );
    let python = python.to_string_lossy().into_owned();
    run_sdk(
        &python,
        script("python_sdk.py"),
        sdk_dir(),
        &env,
        &token("acme", Some("writer")),
    )
    .await;
    only_app_keys_reached_dify(&env);
}

#[tokio::test]
async fn the_node_sdk_works_through_the_gateway() {
    let _bound = bound(120);
    let env = Env::start().await;
    let dir = sdk_dir().join("node");
    assert!(
        dir.join("node_modules/dify-client").exists(),
        "target/sdk/node missing: scripts/setup.sh installs it"
    );
    // Node resolves `dify-client` from the script's own folder: run a copy beside node_modules.
    let copy = dir.join("node_sdk.mjs");
    std::fs::copy(script("node_sdk.mjs"), &copy).unwrap();
    run_sdk("node", copy, dir, &env, &token("acme", Some("writer"))).await;
    only_app_keys_reached_dify(&env);
}

/// A gateway with a store, and a gateway API key (`dgw-...`) of a tenant created through the admin
/// API on acme's writer app.
async fn with_api_key() -> (Env, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::with(Setup {
        extra: common::store::store_toml(&common::store::sqlite_url(dir.path())),
        ..Setup::default()
    })
    .await;
    let key = common::store::Admin::of(&env.gw)
        .onboard("initech", KEY_ACME_WRITER)
        .await;
    assert!(key.starts_with("dgw-"));
    (env, key, dir)
}

#[tokio::test]
async fn the_python_sdk_works_with_a_gateway_api_key() {
    let _bound = bound(120);
    let (env, key, _dir) = with_api_key().await;
    let python = sdk_dir().join("venv/bin/python").to_string_lossy().into_owned();
    run_sdk(&python, script("python_sdk.py"), sdk_dir(), &env, &key).await;
    only_app_keys_reached_dify(&env);
}

#[tokio::test]
async fn the_node_sdk_works_with_a_gateway_api_key() {
    let _bound = bound(120);
    let (env, key, _dir) = with_api_key().await;
    let dir = sdk_dir().join("node");
    let copy = dir.join("node_sdk_api_key.mjs");
    std::fs::copy(script("node_sdk.mjs"), &copy).unwrap();
    run_sdk("node", copy, dir, &env, &key).await;
    only_app_keys_reached_dify(&env);
}
