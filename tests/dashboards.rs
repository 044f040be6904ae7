//! The shipped dashboards and alert rules match the gateway: every metric they name is exposed on
//! `/metrics` after a run that exercises every family, the rules pass `promtool check rules`, and the
//! exposition passes `promtool check metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::process::{Command, Stdio};

/// A tenant with a monthly budget (the limit panels and the budget alert select its series).
const BUDGETED: &str = "\n[[tenants]]\nid = \"budgeted\"\n[tenants.limits]\ncost_per_month = 10.0\n[[tenants.apps]]\nname = \"w\"\napi_key = \"app-budget-key\"\n";

fn promtool() -> Command {
    let found = Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "promtool is required (scripts/setup.sh unpacks it)");
    Command::new("promtool")
}

/// Metric names (`dify_gateway_*`) in `text`, histogram suffixes removed.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("dify_gateway_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .fold(name, |n, s| n.strip_suffix(s).unwrap_or(n));
        out.insert(base.to_string());
        rest = &tail[end..];
    }
    out
}

fn dashboard_exprs() -> String {
    let mut all = String::new();
    for entry in std::fs::read_dir("dashboards").unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if path.extension().is_some_and(|e| e == "json") {
            let v: Value = serde_json::from_str(&text).unwrap();
            for p in v["panels"].as_array().unwrap() {
                // Rows have no targets.
                for t in p["targets"].as_array().into_iter().flatten() {
                    all.push_str(t["expr"].as_str().unwrap());
                    all.push('\n');
                }
            }
        } else {
            all.push_str(&text);
        }
    }
    all
}

/// Drives traffic that makes every metric family show up.
async fn exercise(env: &Env) {
    let tok = token("acme", None);
    let post = |body: Value| {
        env.http
            .post(env.url("/v1/completion-messages"))
            .header("authorization", bearer(&tok))
            .json(&body)
    };
    post(json!({"inputs": {"topic": "t"}, "user": "u"}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let s = post(json!({"inputs": {"topic": "t"}, "response_mode": "streaming", "user": "u"}));
    s.send().await.unwrap().text().await.unwrap();
    // A dropped stream (stops), a silent one (upstream timeout), a bad token, a cached read.
    let s = post(json!({"inputs": {"topic": "t"}, "response_mode": "streaming", "user": "u"}));
    let mut body = s
        .header("x-sim-events", "50")
        .header("x-sim-event-interval-ms", "50")
        .send()
        .await
        .unwrap()
        .bytes_stream();
    body.next().await.unwrap().unwrap();
    drop(body);
    let s = post(json!({"inputs": {"topic": "t"}, "response_mode": "streaming", "user": "u"}));
    s.header("x-sim-first-event-delay-ms", "1500")
        .header("x-sim-ping-interval-ms", "0")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .ok();
    env.http
        .get(env.url("/v1/info"))
        .header("authorization", "Bearer nope")
        .send()
        .await
        .unwrap();
    env.http
        .get(env.url("/v1/parameters"))
        .header("authorization", bearer(&tok))
        .send()
        .await
        .unwrap();
    env.gw
        .metrics_contain("dify_gateway_stops_total{cause=\"disconnect\"} 1")
        .await;
    env.gw.metrics_contain("dify_gateway_redis_errors_total{").await;
}

#[tokio::test]
async fn dashboards_and_rules_name_only_exposed_metrics_and_pass_promtool() {
    let _bound = bound(120);
    let dead_redis = format!("redis://127.0.0.1:{}/", free_port());
    let dir = tempfile::tempdir().unwrap();
    let store = common::store::store_toml(&common::store::sqlite_url(dir.path()));
    let setup = Setup {
        upstream_extra: "stream_idle_timeout = \"1s\"".into(),
        extra: format!("[cache]\nredis_url = \"{dead_redis}\"\n{store}{BUDGETED}"),
        ..Setup::default()
    };
    let env = Env::with(setup).await;
    exercise(&env).await;
    let exposition = env.gw.metrics().await;
    let exposed = metric_names(&exposition);
    let named = metric_names(&dashboard_exprs());
    assert!(named.len() >= 10, "dashboards name too few metrics: {named:?}");
    let missing: Vec<_> = named.difference(&exposed).collect();
    assert!(
        missing.is_empty(),
        "named in dashboards/ but not exposed: {missing:?}"
    );

    let out = promtool()
        .args(["check", "rules", "dashboards/alerts.yml"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut check = promtool()
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `(metric, label, value)` for every equality or alternation matcher in `exprs` (template
/// variables such as `$tenant` and negative matchers are skipped).
fn selected_series(exprs: &str) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    let mut rest = exprs;
    while let Some(i) = rest.find("dify_gateway_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = tail[..end].to_string();
        rest = &tail[end..];
        let Some(selector) = rest
            .strip_prefix('{')
            .and_then(|s| s.split_once('}'))
            .map(|(s, _)| s)
        else {
            continue;
        };
        for m in selector.split(',') {
            let (op, (k, v)) = match (m.split_once("=~"), m.split_once('=')) {
                (Some(kv), _) => ("=~", kv),
                (None, Some(kv)) if !kv.0.ends_with('!') => ("=", kv),
                _ => continue,
            };
            let v = v.trim().trim_matches('"');
            if v.contains('$') || v.contains('\\') {
                continue;
            }
            let values: Vec<&str> = if op == "=~" {
                v.split('|').collect()
            } else {
                vec![v]
            };
            for value in values {
                out.insert((name.clone(), k.trim().to_string(), value.to_string()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_series_a_dashboard_or_rule_selects_exists_from_start_up() {
    let _bound = bound(120);
    let dir = tempfile::tempdir().unwrap();
    let env = Env::with(Setup {
        extra: format!(
            "{}{BUDGETED}",
            common::store::store_toml(&common::store::sqlite_url(dir.path()))
        ),
        ..Setup::default()
    })
    .await;
    let exposition = env.gw.metrics().await;
    let exprs = dashboard_exprs();
    let missing: Vec<_> = metric_names(&exprs)
        .into_iter()
        .filter(|n| {
            !exposition
                .lines()
                .any(|l| l.starts_with(n.as_str()) && !l.starts_with('#'))
        })
        .collect();
    assert!(missing.is_empty(), "no series at start-up for {missing:?}");
    let selected = selected_series(&exprs);
    assert!(selected.len() >= 5, "{selected:?}");
    for (name, label, value) in selected {
        let want = format!("{label}=\"{value}\"");
        assert!(
            exposition
                .lines()
                .any(|l| l.starts_with(name.as_str()) && l.contains(&want)),
            "no `{name}{{{want}}}` at start-up"
        );
    }
}
