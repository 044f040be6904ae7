//! A real Redis Cluster on loopback for tests: three `redis-server --cluster-enabled yes` joined
//! with `redis-cli --cluster create` (no replicas), ready once every node reports the cluster ok.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::{Redis, free_port};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The cluster; its nodes die with it.
pub struct RedisCluster {
    pub nodes: Vec<Redis>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    pub async fn start(n: usize) -> RedisCluster {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for _ in 0..n {
            let port = free_port();
            let conf = dir
                .path()
                .join(format!("nodes-{port}.conf"))
                .display()
                .to_string();
            // The bus port defaults to port + 10000: past 65535 for most OS-assigned ports.
            let bus = free_port().to_string();
            let d = dir.path().display().to_string();
            let args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &conf,
                "--cluster-port",
                &bus,
                "--dir",
                &d,
            ];
            nodes.push(Redis::spawn(port, &args).await);
        }
        let addrs: Vec<String> = nodes.iter().map(|r| format!("127.0.0.1:{}", r.port)).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli is required (scripts/setup.sh installs it)");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let c = RedisCluster { nodes, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !c.nodes.iter().all(|r| c.info(r).contains("cluster_state:ok")) {
            assert!(Instant::now() < deadline, "the cluster did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        c
    }

    /// `CLUSTER INFO` of one node.
    fn info(&self, r: &Redis) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &r.port.to_string(), "cluster", "info"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The TOML list of the nodes' URLs.
    pub fn urls_toml(&self) -> String {
        let urls: Vec<String> = self.nodes.iter().map(|r| format!("\"{}\"", r.url())).collect();
        format!("[{}]", urls.join(", "))
    }

    /// The node serving `key`'s slot (the others answer MOVED).
    pub fn owner_of(&self, key: &str) -> usize {
        self.nodes
            .iter()
            .position(|r| !r.command(&format!("EXISTS {key}")).starts_with("-MOVED"))
            .unwrap()
    }

    /// How many keys match `pattern` over every node.
    pub fn count(&self, pattern: &str) -> usize {
        self.nodes
            .iter()
            .filter(|r| r.ping())
            .map(|r| {
                let out = Command::new("redis-cli")
                    .args(["-p", &r.port.to_string(), "--scan", "--pattern", pattern])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).lines().count()
            })
            .sum()
    }
}
