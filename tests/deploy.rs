//! The deploy files are proven, not only shipped: every YAML file under `deploy/` parses; the
//! Kubernetes manifests keep their promises (probes on the admin port, a drain that fits the
//! grace period, the admin port on no public Service and closed by the NetworkPolicy, a headless
//! Service of Dify's API pods as the upstream, PDB and HPA); the compose overlay points Dify's
//! file links at the gateway and loads our alerts and dashboard; and every config `deploy/`
//! ships passes `dify-gateway check` with the variables its README names.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::bound;
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every `.yaml`/`.yml` file under `dir`, following the overlay's symlinks.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(yaml_files(&path));
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The documents of a YAML file.
fn docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

/// The Kubernetes objects of `deploy/k8s`, by kind.
fn k8s(kind: &str) -> Vec<Value> {
    yaml_files(Path::new("deploy/k8s"))
        .iter()
        .flat_map(|p| docs(p))
        .filter(|d| d["kind"] == kind)
        .collect()
}

fn seconds(text: &str) -> u64 {
    text.trim_end_matches('s').parse().unwrap()
}

#[test]
fn every_yaml_file_parses() {
    let _bound = bound(30);
    let files = yaml_files(Path::new("deploy"));
    assert!(files.len() >= 14, "{files:?}");
    for f in files.iter().chain(yaml_files(Path::new("dashboards")).iter()) {
        assert!(!docs(f).is_empty(), "{} is empty", f.display());
    }
}

#[test]
fn the_deployment_drains_within_its_grace_and_probes_the_admin_port() {
    let _bound = bound(30);
    let [d] = &k8s("Deployment")[..] else {
        panic!("one Deployment")
    };
    let pod = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(c[probe]["httpGet"]["port"], "admin");
    }
    let admin = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "admin")
        .unwrap();
    assert_eq!(admin["containerPort"], 9090);
    let pre_stop = c["lifecycle"]["preStop"]["exec"]["command"].as_array().unwrap();
    let sleep: u64 = pre_stop.last().unwrap().as_str().unwrap().parse().unwrap();
    // The grace the config gives streams, as the ConfigMap ships it.
    let [cm] = &k8s("ConfigMap")[..] else {
        panic!("one ConfigMap")
    };
    let toml = cm["data"]["gateway.toml"].as_str().unwrap();
    assert_eq!(
        toml,
        std::fs::read_to_string("deploy/k8s/gateway.toml").unwrap(),
        "the ConfigMap and gateway.toml differ"
    );
    let grace = toml
        .lines()
        .find_map(|l| l.strip_prefix("grace_period = \""))
        .unwrap();
    let grace = seconds(grace.split('"').next().unwrap());
    let termination = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        // After SIGTERM: grace_period, then 3 s to stop open generations at Dify, then up to 5 s
        // for the runtimes to end.
        termination >= sleep + grace + 8,
        "{termination} < {sleep} + {grace} + 8: streams would be killed on rollout"
    );
    assert!(toml.contains("admin_listen = \"0.0.0.0:9090\""));
}

#[test]
fn the_admin_port_is_on_no_public_service_and_closed_by_policy() {
    let _bound = bound(30);
    let services = k8s("Service");
    let public = services
        .iter()
        .find(|s| s["metadata"]["name"] == "dify-gateway")
        .unwrap();
    for p in public["spec"]["ports"].as_array().unwrap() {
        assert!(
            p["targetPort"] != "admin" && p["targetPort"] != 9090,
            "admin on the public Service: {p}"
        );
    }
    for s in services
        .iter()
        .filter(|s| s["spec"]["ports"].to_string().contains("admin"))
    {
        assert_eq!(
            s["spec"]["type"].as_str().unwrap_or("ClusterIP"),
            "ClusterIP",
            "{s}"
        );
    }
    let [np] = &k8s("NetworkPolicy")[..] else {
        panic!("one NetworkPolicy")
    };
    for rule in np["spec"]["ingress"].as_array().unwrap() {
        if rule["ports"].to_string().contains("9090") {
            assert!(
                rule["from"].as_array().is_some_and(|f| !f.is_empty()),
                "9090 open to all: {rule}"
            );
        }
    }
    // The upstream is a headless Service of Dify's API pods, re-resolved by the gateway.
    let headless = services
        .iter()
        .find(|s| s["spec"]["clusterIP"] == "None")
        .expect("a headless Service");
    let name = headless["metadata"]["name"].as_str().unwrap();
    let toml = std::fs::read_to_string("deploy/k8s/gateway.toml").unwrap();
    assert!(
        toml.contains(&format!("http://{name}:5001")),
        "the upstream is not {name}"
    );
    assert!(toml.contains("resolve_interval"));
    assert_eq!(k8s("PodDisruptionBudget").len(), 1);
    let [hpa] = &k8s("HorizontalPodAutoscaler")[..] else {
        panic!("one HPA")
    };
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "dify-gateway");
    let [secret] = &k8s("Secret")[..] else {
        panic!("one example Secret")
    };
    assert!(secret["stringData"]["GW_STORE_KEY"].is_string());
}

