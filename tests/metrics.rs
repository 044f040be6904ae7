//! Metrics tell the truth: token and cost counters equal the usage the simulator reported, for
//! blocking and streaming completions; and no key, JWT or admin token appears in any log line,
//! metric or error body after a run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;
use serde_json::{Value, json};

/// The value of the sample `name{labels}` in a Prometheus exposition (0 when absent).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn token_and_cost_counters_equal_what_dify_reported() {
    let _bound = bound(120);
    let env = Env::start().await;
    let tok = token("acme", None);
    let (mut prompt, mut completion, mut cost) = (0u64, 0u64, 0f64);
    let mut add = |u: &Value| {
        prompt += u["prompt_tokens"].as_u64().unwrap();
        completion += u["completion_tokens"].as_u64().unwrap();
        cost += u["total_price"].as_str().unwrap().parse::<f64>().unwrap();
    };
    for (i, topic) in [
        "green tea",
        "oolong",
        "a much longer topic for more prompt tokens",
    ]
    .iter()
    .enumerate()
    {
        let body = json!({"inputs": {"topic": topic}, "response_mode": "blocking", "user": "bob"});
        let r = env
            .http
            .post(env.url("/v1/completion-messages"))
            .header("authorization", bearer(&tok))
            .header("x-sim-events", (5 + i).to_string())
            .json(&body)
            .send()
            .await
            .unwrap();
        add(&r.json::<Value>().await.unwrap()["metadata"]["usage"]);
        let body = json!({"inputs": {"topic": topic}, "response_mode": "streaming", "user": "bob"});
        let r = env
            .http
            .post(env.url("/v1/completion-messages"))
            .header("authorization", bearer(&tok))
            .header("x-sim-events", (7 + i).to_string())
            .header("x-sim-event-interval-ms", "1")
            .json(&body)
            .send()
            .await
            .unwrap();
        let events = data_events(&r.text().await.unwrap());
        add(&events.last().unwrap()["metadata"]["usage"]);
    }
    assert!(prompt > 0 && completion > 0 && cost > 0.0);
    let series =
        |t: &str| format!("dify_gateway_tokens_total{{app=\"writer\",tenant=\"acme\",type=\"{t}\"}}");
    let m = env
        .gw
        .metrics_contain(&format!("{} {completion}", series("completion")))
        .await;
    assert_eq!(sample(&m, &series("prompt")), prompt as f64);
    let billed = sample(
        &m,
        "dify_gateway_cost_total{app=\"writer\",currency=\"USD\",tenant=\"acme\"}",
    );
    assert!(
        (billed - cost).abs() < 1e-12,
        "cost counter {billed} != reported {cost}"
    );
    assert_eq!(
        sample(
            &m,
            "dify_gateway_time_to_first_token_seconds_count{app=\"writer\",tenant=\"acme\"}"
        ),
        3.0
    );
    assert_eq!(
        sample(
            &m,
            "dify_gateway_stream_duration_seconds_count{app=\"writer\",tenant=\"acme\"}"
        ),
        3.0
    );
    assert!(
        sample(
            &m,
            "dify_gateway_upstream_first_byte_seconds_count{endpoint=\"completion_messages\"}"
        ) >= 6.0
    );
}

#[tokio::test]
async fn no_secret_reaches_a_log_a_metric_or_an_error_body() {
    let _bound = bound(120);
    let admin = "admin-token-that-must-not-leak-0123";
    // The most verbose filter there is: no level may let a key through.
    let setup = Setup {
        extra: format!("[admin]\ntoken = \"{admin}\"\n"),
        gateway_env: vec![("RUST_LOG".into(), "trace".into())],
        ..Setup::default()
    };
    let env = Env::with(setup).await;
    let good = token("acme", None);
    let expired = sign_hs(None, &{
        let mut c = claims("acme", None);
        c["exp"] = json!(now() - 3600);
        c
    });
    let mut bodies = String::new();
    for (tok, path) in [
        (&good, "/v1/parameters"),
        (&good, "/v1/app/feedbacks"),
        (&expired, "/v1/info"),
        (&good, "/v1/nope"),
        (&token("nobody", None), "/v1/site"),
    ] {
        let r = env
            .http
            .get(env.url(path))
            .header("authorization", bearer(tok))
            .send()
            .await
            .unwrap();
        bodies.push_str(&r.text().await.unwrap());
    }
    let r = env
        .http
        .post(env.url("/v1/completion-messages"))
        .header("authorization", bearer(&good))
        .json(&json!({"inputs": {"topic": "tea"}, "response_mode": "streaming", "user": "bob"}))
        .send()
        .await
        .unwrap();
    bodies.push_str(&r.text().await.unwrap());
    for t in [admin, "wrong-admin-token-0000000000"] {
        let r = env
            .http
            .post(env.gw.admin_url("/admin/cache/invalidate"))
            .header("authorization", bearer(t))
            .send()
            .await
            .unwrap();
        bodies.push_str(&r.text().await.unwrap());
    }
    let metrics = env
        .gw
        .metrics_contain("endpoint=\"completion_messages\",method=\"POST\",status_class=\"2xx\"")
        .await;
    let log = env.gw.log();
    assert!(
        log.contains("\"target\":\"access\""),
        "no access log lines: {log}"
    );
    for secret in [
        KEY_ACME_WRITER,
        KEY_ACME_EDITOR,
        KEY_GLOBEX,
        SECRET,
        admin,
        good.as_str(),
        expired.as_str(),
    ] {
        for (name, text) in [("log", &log), ("metrics", &metrics), ("error bodies", &bodies)] {
            assert!(!text.contains(secret), "a secret reached the {name}");
        }
    }
}
