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
fn check_accepts_the_reference_config_only_with_a_secret_of_ones_own() {
    let _bound = bound(120);
    let out = bin()
        .args(["check", "--config", "config/gateway.toml"])
        .env("GW_JWT_SECRET", "a-deployment-secret-of-32-bytes-or-more")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Its fallback development secret is printed in this repository: anyone could mint tokens.
    for args in [vec!["check"], vec!["token", "--tenant", "acme"]] {
        let out = bin()
            .args(&args)
            .args(["--config", "config/gateway.toml"])
            .env_remove("GW_JWT_SECRET")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("auth.keys[0].secret: is the published development secret"),
            "{err}"
        );
    }
}

/// Writes `toml` to a temp file and runs `check` on it.
fn check(toml: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, toml).unwrap();
    bin().args(["check", "--config"]).arg(&path).output().unwrap()
}

const BASE: &str = r#"
[upstream]
url = "http://127.0.0.1:5001"
[[auth.keys]]
id = "k"
algorithm = "HS256"
secret = "a-deployment-secret-of-32-bytes-or-more"
"#;

#[test]
fn a_shared_key_must_scope_users_and_opening_its_app_wide_endpoints_warns() {
    let _bound = bound(120);
    let shared = format!(
        "{BASE}[[tenants]]\nid = \"acme\"\n[[tenants.apps]]\nname = \"w\"\napi_key = \"app-shared\"\n\
         scope_users = false\n[[tenants]]\nid = \"globex\"\n[[tenants.apps]]\nname = \"w\"\n\
         api_key = \"app-shared\"\napp_wide_endpoints = true\n"
    );
    let out = check(&shared);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "tenants[0].apps[0].scope_users: must be true: this Dify key is shared with tenant(s) globex"
        ),
        "{err}"
    );
    let fixed = shared.replace("scope_users = false", "scope_users = true");
    let out = check(&fixed);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "warning: tenants[1].apps[0].app_wide_endpoints: this Dify key is shared with tenant(s) acme"
        ),
        "{err}"
    );
    // One tenant alone may turn scoping off.
    let alone = format!(
        "{BASE}[[tenants]]\nid = \"acme\"\n[[tenants.apps]]\nname = \"w\"\napi_key = \"app-own\"\nscope_users = false\n"
    );
    assert!(check(&alone).status.success());
}

#[test]
fn redis_needs_a_key_to_authenticate_values_and_a_scheme_this_build_serves() {
    let _bound = bound(120);
    let tenant = "[[tenants]]\nid = \"acme\"\n[[tenants.apps]]\nname = \"w\"\napi_key = \"app-own\"\n";
    for (redis, want) in [
        (
            "[redis]\nurl = \"redis://127.0.0.1:6379\"\n",
            "redis.hmac_key: is required with Redis",
        ),
        (
            "[redis]\nurl = \"redis://127.0.0.1:6379\"\nhmac_key = \"short\"\n",
            "redis.hmac_key: must be at least 32 bytes",
        ),
        (
            "[cache]\nredis_url = \"http://x\"\n",
            "cache.redis_url: must start with redis:// or rediss:// or unix://",
        ),
    ] {
        let out = check(&format!("{BASE}{tenant}{redis}"));
        assert_eq!(out.status.code(), Some(64), "{redis}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{redis}: {err}");
    }
    let ok =
        format!("{BASE}{tenant}[redis]\nurl = \"redis://127.0.0.1:6379\"\nhmac_key = \"{REDIS_HMAC_KEY}\"\n");
    assert!(check(&ok).status.success());
}

#[test]
fn check_reports_every_problem_by_key_path() {
    let _bound = bound(120);
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
    let _bound = bound(120);
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
    assert!(err.contains("auth.keys: at least one key"), "{err}");
    assert!(err.contains("tenants: at least one tenant is required"), "{err}");
    assert!(!err.to_lowercase().contains("address already in use"), "{err}");
    let out = bin().output().unwrap();
    assert_eq!(out.status.code(), Some(64), "no config at all is a usage error");
    drop(held);
}