#[test]
fn the_compose_overlay_points_dify_at_the_gateway_and_loads_alerts_and_dashboard() {
    let _bound = bound(30);
    let [compose] = &docs(Path::new("deploy/compose/compose.yaml"))[..] else {
        panic!("one document")
    };
    let services = compose["services"].as_object().unwrap();
    for dify in ["api", "worker"] {
        let files_url = services[dify]["environment"]["FILES_URL"].as_str().unwrap();
        assert!(files_url.contains("GATEWAY_PUBLIC_URL"), "{dify}: {files_url}");
    }
    let mounts = compose.to_string();
    for file in [
        "gateway/gateway.toml",
        "gateway/dashboards/alerts.yml",
        "gateway/dashboards/gateway-overview.json",
    ] {
        assert!(mounts.contains(file), "{file} is not mounted");
        let local = Path::new("deploy/compose").join(file.trim_start_matches("gateway/"));
        assert!(local.exists(), "{} is missing", local.display());
    }
    let gateway = &services["gateway"];
    assert!(
        !gateway["ports"].to_string().contains("9090"),
        "the admin port is published"
    );
    let [prom] = &docs(Path::new("deploy/compose/prometheus/prometheus.yml"))[..] else {
        panic!()
    };
    assert!(prom["rule_files"].to_string().contains("/etc/prometheus/rules"));
    // The alerts Prometheus loads are ours, byte for byte.
    assert_eq!(
        std::fs::read("deploy/compose/dashboards/alerts.yml").unwrap(),
        std::fs::read("dashboards/alerts.yml").unwrap()
    );
}

/// `dify-gateway check` on `config` with exactly `env` (and PATH).
fn check(config: &str, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dify-gateway"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd.args(["check", "--config", config]).envs(env.iter().copied());
    cmd.output().unwrap()
}

const STORE_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

#[test]
fn every_shipped_config_passes_check() {
    let _bound = bound(60);
    let common = [
        ("GW_JWT_SECRET", "a-deployment-secret-of-32-bytes-or-more"),
        ("GW_ADMIN_TOKEN", "an-admin-token-0123456789"),
        ("GW_REDIS_HMAC_KEY", "a-redis-hmac-key-of-32-bytes-or-more"),
        ("GW_STORE_KEY", STORE_KEY),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        common.iter().chain(extra).copied().collect()
    };
    let configs = [
        (
            "deploy/gateway.toml",
            with(&[
                ("DIFY_URL", "http://dify-api:5001"),
                ("DIFY_KEY_ACME_WRITER", "app-key"),
            ]),
        ),
        (
            "deploy/compose/gateway.toml",
            with(&[("GW_REDIS_URL", "redis://:difyai123456@redis:6379/5")]),
        ),
        (
            "deploy/k8s/gateway.toml",
            with(&[
                ("GW_REDIS_URL", "redis://:redis-password@redis:6379/5"),
                (
                    "GW_STORE_URL",
                    "postgres://dify_gateway:db-password@postgresql:5432/dify_gateway",
                ),
            ]),
        ),
        (
            "config/gateway.toml",
            with(&[("GW_JWT_SECRET", "a-deployment-secret-of-32-bytes-or-more")]),
        ),
    ];
    for (config, env) in &configs {
        let out = check(config, env);
        assert!(
            out.status.success(),
            "{config}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // With the example Secret's placeholders, the Kubernetes config refuses to start.
    let [secret] = &k8s("Secret")[..] else { panic!() };
    let data = secret["stringData"].as_object().unwrap();
    let env: Vec<(&str, &str)> = data
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
        .collect();
    let out = check("deploy/k8s/gateway.toml", &env);
    assert_eq!(
        out.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
