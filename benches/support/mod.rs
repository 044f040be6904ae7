//! Shared by the benchmarks: starts the release simulator and gateway on loopback with OS-assigned
//! ports (the gateway with its shipped defaults: access log on at `info`), mints a tenant token,
//! reads its metrics, samples its RSS, and computes percentiles.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub const KEY: &str = "app-bench-key";
const SECRET: &str = "benchmark-secret-0123456789abcdef0123";

/// The simulator and the gateway under test; both killed on drop.
pub struct Procs {
    sim: Child,
    /// More simulators: the other Dify replicas of a pool.
    more: Vec<Child>,
    gw: Child,
    _dir: tempfile::TempDir,
    pub sim_url: String,
    /// Every simulator's URL (the pool's replicas).
    pub sim_urls: Vec<String>,
    pub gw_url: String,
    pub admin_url: String,
    pub direct_auth: String,
    pub gw_auth: String,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn release_bin(name: &str) -> String {
    let path = format!("{}/target/release/{name}", env!("CARGO_MANIFEST_DIR"));
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} missing: run `cargo build --release --bins` first"
    );
    path
}

pub async fn wait_http(url: &str) {
    let http = reqwest::Client::new();
    // Long enough for a gateway started under valgrind.
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{url} never answered");
}

impl Procs {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts both, passing `sim_args` to the simulator.
    pub async fn start_with(sim_args: &[&str]) -> Self {
        Self::start_full(sim_args, "").await
    }

    /// Starts both, passing `sim_args` to the simulator and adding `telemetry` lines to the gateway's
    /// `[telemetry]` section.
    pub async fn start_full(sim_args: &[&str], telemetry: &str) -> Self {
        Self::start_extra(sim_args, telemetry, "").await
    }

    /// Like [`Procs::start_full`], appending `extra` (whole sections) to the gateway's config.
    pub async fn start_extra(sim_args: &[&str], telemetry: &str, extra: &str) -> Self {
        Self::start_pool(sim_args, telemetry, extra, 1).await
    }

    /// Like [`Procs::start_extra`], with `replicas` simulators as the gateway's pool
    /// (`upstream.urls` when more than one).
    pub async fn start_pool(sim_args: &[&str], telemetry: &str, extra: &str, replicas: usize) -> Self {
        Self::start_inner(sim_args, telemetry, extra, replicas, &[]).await
    }

    /// Like [`Procs::start_with`], running the gateway under `wrapper` (a command and its arguments,
    /// e.g. valgrind's).
    pub async fn start_wrapped(sim_args: &[&str], wrapper: &[&str]) -> Self {
        Self::start_inner(sim_args, "", "", 1, wrapper).await
    }

    async fn start_inner(
        sim_args: &[&str],
        telemetry: &str,
        extra: &str,
        replicas: usize,
        wrapper: &[&str],
    ) -> Self {
        let _ = rlimit::increase_nofile_limit(u64::MAX);
        let mut sims = Vec::new();
        let mut urls = Vec::new();
        for _ in 0..replicas.max(1) {
            let sim_port = free_port();
            let sim = Command::new(release_bin("dify-sim"))
                .args([
                    "--listen",
                    &format!("127.0.0.1:{sim_port}"),
                    "--app",
                    &format!("{KEY}=Bench"),
                ])
                .args(sim_args)
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            let url = format!("http://127.0.0.1:{sim_port}");
            wait_http(&format!("{url}/v1/")).await;
            sims.push(sim);
            urls.push(url);
        }
        let sim_url = urls[0].clone();
        let upstream = if urls.len() == 1 {
            format!("url = \"{sim_url}\"")
        } else {
            let quoted: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
            format!("urls = [{}]", quoted.join(", "))
        };
        let sim = sims.remove(0);
        let dir = tempfile::tempdir().unwrap();
        let (listen, admin) = (free_port(), free_port());
        let cfg = format!(
            r#"[server]
listen = "127.0.0.1:{listen}"
admin_listen = "127.0.0.1:{admin}"
grace_period = "1s"
pid_file = "{d}/gw.pid"
upgrade_sock = "{d}/gw.sock"
[upstream]
{upstream}
[[auth.keys]]
id = "bench"
algorithm = "HS256"
secret = "{SECRET}"
[telemetry]
{telemetry}
[[tenants]]
id = "bench"
[[tenants.apps]]
name = "writer"
api_key = "{KEY}"
{extra}
"#,
            d = dir.path().display()
        );
        let path = dir.path().join("gw.toml");
        std::fs::write(&path, cfg).unwrap();
        let gateway = release_bin("dify-gateway");
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&gateway);
                c
            }
            None => Command::new(&gateway),
        };
        let gw = cmd
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let admin_url = format!("http://127.0.0.1:{admin}");
        wait_http(&format!("{admin_url}/readyz")).await;
        let claims = serde_json::json!({"tenant": "bench", "exp": 4_102_444_800u64});
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        Procs {
            sim,
            more: sims,
            sim_urls: urls.clone(),
            gw,
            _dir: dir,
            sim_url,
            gw_url: format!("http://127.0.0.1:{listen}"),
            admin_url,
            direct_auth: format!("Bearer {KEY}"),
            gw_auth: format!("Bearer {token}"),
        }
    }

    pub fn gw_pid(&self) -> u32 {
        self.gw.id()
    }

    pub fn sim_pid(&self) -> u32 {
        self.sim.id()
    }

    /// The gateway's `/metrics` text.
    pub async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.admin_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The sum of the samples of `name` whose labels contain every piece of `labels`.
    pub async fn metric_sum(&self, name: &str, labels: &[&str]) -> f64 {
        self.metrics()
            .await
            .lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .filter(|l| labels.iter().all(|want| l.contains(want)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Samples the gateway's RSS every 100 ms until `stop`; returns the peak in KiB.
    pub fn rss_sampler(&self, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
        let pid = self.gw.id();
        tokio::spawn(async move {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            peak
        })
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        let _ = self.gw.kill();
        let _ = self.sim.kill();
        for s in &mut self.more {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = self.gw.wait();
        let _ = self.sim.wait();
    }
}

/// Resident memory of `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .map(str::to_string)
        })
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The `p`th percentile (nearest rank) of `v`, sorting it; 0 when empty.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// The value after `--name` on the command line.
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}
