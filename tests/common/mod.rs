//! Test harness: the real gateway binary on loopback in front of the in-process Dify simulator, with
//! OS-assigned ports, readiness waits instead of sleeps, and JWT minting with test-only keys.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod otlp;
pub mod redis_cluster;
pub mod store;
pub mod tls;

use dify_sim::{SimApp, SimConfig, Simulator};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const SECRET: &str = "integration-test-secret-0123456789abcdef";
pub const RSA_PRIVATE: &str = include_str!("../fixtures/keys/rsa-private.pem");
pub const RSA_PUBLIC_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys/rsa-public.pem");
pub const EC_PRIVATE: &str = include_str!("../fixtures/keys/ec-private.pk8.pem");
pub const EC_PUBLIC_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/keys/ec-public.pem");

pub const REDIS_HMAC_KEY: &str = "test-redis-hmac-key-0123456789abcdef";
pub const KEY_ACME_WRITER: &str = "app-acme-writer-key";
pub const KEY_ACME_EDITOR: &str = "app-acme-editor-key";
pub const KEY_GLOBEX: &str = "app-globex-key";

/// A port the OS just handed out and released.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Options of one test setup.
pub struct Setup {
    pub sim: SimConfig,
    /// Extra TOML appended to `[upstream]`.
    pub upstream_extra: String,
    /// Extra TOML appended to `[server]`.
    pub server_extra: String,
    /// Upstream URL override (default: the simulator).
    pub upstream_url: Option<String>,
    /// Extra TOML appended at the end (whole sections such as `[cache]`).
    pub extra: String,
    /// Environment of the gateway process (`RUST_LOG` is `info` unless set here).
    pub gateway_env: Vec<(String, String)>,
    /// Extra TOML appended to `[redis]` (which holds the HMAC key).
    pub redis_extra: String,
    /// `server.grace_period`.
    pub grace_period: String,
}

impl Default for Setup {
    fn default() -> Self {
        let app = |key: &str, name: &str| SimApp {
            key: key.into(),
            name: name.into(),
            tts_autoplay: false,
        };
        Self {
            sim: SimConfig {
                apps: vec![
                    app(KEY_ACME_WRITER, "Acme writer"),
                    app(KEY_ACME_EDITOR, "Acme editor"),
                    app(KEY_GLOBEX, "Globex writer"),
                ],
                ..SimConfig::default()
            },
            upstream_extra: String::new(),
            server_extra: String::new(),
            upstream_url: None,
            extra: String::new(),
            gateway_env: Vec::new(),
            redis_extra: String::new(),
            grace_period: "1s".into(),
        }
    }
}

/// A running gateway in front of a running simulator.
pub struct Env {
    pub sim: Simulator,
    pub gw: Gateway,
    pub http: reqwest::Client,
}

impl Env {
    pub async fn start() -> Env {
        Self::with(Setup::default()).await
    }

    /// Like [`Env::with`], exporting traces to `otlp_endpoint`.
    pub async fn with_telemetry(setup: Setup, otlp_endpoint: &str) -> Env {
        let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), setup.sim.clone())
            .await
            .unwrap();
        let toml = config_toml(&sim.base_url(), &setup).replace(
            "[telemetry]\nlog_format = \"json\"",
            &format!("[telemetry]\nlog_format = \"json\"\notlp_endpoint = \"{otlp_endpoint}\""),
        );
        let gw = Gateway::start(&toml).await;
        Env {
            sim,
            gw,
            http: client(),
        }
    }

    pub async fn with(setup: Setup) -> Env {
        let sim = Simulator::start("127.0.0.1:0".parse().unwrap(), setup.sim.clone())
            .await
            .unwrap();
        let url = setup.upstream_url.clone().unwrap_or_else(|| sim.base_url());
        // With a chosen (possibly dead) upstream, readiness cannot be required: wait for liveness.
        let probe = if setup.upstream_url.is_some() {
            "/healthz"
        } else {
            "/readyz"
        };
        let gw = Gateway::start_with(&config_toml(&url, &setup), probe, &setup.gateway_env).await;
        Env {
            sim,
            gw,
            http: client(),
        }
    }

    /// `http://127.0.0.1:PORT{path}` on the gateway.
    pub fn url(&self, path: &str) -> String {
        self.gw.url(path)
    }

    /// Requests the simulator has seen so far.
    pub fn upstream_count(&self) -> usize {
        self.sim.requests().len()
    }
}

