//! The gateway against what an operator could put there instead, side by side on this machine: the
//! client straight to the upstream (`direct`), nginx as a reverse proxy (Debian's package, installed
//! when missing), the bare Pingora floor (`examples/bare_proxy.rs`) and the gateway with every
//! feature on (JWT, user scoping, observer, metrics, access log, cache), all in front of one fast
//! upstream (the release simulator, no delays), interleaved over two rounds. Prints throughput and
//! proxy CPU per request at concurrency 64 (wrk), added p50/p99 at concurrency 1 (wrk), and added time
//! to first token of a stream, for a proxied completion and a cache hit; the memory each held stream
//! adds (`--held-streams N`, 2,000 by default, measured first on fresh processes); and the ratios to
//! nginx.
//!
//! `--section instructions` counts instructions per request on each main path instead (the gateway
//! under valgrind's callgrind: repeatable on this noisy machine); `--check FILE` fails when a path
//! grows by more than 10% over FILE's counts, `--record FILE` writes them, `--keep DIR` keeps each
//! path's callgrind dump as `DIR/PATH.cg` for `callgrind_annotate`.
//!
//! `cargo build --release --workspace --bins --examples && cargo bench --bench versus_nginx`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Instant;
use support::{Procs, free_port, percentile, wait_http};

/// The upstream answers at once: three events, no delays.
const FAST: [&str; 6] = [
    "--events",
    "3",
    "--event-interval-ms",
    "0",
    "--first-event-delay-ms",
    "0",
];
const COMPLETION: &str = r#"{"inputs": {"topic": "tea"}, "response_mode": "blocking", "user": "u"}"#;
const STREAMING: &str = r#"{"inputs": {"topic": "tea"}, "response_mode": "streaming", "user": "u"}"#;

/// A proxy under test: where it listens, the credential it takes, the pids whose CPU is its own.
struct Path {
    name: &'static str,
    url: String,
    auth: String,
    pids: Vec<u32>,
}

/// nginx as a reverse proxy to `upstream` (keep-alive upstream connections, no buffering, no access
/// log), killed on drop.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    async fn start(upstream: &str) -> Nginx {
        if Command::new("nginx").arg("-v").output().is_err() {
            let ok = Command::new("apt-get")
                .args(["install", "-y", "-q", "nginx-light"])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "nginx is needed: apt-get install nginx");
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        let conf = format!(
            r#"worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 20000;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  keepalive_requests 1000000;
  upstream dify {{ server {upstream}; keepalive 128; keepalive_requests 1000000; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://dify;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 300s;
    }}
  }}
}}
"#
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new("nginx")
            .args(["-p", &d.to_string(), "-c"])
            .arg(&path)
            .args(["-g", "daemon off;"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_http(&format!("http://127.0.0.1:{port}/v1/")).await;
        Nginx {
            child,
            port,
            _dir: dir,
        }
    }

    /// The master and its workers.
    fn pids(&self) -> Vec<u32> {
        let master = self.child.id();
        let mut pids = vec![master];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1));
            if ppid == Some(&master.to_string()) {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }
}

/// The bare Pingora proxy, killed on drop.
struct Bare(Child, u16);

impl Bare {
    async fn start(upstream: &str) -> Bare {
        Self::start_wrapped(upstream, &[]).await
    }