#[tokio::test]
async fn token_command_signs_a_token_the_gateway_accepts() {
    let _bound = bound(120);
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
    let _bound = bound(120);
    let out = bin()
        .args(["check", "--config", "deploy/gateway.toml"])
        .env("DIFY_URL", "http://dify-api:5001")
        .env("GW_JWT_SECRET", "a-deployment-secret-of-32-bytes-or-more")
        .env("GW_ADMIN_TOKEN", "an-admin-token-0123456789")
        .env("DIFY_KEY_ACME_WRITER", "app-key")
        .env_remove("GW_REDIS_URL")
        .env_remove("GW_REDIS_HMAC_KEY")
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

/// `config/gateway.toml` with the gateway, admin and simulator on free loopback ports.
fn demo_config(dir: &std::path::Path) -> (std::path::PathBuf, u16) {
    let (listen, admin, sim) = (free_port(), free_port(), free_port());
    let text = std::fs::read_to_string("config/gateway.toml")
        .unwrap()
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{listen}"))
        .replace("127.0.0.1:9090", &format!("127.0.0.1:{admin}"))
        .replace("127.0.0.1:5001", &format!("127.0.0.1:{sim}"))
        .replacen(
            "[server]\n",
            &format!(
                "[server]\npid_file = \"{0}/gw.pid\"\nupgrade_sock = \"{0}/gw.sock\"\n",
                dir.display()
            ),
            1,
        );
    let path = dir.join("demo.toml");
    std::fs::write(&path, text).unwrap();
    (path, listen)
}

#[tokio::test]
async fn the_demo_answers_its_curl_line_and_exits_on_sigint_and_sigterm() {
    let _bound = bound(120);
    for signal in ["-INT", "-TERM"] {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, listen) = demo_config(dir.path());
        let log = dir.path().join("demo.log");
        let mut child = bin()
            .args(["demo", "--config"])
            .arg(&cfg)
            .env_remove("GW_JWT_SECRET")
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let banner = eventually(30, "the demo's curl line", || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.contains("curl -N").then_some(text)
        })
        .await;
        let tok = banner
            .split("Authorization: Bearer ")
            .nth(1)
            .and_then(|t| t.split('\'').next())
            .unwrap()
            .to_string();
        let body = client()
            .post(format!("http://127.0.0.1:{listen}/v1/completion-messages"))
            .header("authorization", bearer(&tok))
            .json(&serde_json::json!({"inputs": {"topic": "green tea"}, "response_mode": "streaming", "user": "alice"}))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(data_events(&body).last().unwrap()["event"], "message_end");
        let t = std::time::Instant::now();
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = eventually(10, "the demo to exit", || child.try_wait().unwrap()).await;
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{signal}: {:?}",
            t.elapsed()
        );
        assert!(status.success(), "{signal}: {status:?}");
    }
}

