//! Store test parts: a private PostgreSQL cluster (initdb in a temp dir, run as the `postgres` user
//! on an OS-assigned port, stopped on drop), the `[store]`/`[admin]` config of a test gateway, and a
//! small admin API client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::{Gateway, client, free_port};
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `store.encryption_key` of the tests: base64 of `0123456789abcdef0123456789abcdef`.
pub const STORE_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// `admin.token` of the tests.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// `[store]` on `url` and `[admin]` with the test token (to append to a test config).
pub fn store_toml(url: &str) -> String {
    format!(
        "\n[store]\nurl = \"{url}\"\nencryption_key = \"{STORE_KEY}\"\n\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n"
    )
}

/// An SQLite store URL in `dir`.
pub fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("gateway.db").display())
}

/// The newest PostgreSQL server programs installed (Debian: /usr/lib/postgresql/N/bin).
fn pg_bin(program: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server packages are not installed (scripts/setup.sh installs them)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no initdb under /usr/lib/postgresql")
        .join(program)
}

/// Uid and gid of the `postgres` user when running as root (PostgreSQL refuses to run as root).
fn postgres_ids() -> Option<(u32, u32)> {
    let is_root = Command::new("id").arg("-u").output().ok()?.stdout == b"0\n";
    if !is_root {
        return None;
    }
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

fn as_postgres(cmd: &mut Command) -> &mut Command {
    if let Some((uid, gid)) = postgres_ids() {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// A private PostgreSQL cluster.
pub struct Postgres {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Postgres {
    /// initdb in a fresh temp dir, then the server on a free loopback port; returns once it answers.
    pub fn start() -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        if let Some((uid, gid)) = postgres_ids() {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
        }
        let status = as_postgres(Command::new(pg_bin("initdb")).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "-D",
        ]))
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
        assert!(status.success(), "initdb failed");
        let mut pg = Postgres {
            child: None,
            port: free_port(),
            dir,
        };
        pg.run();
        pg
    }

    /// Starts the server on the cluster (again) and waits until it accepts connections.
    pub fn run(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("postgres.log")).unwrap();
        let child = as_postgres(Command::new(pg_bin("postgres")).arg("-D").arg(self.data_dir()))
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", self.dir.path().display()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(pg_bin("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres"])
                .stdout(Stdio::null())
                .status()
                .unwrap()
                .success();
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Stops the server (fast shutdown) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-INT", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `sql` with psql.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(pg_bin("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-At",
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-QUIT", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }
}

/// A client of one gateway's admin API with the test token.
pub struct Admin {
    base: String,
    http: reqwest::Client,
}

impl Admin {
    pub fn of(gw: &Gateway) -> Admin {
        Admin {
            base: format!("http://{}", gw.admin),
            http: client(),
        }
    }

    /// `method` on `path` with `body`: the status and the JSON answer (`Null` when empty).
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
            .header("x-actor", "tester");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("PUT", path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call("PATCH", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call("DELETE", path, None).await
    }

    /// Creates tenant `id` with app `writer` on `dify_key` and a gateway API key for it; the key.
    pub async fn onboard(&self, id: &str, dify_key: &str) -> String {
        assert_eq!(
            self.post("/admin/tenants", serde_json::json!({"id": id})).await.0,
            201
        );
        let (s, _) = self
            .put(
                &format!("/admin/tenants/{id}/apps/writer"),
                serde_json::json!({"api_key": dify_key}),
            )
            .await;
        assert_eq!(s, 201);
        let (s, k) = self
            .post(
                &format!("/admin/tenants/{id}/api-keys"),
                serde_json::json!({"app": "writer"}),
            )
            .await;
        assert_eq!(s, 201, "{k}");
        k["key"].as_str().unwrap().to_string()
    }
}
