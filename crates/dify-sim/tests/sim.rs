//! End-to-end checks of the simulator against completion-api.md and sse-examples.txt (reqwest over real sockets).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use dify_sim::{SimApp, SimConfig, Simulator, TaskOutcome};
use serde_json::{Value, json};

const KEY: &str = "app-demo-writer";
const OTHER: &str = "app-other";
const TTS: &str = "app-tts";

async fn sim_with(tweak: impl FnOnce(&mut SimConfig)) -> Simulator {
    let mut cfg = SimConfig::default();
    cfg.apps.push(SimApp::new(OTHER, "Other writer"));
    cfg.apps.push(SimApp {
        key: TTS.into(),
        name: "Speaking writer".into(),
        tts_autoplay: true,
    });
    tweak(&mut cfg);
    Simulator::start("127.0.0.1:0".parse().unwrap(), cfg)
        .await
        .unwrap()
}

async fn sim() -> Simulator {
    sim_with(|_| {}).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

fn url(sim: &Simulator, path: &str) -> String {
    format!("{}{path}", sim.base_url())
}

async fn post(
    sim: &Simulator,
    key: &str,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut rb = client()
        .post(url(sim, path))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    rb.send().await.unwrap()
}

async fn get(sim: &Simulator, key: &str, path: &str) -> reqwest::Response {
    client()
        .get(url(sim, path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

fn completion_body(user: &str, mode: Option<&str>) -> Value {
    let mut body = json!({"inputs": {"topic": "Green tea"}, "user": user});
    if let Some(mode) = mode {
        body["response_mode"] = json!(mode);
    }
    body
}

async fn stream(sim: &Simulator, key: &str, user: &str, headers: &[(&str, &str)]) -> Sse {
    let resp = post(
        sim,
        key,
        "/v1/completion-messages",
        completion_body(user, Some("streaming")),
        headers,
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), "text/event-stream; charset=utf-8");
    Sse {
        resp,
        buf: Vec::new(),
    }
}

fn header(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// Incremental SSE reader: frames are separated by a blank line.
struct Sse {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl Sse {
    async fn next(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let frame = String::from_utf8(self.buf[..i].to_vec()).unwrap();
                self.buf.drain(..i + 2);
                return Some(frame);
            }
            match self.resp.chunk().await.unwrap() {
                Some(chunk) => self.buf.extend_from_slice(&chunk),
                None => {
                    assert!(self.buf.is_empty(), "trailing bytes without a blank line");
                    return None;
                }
            }
        }
    }

    async fn rest(mut self) -> Vec<String> {
        let mut frames = Vec::new();
        while let Some(f) = self.next().await {
            frames.push(f);
        }
        frames
    }
}

fn data(frame: &str) -> Value {
    let payload = frame.strip_prefix("data: ").expect("data frame");
    serde_json::from_str(payload).unwrap()
}

fn event(frame: &str) -> String {
    if frame == "event: ping" {
        return "ping".into();
    }
    data(frame)["event"].as_str().unwrap().to_string()
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn strs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

const MESSAGE_KEYS: [&str; 7] = [
    "event",
    "message_id",
    "created_at",
    "task_id",
    "id",
    "answer",
    "from_variable_selector",
];
const END_KEYS: [&str; 7] = [
    "event",
    "message_id",
    "created_at",
    "task_id",
    "id",
    "metadata",
    "files",
];
const USAGE_KEYS: [&str; 14] = [
    "prompt_tokens",
    "prompt_unit_price",
    "prompt_price_unit",
    "prompt_price",
    "completion_tokens",
    "completion_unit_price",
    "completion_price_unit",
    "completion_price",
    "total_tokens",
    "total_price",
    "currency",
    "latency",
    "time_to_first_token",
    "time_to_generate",
];
const ANSWER: &str = "Green tea steeped at 75–80 °C for 2 minutes tastes calm and bright";

#[tokio::test]
async fn streamed_completion_has_exact_key_orders_and_usage() {
    let sim = sim().await;
    let frames = stream(&sim, KEY, "u1", &[]).await.rest().await;
    assert_eq!(frames.len(), 13, "12 message events + message_end: {frames:?}");
    let messages: Vec<Value> = frames[..12].iter().map(|f| data(f)).collect();
    let task_id = messages[0]["task_id"].as_str().unwrap().to_string();
    let message_id = messages[0]["message_id"].as_str().unwrap().to_string();
    for (frame, m) in frames.iter().zip(&messages) {
        assert_eq!(keys(m), strs(&MESSAGE_KEYS));
        assert_eq!(m["task_id"], task_id.as_str());
        assert_eq!(m["id"], message_id.as_str());
        assert!(m["from_variable_selector"].is_null());
        assert!(
            !frame.contains("\": "),
            "orjson-compact payload expected: {frame}"
        );
    }
    let answer: String = messages.iter().map(|m| m["answer"].as_str().unwrap()).collect();
    assert_eq!(answer, ANSWER);
    assert!(frames[4].contains("\" °C\""), "raw UTF-8 in SSE: {}", frames[4]);

    let end = data(&frames[12]);
    assert_eq!(keys(&end), strs(&END_KEYS));
    assert!(end["files"].is_null());
    assert_eq!(
        keys(&end["metadata"]),
        strs(&["annotation_reply", "retriever_resources", "usage"])
    );
    let usage = &end["metadata"]["usage"];
    assert_eq!(keys(usage), strs(&USAGE_KEYS));
    // prompt = 10 + len("Green tea"); completion = 12 events; prices 0.15/0.60 per 1M, 7 decimals.
    assert_eq!(usage["prompt_tokens"], 19);
    assert_eq!(usage["completion_tokens"], 12);
    assert_eq!(usage["total_tokens"], 31);
    assert_eq!(usage["prompt_price"], "0.0000029");
    assert_eq!(usage["completion_price"], "0.0000072");
    assert_eq!(usage["total_price"], "0.0000101");
    assert!(usage["latency"].as_f64().unwrap() > 0.2);

    let task = sim.wait_for_task(&task_id, Duration::from_secs(5)).await.unwrap();
    assert_eq!(task.outcome, TaskOutcome::Completed);
    assert_eq!(
        (task.events_sent, task.streaming, task.user.as_str()),
        (12, true, "u1")
    );
    assert_eq!(sim.message_answer(&message_id).as_deref(), Some(ANSWER));
}

#[tokio::test]
async fn ping_frames_are_bare_and_only_while_generating() {
    let sim = sim().await;
    let knobs = [
        ("x-sim-ping-interval-ms", "40"),
        ("x-sim-first-event-delay-ms", "150"),
        ("x-sim-events", "3"),
    ];
    let frames = stream(&sim, KEY, "u1", &knobs).await.rest().await;
    let events: Vec<String> = frames.iter().map(|f| event(f)).collect();
    assert_eq!(events[0], "ping", "{events:?}");
    assert!(events.iter().filter(|e| *e == "ping").count() >= 2, "{events:?}");
    assert_eq!(events.last().unwrap(), "message_end");
    assert_eq!(events.iter().filter(|e| *e == "message").count(), 3);
    assert!(
        frames
            .iter()
            .all(|f| f == "event: ping" || f.starts_with("data: {"))
    );
}

#[tokio::test]
async fn injected_error_is_a_terminal_event_without_task_id() {
    let sim = sim().await;
    let frames = stream(&sim, KEY, "u1", &[("x-sim-error-after", "3")])
        .await
        .rest()
        .await;
    let events: Vec<String> = frames.iter().map(|f| event(f)).collect();
    assert_eq!(events, strs(&["message", "message", "message", "error"]));
    let err = data(frames.last().unwrap());
    assert_eq!(
        keys(&err),
        strs(&["event", "message_id", "created_at", "code", "status", "message"])
    );
    assert_eq!(err["code"], "completion_request_error");
    assert_eq!(err["status"], 400);
    let task_id = data(&frames[0])["task_id"].as_str().unwrap().to_string();
    let task = sim.wait_for_task(&task_id, Duration::from_secs(5)).await.unwrap();
    assert_eq!((task.outcome, task.events_sent), (TaskOutcome::Errored, 3));

    // Blocking mode turns the model failure into an HTTP error.
    let resp = post(
        &sim,
        KEY,
        "/v1/completion-messages",
        completion_body("u1", None),
        &[("x-sim-error-after", "1")],
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "completion_request_error");
}

#[tokio::test]
async fn tts_autoplay_continues_after_message_end() {
    let sim = sim().await;
    let frames = stream(&sim, TTS, "u1", &[]).await.rest().await;
    let events: Vec<String> = frames.iter().map(|f| event(f)).collect();
    let end = events.iter().position(|e| e == "message_end").unwrap();
    let first_tts = events.iter().position(|e| e == "tts_message").unwrap();
    let last_tts = events.iter().rposition(|e| e == "tts_message").unwrap();
    assert!(first_tts < end && last_tts > end, "{events:?}");
    assert_eq!(events.last().unwrap(), "tts_message_end");
    let tts = data(&frames[first_tts]);
    assert_eq!(
        keys(&tts),
        strs(&["event", "message_id", "created_at", "task_id", "audio"])
    );
    assert!(
        tts["audio"].as_str().unwrap().starts_with("//Nk"),
        "base64 MP3 frame header"
    );
    assert_eq!(data(frames.last().unwrap())["audio"], "");
}

#[tokio::test]
async fn stop_by_owner_ends_stream_early_and_others_are_ignored() {
    let sim = sim().await;
    let mut sse = stream(
        &sim,
        KEY,
        "alice",
        &[("x-sim-events", "200"), ("x-sim-event-interval-ms", "15")],
    )
    .await;
    let first = data(&sse.next().await.unwrap());
    let task_id = first["task_id"].as_str().unwrap().to_string();
    let stop_path = format!("/v1/completion-messages/{task_id}/stop");

    for (key, user) in [(KEY, "bob"), (OTHER, "alice"), (KEY, "alice")] {
        let resp = post(&sim, key, &stop_path, json!({"user": user}), &[]).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.unwrap(), "{\"result\": \"success\"}\n");
    }
    let mut frames = vec![serde_json::to_string(&first).unwrap()];
    frames.extend(
        sse.rest()
            .await
            .into_iter()
            .map(|f| f.strip_prefix("data: ").unwrap().to_string()),
    );
    let last: Value = serde_json::from_str(frames.last().unwrap()).unwrap();
    assert_eq!(last["event"], "message_end");
    let messages = frames.len() - 1;
    assert!(messages < 200, "stream was not cut short");
    assert_eq!(last["metadata"]["usage"]["completion_tokens"], messages as u64);

    let task = sim.wait_for_task(&task_id, Duration::from_secs(5)).await.unwrap();
    assert_eq!((task.outcome, task.events_sent), (TaskOutcome::Stopped, messages));
    let applied: Vec<(String, String, bool)> = sim
        .stop_calls()
        .into_iter()
        .map(|c| (c.key, c.user, c.applied))
        .collect();
    assert_eq!(
        applied,
        vec![
            (KEY.to_string(), "bob".to_string(), false),
            (OTHER.to_string(), "alice".to_string(), false),
            (KEY.to_string(), "alice".to_string(), true),
        ]
    );
    // Unknown / finished task: still 200, not applied.
    let resp = post(&sim, KEY, &stop_path, json!({"user": "alice"}), &[]).await;
    assert_eq!(resp.status(), 200);
    assert!(!sim.stop_calls().last().unwrap().applied);
}

#[tokio::test]
async fn client_disconnect_does_not_stop_generation() {
    let sim = sim().await;
    let mut sse = stream(&sim, KEY, "u1", &[("x-sim-events", "8")]).await;
    let task_id = data(&sse.next().await.unwrap())["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    drop(sse);
    let task = sim.wait_for_task(&task_id, Duration::from_secs(5)).await.unwrap();
    assert_eq!((task.outcome, task.events_sent), (TaskOutcome::Completed, 8));
    let deadline = Instant::now() + Duration::from_secs(2);
    while sim.active_requests(KEY) != 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(sim.active_requests(KEY), 0);
}

#[tokio::test]
async fn blocking_body_is_python_json_dumps() {
    let sim = sim().await;
    let body = json!({"inputs": {"topic": "Green tea", "tone": "casual", "words": "120", "extra": "dropped"}, "user": "u1"});
    let resp = post(&sim, KEY, "/v1/completion-messages", body, &[]).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), "application/json; charset=utf-8");
    let text = resp.text().await.unwrap();
    assert!(
        text.starts_with("{\"event\": \"message\", \"task_id\": \""),
        "{text}"
    );
    assert!(!text.ends_with('\n'));
    assert!(text.contains(
        "\"mode\": \"completion\", \"answer\": \"Green tea steeped at 75\\u201380 \\u00b0C for 2 minutes tastes calm and bright\", \"metadata\": {\"annotation_reply\": null, \"retriever_resources\": [], \"usage\": {\"prompt_tokens\": 28, "
    ), "{text}");
    // prompt = 10 + "Green tea"(9) + "casual"(6) + notes ""(0) + words 120 (3) = 28.
    assert!(
        text.contains("\"prompt_price\": \"0.0000042\", \"completion_tokens\": 12, "),
        "{text}"
    );
    assert!(
        text.contains("\"total_price\": \"0.0000114\", \"currency\": \"USD\", \"latency\": "),
        "{text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        keys(&v),
        strs(&[
            "event",
            "task_id",
            "id",
            "message_id",
            "mode",
            "answer",
            "metadata",
            "created_at"
        ])
    );
    assert_eq!(v["id"], v["message_id"]);
    let task = sim
        .wait_for_task(v["task_id"].as_str().unwrap(), Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!((task.outcome, task.streaming), (TaskOutcome::Completed, false));
}

async fn raw_post(
    sim: &Simulator,
    auth: Option<&str>,
    content_type: Option<&str>,
    path: &str,
    body: &str,
) -> (u16, String, String) {
    let mut rb = client().post(url(sim, path)).body(body.to_string());
    if let Some(a) = auth {
        rb = rb.header("authorization", a);
    }
    if let Some(ct) = content_type {
        rb = rb.header("content-type", ct);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = header(&resp, "content-type");
    (status, ct, resp.text().await.unwrap())
}

#[tokio::test]
async fn auth_errors_are_exact() {
    let sim = sim().await;
    let resp = client()
        .post(url(&sim, "/v1/completion-messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(header(&resp, "www-authenticate"), "Bearer realm=\"api\"");
    assert_eq!(header(&resp, "content-type"), "application/json");
    assert_eq!(
        resp.text().await.unwrap(),
        "{\"code\": \"unauthorized\", \"message\": \"Authorization header must be provided and start with 'Bearer'\", \"status\": 401}\n"
    );
    let json = Some("application/json");
    let (s, _, b) = raw_post(&sim, Some("Basic abc"), json, "/v1/completion-messages", "{}").await;
    assert_eq!(
        (s, b.as_str()),
        (
            401,
            "{\"code\": \"unauthorized\", \"message\": \"Authorization scheme must be 'Bearer'\", \"status\": 401}\n"
        )
    );
    let (s, _, b) = raw_post(
        &sim,
        Some("Bearer app-unknown"),
        json,
        "/v1/completion-messages",
        "{}",
    )
    .await;
    assert_eq!(
        (s, b.as_str()),
        (
            401,
            "{\"code\": \"unauthorized\", \"message\": \"Access token is invalid\", \"status\": 401}\n"
        )
    );

    let resp = client()
        .get(url(&sim, "/v1/info"))
        .header("authorization", format!("bEaReR {KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.text().await.unwrap(),
        "{\"name\": \"Tea writer\", \"description\": \"Simulated Dify completion app.\", \"tags\": [], \"mode\": \"completion\", \"author_name\": \"dify-sim\"}\n"
    );
}

#[tokio::test]
async fn json_body_and_user_rules() {
    let sim = sim().await;
    let auth = format!("Bearer {KEY}");
    let auth = Some(auth.as_str());
    let path = "/v1/completion-messages";
    let (s, ct, b) = raw_post(&sim, auth, None, path, "{\"user\": \"u\"}").await;
    assert_eq!((s, ct.as_str()), (415, "application/json"));
    assert_eq!(
        b,
        "{\"code\": \"unsupported_media_type\", \"message\": \"Did not attempt to load JSON data because the request Content-Type was not 'application/json'.\", \"status\": 415}\n"
    );
    let json = Some("application/json");
    let (s, _, b) = raw_post(&sim, auth, json, path, "{\"inputs\":").await;
    assert_eq!(
        (s, b.as_str()),
        (
            400,
            "{\"code\": \"bad_request\", \"message\": \"The browser (or proxy) sent a request that this server could not understand.\", \"status\": 400}\n"
        )
    );
    let (s, _, b) = raw_post(&sim, auth, json, path, "[]").await;
    assert_eq!(
        (s, b.as_str()),
        (
            500,
            "{\"message\": \"Internal Server Error\", \"code\": \"unknown\", \"status\": 500}\n"
        )
    );
    let (s, _, b) = raw_post(
        &sim,
        auth,
        json,
        path,
        "{\"inputs\": {\"topic\": \"t\"}, \"user\": \"\"}",
    )
    .await;
    assert_eq!(
        (s, b.as_str()),
        (
            400,
            "{\"code\": \"invalid_param\", \"message\": \"Arg user must be provided.\", \"status\": 400}\n"
        )
    );
    let (s, _, b) = raw_post(&sim, auth, json, path, "{\"user\": \"u\"}").await;
    assert_eq!(s, 400);
    assert_eq!(
        b,
        "{\"code\": \"invalid_param\", \"message\": \"1 validation error for CompletionRequestPayload\\ninputs\\n  Field required [type=missing, input_value={'user': 'u'}, input_type=dict]\\n    For further information visit https://errors.pydantic.dev/2.12/v/missing\", \"status\": 400}\n"
    );
    let (_, _, b) = raw_post(
        &sim,
        auth,
        json,
        path,
        "{\"user\": \"u\", \"inputs\": {\"topic\": \"t\"}, \"response_mode\": \"\u{e9}\"}",
    )
    .await;
    assert!(b.contains("Input should be 'blocking' or 'streaming' [type=literal_error, input_value='\\u00e9', input_type=str]"), "{b}");

    let cases = [
        (json!({}), "topic is required in input form"),
        (
            json!({"topic": "x".repeat(49)}),
            "topic in input form must be less than 48 characters",
        ),
        (
            json!({"topic": "t", "tone": "angry"}),
            "tone in input form must be one of the following: ['formal', 'casual']",
        ),
        (
            json!({"topic": 7}),
            "(type 'text-input') topic in input form must be a string",
        ),
    ];
    for (inputs, message) in cases {
        let resp = post(&sim, KEY, path, json!({"inputs": inputs, "user": "u"}), &[]).await;
        assert_eq!(resp.status(), 400);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(
            (v["code"].as_str(), v["message"].as_str()),
            (Some("invalid_param"), Some(message))
        );
    }
    // Validation errors happen before any generation starts.
    assert!(sim.tasks().is_empty());
}

async fn blocking_message(sim: &Simulator, key: &str, user: &str) -> String {
    let resp = post(
        sim,
        key,
        "/v1/completion-messages",
        completion_body(user, Some("blocking")),
        &[("x-sim-event-interval-ms", "1")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    v["message_id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn feedback_is_scoped_to_app_and_user() {
    let sim = sim().await;
    let mid = blocking_message(&sim, KEY, "alice").await;
    let path = format!("/v1/messages/{mid}/feedbacks");
    let not_found = "{\"code\": \"not_found\", \"message\": \"Message Not Exists.\", \"status\": 404}\n";
    for (key, user) in [(KEY, "bob"), (OTHER, "alice")] {
        let resp = post(&sim, key, &path, json!({"rating": "like", "user": user}), &[]).await;
        assert_eq!(resp.status(), 404);
        assert_eq!(resp.text().await.unwrap(), not_found);
    }
    let resp = post(&sim, KEY, &path, json!({"rating": null, "user": "alice"}), &[]).await;
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["message"], "rating cannot be None when feedback not exists");
    let resp = post(
        &sim,
        KEY,
        &path,
        json!({"rating": "like", "content": "nice", "user": "alice"}),
        &[],
    )
    .await;
    assert_eq!(resp.text().await.unwrap(), "{\"result\": \"success\"}\n");

    let list: Value = get(&sim, KEY, "/v1/app/feedbacks").await.json().await.unwrap();
    let items = list["data"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        keys(&items[0]),
        strs(&[
            "id",
            "app_id",
            "conversation_id",
            "message_id",
            "rating",
            "content",
            "from_source",
            "from_end_user_id",
            "from_account_id",
            "created_at",
            "updated_at"
        ])
    );
    assert_eq!(
        (items[0]["rating"].as_str(), items[0]["message_id"].as_str()),
        (Some("like"), Some(mid.as_str()))
    );
    assert_eq!(items[0]["app_id"].as_str(), sim.app_id(KEY).as_deref());
    let created = items[0]["created_at"].as_str().unwrap();
    assert!(created.len() == 19 && &created[10..11] == "T", "{created}");
    let other: Value = get(&sim, OTHER, "/v1/app/feedbacks").await.json().await.unwrap();
    assert_eq!(other["data"], json!([]));

    let resp = get(&sim, KEY, "/v1/app/feedbacks?limit=0").await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(v["message"].as_str().unwrap().contains("Input should be greater than or equal to 1 [type=greater_than_equal, input_value='0', input_type=str]"));

    let resp = post(&sim, KEY, &path, json!({"user": "alice"}), &[]).await;
    assert_eq!(resp.status(), 200);
    let list: Value = get(&sim, KEY, "/v1/app/feedbacks").await.json().await.unwrap();
    assert_eq!(list["data"], json!([]), "null rating revokes the feedback");

    let resp = post(
        &sim,
        KEY,
        "/v1/messages/not-a-uuid/feedbacks",
        json!({"rating": "like", "user": "alice"}),
        &[],
    )
    .await;
    assert_eq!(
        (resp.status().as_u16(), header(&resp, "content-type").as_str()),
        (404, "text/html; charset=utf-8")
    );
}

fn part(data: Vec<u8>, name: &str, mime: Option<&str>) -> reqwest::multipart::Part {
    let p = reqwest::multipart::Part::bytes(data).file_name(name.to_string());
    match mime {
        Some(m) => p.mime_str(m).unwrap(),
        None => p,
    }
}

async fn upload(sim: &Simulator, form: reqwest::multipart::Form) -> (u16, String) {
    let resp = client()
        .post(url(sim, "/v1/files/upload"))
        .bearer_auth(KEY)
        .multipart(form)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn upload_rules() {
    use reqwest::multipart::Form;
    let sim = sim().await;
    let (s, b) = upload(&sim, Form::new().text("user", "alice")).await;
    assert_eq!(
        (s, b.as_str()),
        (
            400,
            "{\"code\": \"no_file_uploaded\", \"message\": \"Please upload your file.\", \"status\": 400}\n"
        )
    );
    let (s, b) = upload(&sim, Form::new().part("file", part(vec![1; 10], "a.png", None))).await;
    assert_eq!(
        (s, b.as_str()),
        (
            415,
            "{\"code\": \"unsupported_file_type\", \"message\": \"File type not allowed.\", \"status\": 415}\n"
        )
    );
    let two = Form::new()
        .part("file", part(vec![1; 10], "a.png", Some("image/png")))
        .part("other", part(vec![1; 10], "b.png", Some("image/png")));
    let (s, b) = upload(&sim, two).await;
    assert_eq!(
        (s, b.as_str()),
        (
            400,
            "{\"code\": \"too_many_files\", \"message\": \"Only one file is allowed.\", \"status\": 400}\n"
        )
    );
    let slash = Form::new()
        .percent_encode_noop()
        .part("file", part(vec![1; 10], "a/b.png", Some("image/png")));
    let (s, b) = upload(&sim, slash).await;
    assert_eq!(
        (s, b.as_str()),
        (
            400,
            "{\"code\": \"invalid_param\", \"message\": \"Filename contains invalid characters\", \"status\": 400}\n"
        )
    );
    let big = Form::new().part(
        "file",
        part(vec![0; 10 * 1024 * 1024 + 1], "big.png", Some("image/png")),
    );
    let (s, b) = upload(&sim, big).await;
    assert_eq!(
        (s, b.as_str()),
        (
            413,
            "{\"code\": \"file_too_large\", \"message\": \"File size exceeded. {message}\", \"status\": 413}\n"
        )
    );
    // The same size is fine for a document (15 MB class).
    let doc = Form::new().part(
        "file",
        part(vec![0; 10 * 1024 * 1024 + 1], "big.pdf", Some("application/pdf")),
    );
    assert_eq!(upload(&sim, doc).await.0, 201);

    let ok = Form::new()
        .text("user", "alice")
        .part("file", part(vec![7; 2048], "Leaf.PNG", Some("image/png")));
    let (s, b) = upload(&sim, ok).await;
    assert_eq!(s, 201, "{b}");
    assert!(b.ends_with("}\n"));
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(
        keys(&v),
        strs(&[
            "id",
            "name",
            "size",
            "extension",
            "mime_type",
            "created_by",
            "created_at",
            "preview_url",
            "source_url",
            "original_url",
            "user_id",
            "tenant_id",
            "conversation_id",
            "file_key"
        ])
    );
    assert_eq!(
        (
            v["name"].as_str(),
            v["size"].as_u64(),
            v["extension"].as_str(),
            v["mime_type"].as_str()
        ),
        (Some("Leaf.PNG"), Some(2048), Some("png"), Some("image/png"))
    );
    let up = sim.uploads().last().cloned().unwrap();
    assert_eq!(
        (up.user.as_str(), up.file_id.as_str()),
        ("alice", v["id"].as_str().unwrap())
    );
    assert_eq!(sim.requests().last().unwrap().user.as_deref(), Some("alice"));
    assert_eq!(sim.uploads()[0].user, "DEFAULT-USER");
}

#[tokio::test]
async fn annotations_crud_and_reply_jobs() {
    let sim = sim().await;
    let resp = post(
        &sim,
        KEY,
        "/v1/apps/annotations",
        json!({"question": "What is Dify?", "answer": "An LLM app platform."}),
        &[],
    )
    .await;
    assert_eq!(resp.status(), 201);
    let created: Value = resp.json().await.unwrap();
    assert_eq!(
        keys(&created),
        strs(&["id", "question", "answer", "hit_count", "created_at"])
    );
    let id = created["id"].as_str().unwrap().to_string();
    post(
        &sim,
        KEY,
        "/v1/apps/annotations",
        json!({"question": "Tea?", "answer": "Green."}),
        &[],
    )
    .await;

    let list: Value = get(&sim, KEY, "/v1/apps/annotations?keyword=dify")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(keys(&list), strs(&["data", "has_more", "limit", "total", "page"]));
    assert_eq!(
        (
            list["total"].as_u64(),
            list["has_more"].as_bool(),
            list["limit"].as_i64()
        ),
        (Some(1), Some(false), Some(20))
    );
    let list: Value = get(&sim, KEY, "/v1/apps/annotations?limit=1&page=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (list["total"].as_u64(), list["has_more"].as_bool()),
        (Some(2), Some(true))
    );
    assert_eq!(list["data"][0]["question"], "Tea?", "newest first");

    let bad = post(&sim, KEY, "/v1/apps/annotations", json!({"question": "q"}), &[]).await;
    let v: Value = bad.json().await.unwrap();
    assert_eq!(
        v["message"],
        "1 validation error for AnnotationCreatePayload\nanswer\n  Field required [type=missing, input_value={'question': 'q'}, input_type=dict]\n    For further information visit https://errors.pydantic.dev/2.12/v/missing"
    );

    // Update/delete look annotations up by id only, whatever the app key.
    let put = client()
        .put(url(&sim, &format!("/v1/apps/annotations/{id}")))
        .bearer_auth(OTHER)
        .json(&json!({"question": "What is Dify?", "answer": "A platform."}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let del = || {
        client()
            .delete(url(&sim, &format!("/v1/apps/annotations/{id}")))
            .bearer_auth(KEY)
            .send()
    };
    let resp = del().await.unwrap();
    assert_eq!(
        (resp.status().as_u16(), header(&resp, "content-type").as_str()),
        (204, "application/json")
    );
    assert!(resp.bytes().await.unwrap().is_empty());
    let resp = del().await.unwrap();
    assert_eq!(
        resp.text().await.unwrap(),
        "{\"code\": \"not_found\", \"message\": \"Annotation not found\", \"status\": 404}\n"
    );

    let body = json!({"score_threshold": 0.9, "embedding_provider_name": "openai", "embedding_model_name": "text-embedding-3-small"});
    let job: Value = post(&sim, KEY, "/v1/apps/annotation-reply/enable", body.clone(), &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(job["job_status"], "waiting");
    let status_path = format!(
        "/v1/apps/annotation-reply/enable/status/{}",
        job["job_id"].as_str().unwrap()
    );
    let first: Value = get(&sim, KEY, &status_path).await.json().await.unwrap();
    let second: Value = get(&sim, KEY, &status_path).await.json().await.unwrap();
    assert_eq!(
        (first["job_status"].as_str(), second["job_status"].as_str()),
        (Some("waiting"), Some("completed"))
    );
    assert_eq!(keys(&second), strs(&["job_id", "job_status", "error_msg"]));
    let params: Value = get(&sim, KEY, "/v1/parameters").await.json().await.unwrap();
    assert_eq!(params["annotation_reply"]["enabled"], true);
    let wrong = status_path.replace("/enable/", "/disable/");
    let resp = get(&sim, KEY, &wrong).await;
    assert_eq!(
        resp.text().await.unwrap(),
        "{\"code\": \"invalid_param\", \"message\": \"The job does not exist.\", \"status\": 400}\n"
    );
    let resp = post(&sim, KEY, "/v1/apps/annotation-reply/toggle", body, &[]).await;
    assert_eq!(resp.status(), 500);
}

#[tokio::test]
async fn text_to_audio_rules() {
    let sim = sim().await;
    for mid in ["6f1c1c2e-1111-4c3b-9a2f-1e0d9c8b7a6f", "not-a-uuid"] {
        let resp = post(&sim, KEY, "/v1/text-to-audio", json!({"message_id": mid}), &[]).await;
        assert_eq!(
            (resp.status().as_u16(), header(&resp, "content-type").as_str()),
            (200, "application/json")
        );
        assert_eq!(resp.text().await.unwrap(), "null\n");
    }
    let resp = post(&sim, KEY, "/v1/text-to-audio", json!({"user": "u"}), &[]).await;
    assert_eq!(
        resp.text().await.unwrap(),
        "{\"code\": \"invalid_param\", \"message\": \"Text is required\", \"status\": 400}\n"
    );

    let started = Instant::now();
    let resp = post(
        &sim,
        KEY,
        "/v1/text-to-audio",
        json!({"text": "Hello"}),
        &[("x-sim-event-interval-ms", "40")],
    )
    .await;
    assert_eq!(
        (resp.status().as_u16(), header(&resp, "content-type").as_str()),
        (200, "audio/mpeg")
    );
    let audio = resp.bytes().await.unwrap();
    assert_eq!((audio.len(), &audio[..2]), (4096, &[0xFF, 0xF3][..]));
    assert!(
        started.elapsed() >= Duration::from_millis(120),
        "chunks are spread over time"
    );

    // A message is looked up by id only: another app's key may voice it.
    let mid = blocking_message(&sim, KEY, "alice").await;
    let resp = post(&sim, OTHER, "/v1/text-to-audio", json!({"message_id": mid}), &[]).await;
    assert_eq!(header(&resp, "content-type"), "audio/mpeg");
}

#[tokio::test]
async fn routing_fixtures_and_method_errors() {
    let sim = sim().await;
    let resp = client().get(url(&sim, "/v1/")).send().await.unwrap();
    assert_eq!(
        resp.text().await.unwrap(),
        "{\"welcome\": \"Dify OpenAPI\", \"api_version\": \"v1\", \"server_version\": \"1.14.1\"}\n"
    );
    let resp = get(&sim, KEY, "/v1/nope").await;
    assert_eq!(
        (resp.status().as_u16(), header(&resp, "content-type").as_str()),
        (404, "text/html; charset=utf-8")
    );
    assert!(
        resp.text()
            .await
            .unwrap()
            .starts_with("<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>")
    );
    let resp = get(&sim, KEY, "/v1/completion-messages").await;
    assert_eq!(
        (resp.status().as_u16(), header(&resp, "allow").as_str()),
        (405, "OPTIONS, POST")
    );
    assert_eq!(
        resp.text().await.unwrap(),
        "{\"code\": \"method_not_allowed\", \"message\": \"The method is not allowed for the requested URL.\", \"status\": 405}\n"
    );
    assert_eq!(
        get(&sim, KEY, "/v1/meta").await.text().await.unwrap(),
        "{\"tool_icons\": {}}\n"
    );
    let site = get(&sim, OTHER, "/v1/site").await.text().await.unwrap();
    assert!(
        site.starts_with("{\"title\": \"Other writer\", ") && site.contains("\"icon\": \"\\ud83c\\udf75\""),
        "{site}"
    );
    let params: Value = get(&sim, TTS, "/v1/parameters").await.json().await.unwrap();
    assert_eq!(params["text_to_speech"]["autoPlay"], "enabled");
    assert_eq!(params["user_input_form"][0]["text-input"]["max_length"], 48);
    let resp = post(
        &sim,
        KEY,
        "/v1/chat-messages",
        json!({"user": "u", "query": "hi", "inputs": {}}),
        &[],
    )
    .await;
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn concurrency_limit_is_400_or_429() {
    for as_429 in [false, true] {
        let sim = sim_with(|c| {
            c.concurrency_limit = Some(1);
            c.concurrency_limit_as_429 = as_429;
        })
        .await;
        let mut first = stream(&sim, KEY, "u1", &[("x-sim-events", "10")]).await;
        first.next().await.unwrap();
        let resp = post(
            &sim,
            KEY,
            "/v1/completion-messages",
            completion_body("u2", Some("streaming")),
            &[],
        )
        .await;
        let expected = format!(
            "Too many requests. Please try again later. The current maximum concurrent requests allowed for {} is 1.",
            sim.app_id(KEY).unwrap()
        );
        let (status, code) = if as_429 {
            (429, "too_many_requests")
        } else {
            (400, "invalid_param")
        };
        assert_eq!(resp.status().as_u16(), status);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(
            (v["code"].as_str(), v["message"].as_str()),
            (Some(code), Some(expected.as_str()))
        );
        // Other apps are not affected; the slot frees once the first stream is done.
        assert_eq!(
            post(
                &sim,
                OTHER,
                "/v1/completion-messages",
                completion_body("u1", None),
                &[]
            )
            .await
            .status(),
            200
        );
        first.rest().await;
        assert_eq!(
            post(
                &sim,
                KEY,
                "/v1/completion-messages",
                completion_body("u2", None),
                &[]
            )
            .await
            .status(),
            200
        );
    }
}

#[tokio::test]
async fn forced_status_and_request_recording() {
    let sim = sim().await;
    let resp = post(
        &sim,
        KEY,
        "/v1/completion-messages?trace_id=t1",
        completion_body("carol", None),
        &[("x-sim-status", "503")],
    )
    .await;
    assert_eq!(resp.status(), 503);
    assert_eq!(
        resp.text().await.unwrap(),
        "{\"code\": \"service_unavailable\", \"message\": \"Simulated 503 Service Unavailable (x-sim-status).\", \"status\": 503}\n"
    );
    let rec = sim.requests().pop().unwrap();
    assert_eq!(
        (rec.method.as_str(), rec.path.as_str()),
        ("POST", "/v1/completion-messages?trace_id=t1")
    );
    assert_eq!(rec.authorization.as_deref(), Some("Bearer app-demo-writer"));
    assert_eq!(
        (rec.header("X-Sim-Status"), rec.user.as_deref()),
        (Some("503"), Some("carol"))
    );
    assert!(sim.tasks().is_empty());
    sim.clear();
    assert!(sim.requests().is_empty());
}