    /// Like [`Bare::start`], the proxy run under `wrapper` (a command and its arguments).
    async fn start_wrapped(upstream: &str, wrapper: &[&str]) -> Bare {
        let bin = format!(
            "{}/target/release/examples/bare_proxy",
            env!("CARGO_MANIFEST_DIR")
        );
        assert!(
            std::path::Path::new(&bin).exists(),
            "{bin} missing: cargo build --release --examples"
        );
        let port = free_port();
        let mut argv: Vec<String> = wrapper.iter().map(|a| a.to_string()).collect();
        argv.extend([bin, format!("127.0.0.1:{port}"), upstream.to_string()]);
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_http(&format!("http://127.0.0.1:{port}/v1/")).await;
        Bare(child, port)
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// utime + stime of `pids`, in seconds.
fn cpu_seconds(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            let f: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .sum::<f64>()
        / 100.0
}

/// A wrk Lua script sending `method` with `body` and `auth`.
fn wrk_script(dir: &std::path::Path, name: &str, method: &str, body: &str, auth: &str) -> String {
    let path = dir.join(format!("{name}.lua"));
    let body_line = if body.is_empty() {
        String::new()
    } else {
        format!("wrk.body = '{body}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n")
    };
    std::fs::write(
        &path,
        format!(
            "wrk.method = \"{method}\"\n{body_line}wrk.headers[\"Authorization\"] = \"{auth}\"\nwrk.headers[\"X-Sim-Events\"] = \"3\"\nwrk.headers[\"X-Sim-Event-Interval-Ms\"] = \"0\"\nwrk.headers[\"X-Sim-First-Event-Delay-Ms\"] = \"0\"\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// What one wrk run measured.
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us_per_req: f64,
    errors: bool,
}

fn wrk_duration(text: &str) -> f64 {
    let t = text.trim();
    let (num, unit) = t.split_at(t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len()));
    let v: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => v / 1000.0,
        "ms" => v,
        "s" => v * 1000.0,
        _ => f64::NAN,
    }
}

/// wrk at `conns` connections for `secs` on `url` with `script`, CPU of `pids` measured around it.
fn wrk(url: &str, script: &str, conns: u32, secs: u32, pids: &[u32]) -> Run {
    let threads = if conns == 1 { 1 } else { 2 };
    let before = cpu_seconds(pids);
    let out = Command::new("wrk")
        .args([
            "-t",
            &threads.to_string(),
            "-c",
            &conns.to_string(),
            "-d",
            &format!("{secs}s"),
            "--latency",
            "-s",
            script,
            url,
        ])
        .output()
        .expect("wrk is needed: apt-get install wrk");
    let cpu = cpu_seconds(pids) - before;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let find = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label).map(str::trim).map(str::to_string))
            .unwrap_or_default()
    };
    let rps: f64 = find("Requests/sec:").parse().unwrap_or(0.0);
    let total = rps * f64::from(secs);
    Run {
        rps,
        p50_ms: wrk_duration(&find("50%")),
        p99_ms: wrk_duration(&find("99%")),
        cpu_us_per_req: if total > 0.0 { cpu * 1e6 / total } else { f64::NAN },
        errors: text.contains("Non-2xx") || text.contains("Socket errors"),
    }
}

/// Sequential streams (5 events, no delays): time to the first `message` event, p50 and p99 in ms.
async fn ttft(url: &str, auth: &str, n: usize) -> (f64, f64) {
    let http = reqwest::Client::builder().tcp_nodelay(true).build().unwrap();
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let mut r = http
            .post(url)
            .header("authorization", auth)
            .header("content-type", "application/json")
            .header("x-sim-events", "5")
            .header("x-sim-event-interval-ms", "0")
            .header("x-sim-first-event-delay-ms", "0")
            .body(STREAMING)
            .send()
            .await
            .unwrap();
        let mut first = None;
        while let Some(chunk) = r.chunk().await.unwrap() {
            if first.is_none() && String::from_utf8_lossy(&chunk).contains("\"event\":\"message\"") {
                first = Some(t.elapsed());
            }
        }
        ms.push(first.unwrap_or_else(|| t.elapsed()).as_secs_f64() * 1000.0);
    }
    (percentile(&mut ms, 50.0), percentile(&mut ms, 99.0))
}

/// Resident memory of `pids`, in KiB.
fn rss_kib(pids: &[u32]) -> f64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .sum()
}