/// A gateway (its config passed through `edit`, `env` added to its environment) in front of a
/// simulator, after one `GET /v1/info` through it.
async fn after_one_call(
    edit: impl Fn(String) -> String,
    env: &[(String, String)],
) -> (Gateway, dify_sim::Simulator) {
    let setup = Setup::default();
    let sim = dify_sim::Simulator::start("127.0.0.1:0".parse().unwrap(), setup.sim.clone())
        .await
        .unwrap();
    let toml = edit(config_toml(&sim.base_url(), &setup));
    let gw = Gateway::start_with(&toml, "/readyz", env).await;
    let r = client()
        .get(gw.url("/v1/info"))
        .header("authorization", bearer(&token("acme", None)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    (gw, sim)
}

#[tokio::test]
async fn text_logs_to_a_file_carry_no_colour_codes() {
    let _bound = bound(120);
    let text = |toml: String| toml.replace("log_format = \"json\"", "log_format = \"text\"");
    let (gw, _sim) = after_one_call(text, &[]).await;
    let log = eventually(10, "the access line", || {
        let l = gw.log();
        l.contains("endpoint=\"info\"").then_some(l)
    })
    .await;
    assert!(!log.contains('\u{1b}'), "ANSI escape codes in a log file:\n{log}");
}

#[tokio::test]
async fn access_lines_follow_the_log_filter() {
    let _bound = bound(120);
    let env = [("RUST_LOG".to_string(), "info,access=off".to_string())];
    let (gw, _sim) = after_one_call(|toml| toml, &env).await;
    // The request's metrics are recorded in the same step, just before its access line.
    gw.metrics_contain("endpoint=\"info\",method=\"GET\",status_class=\"2xx\"")
        .await;
    let log = gw.log();
    assert!(
        log.contains("\"level\":\"INFO\""),
        "the other info lines are kept:\n{log}"
    );
    assert!(
        !log.contains("\"target\":\"access\""),
        "access lines were filtered out:\n{log}"
    );
}

/// Runs `dify-gateway ARGS` against `gw`'s admin API (off the runtime that serves the simulator).
async fn manage(gw: &Gateway, args: &[&str], token: Option<&str>) -> std::process::Output {
    let mut cmd = bin();
    cmd.args(args)
        .env("GW_ADMIN_URL", format!("http://{}", gw.admin))
        .env("DIFY_KEY_FOR_CLI", "app-acme-editor-key")
        .env_remove("GW_ADMIN_TOKEN");
    if let Some(t) = token {
        cmd.env("GW_ADMIN_TOKEN", t);
    }
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn operators_manage_tenants_and_keys_from_the_command_line() {
    let _bound = bound(120);
    let dir = tempfile::tempdir().unwrap();
    let env = Env::with(Setup {
        extra: common::store::store_toml(&common::store::sqlite_url(dir.path())),
        ..Setup::default()
    })
    .await;
    let token = Some(common::store::ADMIN_TOKEN);
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let ok = |o: &std::process::Output| {
        assert!(o.status.success(), "{}", text(o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    ok(&manage(
        &env.gw,
        &[
            "tenants",
            "create",
            "initech",
            "--limits",
            r#"{"requests_per_minute": 60}"#,
        ],
        token,
    )
    .await);
    let out = ok(&manage(
        &env.gw,
        &[
            "tenants",
            "set-app",
            "initech",
            "writer",
            "--api-key-env",
            "DIFY_KEY_FOR_CLI",
        ],
        token,
    )
    .await);
    assert!(out.contains("…-key"), "{out}");
    let created: serde_json::Value = serde_json::from_str(&ok(&manage(
        &env.gw,
        &["keys", "create", "initech", "--name", "ci", "--json"],
        token,
    )
    .await))
    .unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    let list = ok(&manage(&env.gw, &["tenants", "list"], token).await);
    assert!(list.lines().next().unwrap().starts_with("TENANT"), "{list}");
    assert!(
        list.lines()
            .any(|l| l.starts_with("initech") && l.contains("store") && l.contains("requests_per_minute=60")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("acme") && l.contains("config")),
        "{list}"
    );
    let keys = ok(&manage(&env.gw, &["keys", "list", "initech"], token).await);
    assert!(
        keys.contains(&key[key.len() - 4..]) && !keys.contains(&key),
        "{keys}"
    );
    let call = |k: String| {
        let http = env.http.clone();
        let url = env.url("/v1/parameters");
        async move {
            http.get(url)
                .header("authorization", bearer(&k))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(call(key.clone()).await, 200);
    let id = created["id"].as_str().unwrap();
    ok(&manage(&env.gw, &["keys", "revoke", "initech", id], token).await);
    assert_eq!(call(key).await, 401);
    let audit = ok(&manage(&env.gw, &["tenants", "audit"], token).await);
    assert!(
        audit.contains("api_key.delete") && audit.contains("tenant.create"),
        "{audit}"
    );

    // Refusals: the API's (exit 1, its message), a missing token (64), no gateway (69).
    let refused = manage(&env.gw, &["tenants", "delete", "acme"], token).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(text(&refused).contains("409 conflict"), "{}", text(&refused));
    assert_eq!(
        manage(&env.gw, &["tenants", "list"], None).await.status.code(),
        Some(64)
    );
    let mut gone = bin();
    gone.args([
        "tenants",
        "list",
        "--admin-url",
        &format!("http://127.0.0.1:{}", free_port()),
    ])
    .env("GW_ADMIN_TOKEN", "x");
    let gone = tokio::task::spawn_blocking(move || gone.output().unwrap())
        .await
        .unwrap();
    assert_eq!(gone.status.code(), Some(69), "{}", text(&gone));
}

#[test]
fn check_reports_store_key_and_limit_problems_by_path() {
    let _bound = bound(60);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let cases = [
        (
            "[store]\nurl = \"sqlite://gw.db\"\n",
            "store: encryption_key or encryption_key_file is required",
        ),
        (
            "[store]\nurl = \"sqlite://gw.db\"\nencryption_key = \"c2hvcnQ=\"\n",
            "store.encryption_key: must be 32 random bytes in base64",
        ),
        (
            "[store]\nurl = \"mysql://db\"\nencryption_key = \"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\"\n",
            "store.url: must start with sqlite://",
        ),
        ("[store]\nencryption_key = \"x\"\n", "store.url: is required"),
        ("[[auth.jwks]]\nurl = \"ftp://idp/keys\"\n", "auth.jwks[0].url: "),
        (
            "[[auth.jwks]]\nurl = \"http://idp/keys\"\ntenants = []\n",
            "auth.jwks[0].tenants: must name at least one tenant",
        ),
        (
            "[auth]\nmax_token_lifetime = \"forever\"\n",
            "auth.max_token_lifetime: ",
        ),
        (
            "[[tenants]]\nid = \"t\"\n[tenants.limits]\nrequests_per_minute = 0\n",
            "tenants[0].limits.requests_per_minute: must be at least 1",
        ),
        (
            "[[tenants]]\nid = \"t\"\n[tenants.limits]\nrequests_per_hour = 5\n",
            "requests_per_hour",
        ),
        (
            "[[tenants]]\nid = \"t\"\n[[tenants.apps]]\nname = \"w\"\napi_key = \"app-x\"\nmax_share = 1.5\n",
            "tenants[0].apps[0].max_share: must be a fraction",
        ),
    ];
    for (toml, expected) in cases {
        let text = format!("[upstream]\nurl = \"http://127.0.0.1:1\"\n{toml}");
        std::fs::write(&path, text).unwrap();
        let out = bin().args(["check", "--config"]).arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{toml}: {err}");
        assert!(err.contains(expected), "`{expected}` missing for\n{toml}\n{err}");
    }
    // A store alone is enough: tenants and keys come through the admin API.
    let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let text = format!(
        "[upstream]\nurl = \"http://127.0.0.1:1\"\n[store]\nurl = \"sqlite://./gw.db\"\nencryption_key = \"{key}\"\n"
    );
    std::fs::write(&path, text).unwrap();
    let out = bin().args(["check", "--config"]).arg(&path).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