/// The test HTTP client: no proxy from the environment (traffic stays on loopback), and every call
/// bounded in time so that a regression fails instead of hanging.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Bounds a test in time even where no runner does (plain `cargo test`): unless dropped within
/// `secs`, it reports the test and aborts the test process, so a hang becomes a failure.
pub struct Bound(std::sync::Arc<std::sync::atomic::AtomicBool>);

pub fn bound(secs: u64) -> Bound {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let name = std::thread::current().name().unwrap_or("a test").to_string();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if flag.load(std::sync::atomic::Ordering::Acquire) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("{name} did not finish within {secs} s: aborting the test run");
        std::process::abort();
    });
    Bound(done)
}

impl Drop for Bound {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// Sends `request` as raw bytes on a new connection, closes the writing side (the peer sees the
/// request end there), and reads the answer until the gateway closes, within 10 s. Async, so that an in-process simulator keeps running.
pub async fn raw_exchange_half_closed(addr: SocketAddr, request: &[u8]) -> String {
    exchange(addr, request, true).await
}

/// Sends `request` as raw bytes on a new connection (no client library normalises it) and reads the
/// answer until the gateway closes, within 10 s. Async, so that an in-process simulator keeps running.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    exchange(addr, request, false).await
}

async fn exchange(addr: SocketAddr, request: &[u8], half_close: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        if half_close {
            s.shutdown().await.unwrap();
        }
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("no complete answer within 10 s")
}

/// A raw blocking connection to `addr` whose reads and writes give up after 10 s (only for
/// exchanges the simulator takes no part in: a blocked test thread would block it too).
pub fn raw_connect(addr: SocketAddr) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

pub fn config_toml(upstream_url: &str, setup: &Setup) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{{LISTEN}}"
admin_listen = "127.0.0.1:{{ADMIN}}"
grace_period = "{grace_period}"
max_request_body = "40MB"
threads = 2
{server_extra}

[upstream]
url = "{upstream_url}"
connect_timeout = "2s"
{upstream_extra}

[auth]
issuer = "https://idp.test"
audience = "dify-gateway"
leeway = "5s"

[[auth.keys]]
id = "hs"
algorithm = "HS256"
secret = "{SECRET}"

[[auth.keys]]
id = "rs"
algorithm = "RS256"
public_key_file = "{RSA_PUBLIC_FILE}"

[[auth.keys]]
id = "es"
algorithm = "ES256"
public_key_file = "{EC_PUBLIC_FILE}"

[telemetry]
log_format = "json"

[redis]
hmac_key = "{REDIS_HMAC_KEY}"
{redis_extra}

[[tenants]]
id = "acme"
[[tenants.apps]]
name = "writer"
api_key = "{KEY_ACME_WRITER}"
app_wide_endpoints = true   # shared with umbrella, but acme administers it
[[tenants.apps]]
name = "editor"
api_key = "{KEY_ACME_EDITOR}"

[[tenants]]
id = "globex"
[[tenants.apps]]
name = "writer"
api_key = "{KEY_GLOBEX}"

# Shares acme's writer app: their end users must stay apart.
[[tenants]]
id = "umbrella"
[[tenants.apps]]
name = "writer"
api_key = "{KEY_ACME_WRITER}"

{extra}
"#,
        server_extra = setup.server_extra,
        upstream_extra = setup.upstream_extra,
        redis_extra = setup.redis_extra,
        grace_period = setup.grace_period,
        extra = setup.extra,
    )
}

/// The real `dify-gateway` binary, killed on drop.
pub struct Gateway {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Gateway {
    /// Writes `toml` (with `{LISTEN}`/`{ADMIN}` replaced by free ports), starts the binary and waits
    /// until `/readyz` answers 200.
    pub async fn start(toml: &str) -> Gateway {
        Self::start_probing(toml, "/readyz").await
    }

    /// Like [`Gateway::start`], waiting for `probe` (an admin path) to answer 200.
    pub async fn start_probing(toml: &str, probe: &str) -> Gateway {
        Self::start_with(toml, probe, &[]).await
    }

    /// Like [`Gateway::start_probing`], with extra environment variables for the process.
    pub async fn start_with(toml: &str, probe: &str, env: &[(String, String)]) -> Gateway {
        Self::start_bin(env!("CARGO_BIN_EXE_dify-gateway"), toml, probe, env).await
    }