/// Opens `n` streams through `url` (each held open by Dify after its first event), and returns
/// what each added to the resident memory of `pids`, in KiB. The streams close when it returns.
async fn held_stream_kib(url: &str, auth: &str, pids: &[u32], n: usize) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = url.trim_start_matches("http://").to_string();
    let request = format!(
        "POST /v1/completion-messages HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nX-Sim-Events: 1000\r\nX-Sim-First-Event-Delay-Ms: 0\r\nX-Sim-Event-Interval-Ms: 600000\r\nX-Sim-Ping-Interval-Ms: 0\r\nContent-Length: {}\r\n\r\n{STREAMING}",
        STREAMING.len()
    );
    let before = rss_kib(pids);
    let mut held = Vec::with_capacity(n);
    for batch in 0..n.div_ceil(100) {
        let opened = (batch * 100..n.min(batch * 100 + 100)).map(|_| async {
            let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
            s.write_all(request.as_bytes()).await.unwrap();
            // Until the first event has come through.
            let mut seen = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&seen).contains("data: ") {
                let got = s.read(&mut buf).await.unwrap();
                assert!(got > 0, "a held stream closed");
                seen.extend_from_slice(&buf[..got]);
            }
            s
        });
        held.extend(futures_util::future::join_all(opened).await);
    }
    let after = rss_kib(pids);
    drop(held);
    (after - before) / n as f64
}

/// Figures of one path, keyed by figure name, one value per round.
type Figures = BTreeMap<(&'static str, &'static str), Vec<f64>>;

async fn side_by_side() {
    let secs: u32 = support::arg("--secs").and_then(|s| s.parse().ok()).unwrap_or(5);
    let p = Procs::start_with(&FAST).await;
    let upstream = p.sim_url.trim_start_matches("http://").to_string();
    let nginx = Nginx::start(&upstream).await;
    let bare = Bare::start(&upstream).await;
    let paths = [
        Path {
            name: "direct",
            url: p.sim_url.clone(),
            auth: p.direct_auth.clone(),
            pids: vec![],
        },
        Path {
            name: "nginx",
            url: format!("http://127.0.0.1:{}", nginx.port),
            auth: p.direct_auth.clone(),
            pids: nginx.pids(),
        },
        Path {
            name: "bare Pingora",
            url: format!("http://127.0.0.1:{}", bare.1),
            auth: p.direct_auth.clone(),
            pids: vec![bare.0.id()],
        },
        Path {
            name: "gateway",
            url: p.gw_url.clone(),
            auth: p.gw_auth.clone(),
            pids: vec![p.gw_pid()],
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut figures: Figures = BTreeMap::new();
    let mut put = |path: &'static str, figure: &'static str, v: f64| {
        figures.entry((path, figure)).or_default().push(v);
    };
    // Memory first, on fresh processes: what a held stream costs before any load has grown them.
    let streams: usize = support::arg("--held-streams")
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    for path in paths.iter().filter(|p| !p.pids.is_empty()) {
        let kib = held_stream_kib(&path.url, &path.auth, &path.pids, streams).await;
        put(path.name, "memory KiB per held stream", kib);
        // Let the closed streams go before the next path is measured.
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    }
    for round in 0..2 {
        // Rotate the order each round (drift and position effects cancel).
        let order: Vec<&Path> = (0..paths.len())
            .map(|i| &paths[(i + round) % paths.len()])
            .collect();
        for path in &order {
            let post = wrk_script(
                dir.path(),
                &format!("post-{}", path.name.replace(' ', "_")),
                "POST",
                COMPLETION,
                &path.auth,
            );
            let get = wrk_script(
                dir.path(),
                &format!("get-{}", path.name.replace(' ', "_")),
                "GET",
                "",
                &path.auth,
            );
            let completion = format!("{}/v1/completion-messages", path.url);
            let parameters = format!("{}/v1/parameters", path.url);
            // Warm-up: connections, the gateway's cache and token cache.
            wrk(&parameters, &get, 8, 1, &path.pids);
            wrk(&completion, &post, 8, 1, &path.pids);
            for (kind, url, script) in [
                ("completion", &completion, &post),
                ("cache hit", &parameters, &get),
            ] {
                let load = wrk(url, script, 64, secs, &path.pids);
                let one = wrk(url, script, 1, secs, &path.pids);
                assert!(
                    !load.errors && !one.errors,
                    "{} {kind}: errors under load",
                    path.name
                );
                let (rps, cpu, p50, p99) = match kind {
                    "completion" => (
                        "completion rps c=64",
                        "completion CPU µs/req",
                        "completion p50 ms c=1",
                        "completion p99 ms c=1",
                    ),
                    _ => (
                        "cache hit rps c=64",
                        "cache hit CPU µs/req",
                        "cache hit p50 ms c=1",
                        "cache hit p99 ms c=1",
                    ),
                };
                put(path.name, rps, load.rps);
                put(path.name, cpu, load.cpu_us_per_req);
                put(path.name, p50, one.p50_ms);
                put(path.name, p99, one.p99_ms);
            }
            let (t50, t99) = ttft(&format!("{}/v1/completion-messages", path.url), &path.auth, 300).await;
            put(path.name, "stream TTFT p50 ms", t50);
            put(path.name, "stream TTFT p99 ms", t99);
        }
    }
    report(&figures);
}

/// Prints each figure per path (mean of the rounds), the added latency over direct and the
/// gateway's ratio to nginx.
fn report(f: &Figures) {
    let mean = |path: &'static str, figure: &'static str| {
        f.get(&(path, figure))
            .map(|v| v.iter().sum::<f64>() / v.len() as f64)
            .unwrap_or(f64::NAN)
    };
    println!("| figure | direct | nginx | bare Pingora | gateway | gateway / nginx |");
    println!("|---|---|---|---|---|---|");
    let mut names: Vec<&str> = f.keys().map(|(_, fig)| *fig).collect();
    names.sort();
    names.dedup();
    for fig in names {
        let v: Vec<f64> = ["direct", "nginx", "bare Pingora", "gateway"]
            .iter()
            .map(|p| mean(p, fig))
            .collect();
        // Latencies: what each proxy adds over direct; the ratio compares the added parts.
        let added = fig.contains(" ms");
        let shown: Vec<f64> = if added {
            v.iter().map(|x| x - v[0]).collect()
        } else {
            v.clone()
        };
        let ratio = shown[3] / shown[1];
        let cell = |i: usize| {
            if i == 0 && (added || fig.contains("CPU") || fig.contains("memory")) {
                if added {
                    format!("{:.3}", v[0])
                } else {
                    "–".to_string()
                }
            } else if added {
                format!("+{:.3}", shown[i])
            } else {
                format!("{:.1}", shown[i])
            }
        };
        println!(
            "| {fig} | {} | {} | {} | {} | {ratio:.2}× |",
            cell(0),
            cell(1),
            cell(2),
            cell(3)
        );
    }
}

/// The paths whose instructions per request are counted.
const INSTRUCTION_PATHS: [(&str, &str, &str); 3] = [
    ("cache_hit", "GET", "/v1/parameters"),
    ("completion_blocking", "POST", COMPLETION),
    ("completion_streaming", "POST", STREAMING),
];

/// Sends `n` requests of `kind` to `url`, one after another.
async fn send_n(http: &reqwest::Client, url: &str, auth: &str, kind: (&str, &str, &str), n: usize) {
    for _ in 0..n {
        let req = match kind.1 {
            "GET" => http.get(format!("{url}{}", kind.2)),
            _ => http
                .post(format!("{url}/v1/completion-messages"))
                .header("content-type", "application/json")
                .body(kind.2.to_string()),
        };
        let r = req.header("authorization", auth).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", kind.0);
        r.bytes().await.unwrap();
    }
}

fn callgrind_control(args: &[&str], pid: u32) {
    let ok = Command::new("callgrind_control")
        .args(args)
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "callgrind_control {args:?} failed");
}

/// Where instructions are counted: a process under callgrind and how to call it.
struct Counted<'a> {
    pid: u32,
    url: &'a str,
    auth: &'a str,
    /// Callgrind's dump folder.
    dir: &'a std::path::Path,
    /// The name its kept dumps start with (`--keep`).
    name: &'a str,
}