    /// Like [`Gateway::start_with`], running the binary at `bin`.
    pub async fn start_bin(bin: &str, toml: &str, probe: &str, env: &[(String, String)]) -> Gateway {
        for _ in 0..3 {
            let (listen, admin) = (free_port(), free_port());
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("gateway.toml");
            let text = toml
                .replace("{LISTEN}", &listen.to_string())
                .replace("{ADMIN}", &admin.to_string());
            let text = text.replacen(
                "[server]\n",
                &format!(
                    "[server]\npid_file = \"{0}/gw.pid\"\nupgrade_sock = \"{0}/gw.sock\"\n",
                    dir.path().display()
                ),
                1,
            );
            std::fs::write(&path, text).unwrap();
            let log = std::fs::File::create(dir.path().join("gateway.log")).unwrap();
            let child = Command::new(bin)
                .arg("--config")
                .arg(&path)
                .env("RUST_LOG", "info")
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            let mut gw = Gateway {
                child,
                addr: ([127, 0, 0, 1], listen).into(),
                admin: ([127, 0, 0, 1], admin).into(),
                dir,
            };
            if gw.wait_for(probe, Duration::from_secs(20)).await {
                return gw;
            }
            // A port taken between reservation and bind: try again with new ones.
            let _ = gw.child.kill();
        }
        panic!("gateway did not become ready");
    }

    /// Polls the admin path `probe` until 200 or the deadline; false if the process died first.
    pub async fn wait_for(&mut self, probe: &str, limit: Duration) -> bool {
        let http = client();
        let deadline = Instant::now() + limit;
        let url = format!("http://{}{probe}", self.admin);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(r) = http.get(&url).timeout(Duration::from_millis(500)).send().await
                && r.status() == 200
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        false
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends SIGTERM (graceful stop).
    pub fn terminate(&self) {
        self.signal("-TERM");
    }

    /// Sends `sig` (`-HUP`, `-TERM`, ...) to the process.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([sig, &pid]).status().unwrap().success());
    }