/// Instructions per request of each of `paths` through `target`.
async fn count(
    target: &Counted<'_>,
    paths: &[(&'static str, &str, &str)],
    n: usize,
) -> BTreeMap<String, u64> {
    let http = reqwest::Client::new();
    let mut counts = BTreeMap::new();
    let pid = target.pid;
    for &kind in paths {
        // Warm: the paths' code translated, the caches filled, connections open.
        send_n(&http, target.url, target.auth, kind, 20).await;
        callgrind_control(&["-i", "on"], pid);
        send_n(&http, target.url, target.auth, kind, 20).await;
        callgrind_control(&["-z"], pid);
        send_n(&http, target.url, target.auth, kind, n).await;
        callgrind_control(&["-d"], pid);
        callgrind_control(&["-i", "off"], pid);
        // The newest dump holds this path's counts.
        let newest = std::fs::read_dir(target.dir)
            .unwrap()
            .flatten()
            .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
            .unwrap()
            .path();
        let text = std::fs::read_to_string(&newest).unwrap();
        let total: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("summary:").or_else(|| l.strip_prefix("totals:")))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap();
        counts.insert(kind.0.to_string(), total / n as u64);
        match support::arg("--keep") {
            // `--keep DIR`: the dump stays, for `callgrind_annotate DIR/NAME.PATH.cg`.
            Some(keep) => std::fs::copy(&newest, format!("{keep}/{}.{}.cg", target.name, kind.0)).map(drop),
            None => Ok(()),
        }
        .unwrap();
        std::fs::remove_file(newest).unwrap();
    }
    counts
}

/// Instructions per request of each main path, the gateway run under callgrind; and of the
/// proxied paths through the bare Pingora floor, for comparison.
async fn instructions() -> (BTreeMap<String, u64>, BTreeMap<String, u64>) {
    let n: usize = support::arg("--requests")
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let out = format!("--callgrind-out-file={}/cg.%p", dir.path().display());
    let wrapper = ["valgrind", "--tool=callgrind", "--instr-atstart=no", &out];
    if Command::new("valgrind").arg("--version").output().is_err() {
        panic!("valgrind is needed: apt-get install valgrind");
    }
    let p = Procs::start_wrapped(&FAST, &wrapper).await;
    let gateway = Counted {
        pid: p.gw_pid(),
        url: &p.gw_url,
        auth: &p.gw_auth,
        dir: dir.path(),
        name: "gateway",
    };
    let counts = count(&gateway, &INSTRUCTION_PATHS, n).await;
    let upstream = p.sim_url.trim_start_matches("http://").to_string();
    let bare = Bare::start_wrapped(&upstream, &wrapper).await;
    let url = format!("http://127.0.0.1:{}", bare.1);
    let floor = Counted {
        pid: bare.0.id(),
        url: &url,
        auth: &p.direct_auth,
        dir: dir.path(),
        name: "bare",
    };
    let floor_counts = count(&floor, &INSTRUCTION_PATHS, n).await;
    drop((bare, p));
    (counts, floor_counts)
}

fn read_baseline(path: &str) -> BTreeMap<String, u64> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((f.next()?.to_string(), f.next()?.parse().ok()?))
        })
        .collect()
}

#[tokio::main]
async fn main() {
    if support::arg("--section").as_deref() != Some("instructions") {
        side_by_side().await;
        return;
    }
    let t = Instant::now();
    let (counts, floor) = instructions().await;
    println!("| path | gateway | bare Pingora | gateway / bare |");
    println!("|---|---|---|---|");
    for (k, v) in &counts {
        let f = floor.get(k).copied().unwrap_or(0);
        println!("| {k} | {v} | {f} | {:.2} |", *v as f64 / f.max(1) as f64);
    }
    println!("(counted in {:?})", t.elapsed());
    if let Some(file) = support::arg("--record") {
        let mut text = String::from(
            "# Instructions per request of the release gateway, counted by\n# `cargo bench --bench versus_nginx -- --section instructions --record benches/instructions.baseline`.\n# `.ci/run` fails when a path grows by more than 10%.\n",
        );
        for (k, v) in &counts {
            text.push_str(&format!("{k} {v}\n"));
        }
        std::fs::write(&file, text).unwrap();
    }
    if let Some(file) = support::arg("--check") {
        let baseline = read_baseline(&file);
        let mut failed = Vec::new();
        for (k, base) in &baseline {
            let now = counts.get(k).copied().unwrap_or(u64::MAX);
            let change = now as f64 / *base as f64 - 1.0;
            println!("{k}: {now} against {base} ({:+.1}%)", change * 100.0);
            if change > 0.10 {
                failed.push(k.clone());
            }
        }
        if !failed.is_empty() {
            eprintln!("instructions per request grew by more than 10% on: {failed:?}");
            std::process::exit(1);
        }
    }
}