    /// Waits for the process to exit (at most `secs` seconds) and returns its status.
    pub async fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "gateway did not exit");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// Everything the gateway logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    pub async fn metrics(&self) -> String {
        client()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Scrapes `/metrics` until it contains `line` (requests are recorded when they finish, which
    /// may be after the client has its answer); fails after 10 s.
    pub async fn metrics_contain(&self, line: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let m = self.metrics().await;
            if m.contains(line) {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "metrics never contained `{line}`:\n{m}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Claims for tenant `tenant` (and `app` when given), valid for a minute.
pub fn claims(tenant: &str, app: Option<&str>) -> Value {
    let mut c =
        json!({"tenant": tenant, "exp": now() + 60, "iss": "https://idp.test", "aud": "dify-gateway"});
    if let Some(a) = app {
        c["app"] = json!(a);
    }
    c
}

pub fn sign_hs(kid: Option<&str>, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = kid.map(String::from);
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

pub fn sign_rs(claims: &Value) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = Some("rs".into());
    jsonwebtoken::encode(
        &h,
        claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap()
}

pub fn sign_es(claims: &Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("es".into());
    jsonwebtoken::encode(
        &h,
        claims,
        &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// A valid HS256 token for `tenant`/`app`.
pub fn token(tenant: &str, app: Option<&str>) -> String {
    sign_hs(Some("hs"), &claims(tenant, app))
}

pub fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// Asserts a gateway error envelope.
pub async fn assert_envelope(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    let ctype = resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(ctype.starts_with("application/json"), "content-type {ctype}");
    assert!(resp.headers().get("x-request-id").is_some(), "no x-request-id");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    body
}

/// Resident memory of a process, in KiB (Linux `/proc`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Polls `check` every 25 ms until it returns `Some`, failing after `secs` seconds.
pub async fn eventually<T>(secs: u64, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Splits an SSE body into frames (blank-line separated).
pub fn frames(body: &str) -> Vec<String> {
    body.replace("\r\n", "\n")
        .split("\n\n")
        .filter(|f| !f.trim().is_empty())
        .map(String::from)
        .collect()
}

/// The JSON payloads of the `data:` frames.
pub fn data_events(body: &str) -> Vec<Value> {
    frames(body)
        .iter()
        .filter_map(|f| f.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// A real `redis-server` on a free loopback port, killed on drop.
pub struct Redis {
    pub child: Child,
    pub port: u16,
}

impl Redis {
    pub async fn start() -> Redis {
        Self::start_on(free_port()).await
    }

    /// A server on `port` (to restart one where the gateway expects it).
    pub async fn start_on(port: u16) -> Redis {
        Self::spawn(port, &[]).await
    }

    /// A server on `port` with `extra` arguments, once it answers PING on `port`.
    pub async fn spawn(port: u16, extra: &[&str]) -> Redis {
        let port_s = port.to_string();
        let mut args = vec![
            "--port",
            &port_s,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ];
        args.extend_from_slice(extra);
        let child = Command::new("redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is required (scripts/setup.sh installs it)");
        let r = Redis { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !r.ping() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        r
    }

    /// A server that speaks only TLS (with `cert`) on its port; PING is checked on a plain port
    /// bound to loopback beside it, which the gateway is never told about.
    pub async fn start_tls(cert_file: &Path, key_file: &Path) -> (Redis, u16) {
        let tls_port = free_port().to_string();
        let (c, k) = (cert_file.display().to_string(), key_file.display().to_string());
        let extra = [
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            &c,
            "--tls-key-file",
            &k,
            "--tls-ca-cert-file",
            &c,
            "--tls-auth-clients",
            "no",
        ];
        (Self::spawn(free_port(), &extra).await, tls_port.parse().unwrap())
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Whether the server answers PING.
    pub fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// Sends a raw command line and returns the first reply line.
    pub fn command(&self, line: &str) -> String {
        use std::io::{BufRead, BufReader, Write};
        let mut s = raw_connect(([127, 0, 0, 1], self.port).into());
        s.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        let mut out = String::new();
        BufReader::new(s).read_line(&mut out).unwrap();
        out.trim().to_string()
    }

    /// Stores `value` at `key` as anyone with access to Redis could (RESP, binary-safe).
    pub fn set(&self, key: &str, value: &[u8]) -> String {
        use std::io::{BufRead, BufReader, Write};
        let mut s = raw_connect(([127, 0, 0, 1], self.port).into());
        let mut cmd = format!(
            "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n",
            key.len(),
            value.len()
        )
        .into_bytes();
        cmd.extend_from_slice(value);
        cmd.extend_from_slice(b"\r\n");
        s.write_all(&cmd).unwrap();
        let mut out = String::new();
        BufReader::new(s).read_line(&mut out).unwrap();
        out.trim().to_string()
    }

    /// Freezes the server (SIGSTOP): it keeps its connections and accepts new ones, but never answers.
    pub fn pause(&self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-STOP", &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-CONT", &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // A paused server must run again to die; one already gone makes `kill` fail, which is fine.
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        self.kill();
    }
}

/// The sum of every sample of metric `name` whose labels contain all of `labels` (`k="v"` pieces).
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The newest build of a workspace binary: the release one when it is at least as new as the debug
/// one (`scripts/test.sh` builds it), else the debug one.
pub fn newest_bin(name: &str) -> String {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let (release, debug) = (target.join("release").join(name), target.join("debug").join(name));
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let pick = match (modified(&release), modified(&debug)) {
        (Some(r), Some(d)) if r >= d => release,
        (Some(_), None) => release,
        _ => debug,
    };
    assert!(pick.exists(), "{} is not built", pick.display());
    pick.to_string_lossy().into_owned()
}

/// The simulator as a process of its own (so that a test can kill it), killed on drop.
pub struct SimProcess {
    pub child: Child,
    pub addr: SocketAddr,
}

impl SimProcess {
    /// Starts `dify-sim` on a free port with the default apps and `args`.
    pub async fn start(args: &[&str]) -> SimProcess {
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut cmd = Command::new(newest_bin("dify-sim"));
        cmd.args(["--listen", &addr.to_string()]);
        for app in Setup::default().sim.apps {
            cmd.args(["--app", &format!("{}={}", app.key, app.name)]);
        }
        let child = cmd
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let sim = SimProcess { child, addr };
        let http = client();
        let url = format!("http://{addr}/health");
        eventually_async(10, "the simulator to answer", || async {
            http.get(&url)
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
                .map(|_| ())
        })
        .await;
        sim
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Kills it at once (SIGKILL): open connections break.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls the async `check` every 25 ms until it returns `Some`, failing after `secs` seconds.
pub async fn eventually_async<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
