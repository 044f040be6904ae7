//! App fixtures: the `user_input_form`, and the /info, /parameters, /site, /meta and welcome bodies.

use axum::response::Response;
use serde_json::{Value, json};

use crate::json::{raw_response, restx};
use crate::state::{AppEntry, Shared};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VarKind {
    TextInput,
    Select,
    Paragraph,
    Number,
}

impl VarKind {
    pub fn as_str(self) -> &'static str {
        match self {
            VarKind::TextInput => "text-input",
            VarKind::Select => "select",
            VarKind::Paragraph => "paragraph",
            VarKind::Number => "number",
        }
    }
}

/// One `user_input_form` variable.
pub(crate) struct FormVar {
    pub kind: VarKind,
    pub label: &'static str,
    pub variable: &'static str,
    pub required: bool,
    pub max_length: Option<usize>,
    pub options: &'static [&'static str],
    pub default: &'static str,
}

/// The form of every simulated app (completion-api.md §3.14).
pub(crate) const FORM: [FormVar; 4] = [
    FormVar {
        kind: VarKind::TextInput,
        label: "Topic",
        variable: "topic",
        required: true,
        max_length: Some(48),
        options: &[],
        default: "",
    },
    FormVar {
        kind: VarKind::Select,
        label: "Tone",
        variable: "tone",
        required: false,
        max_length: None,
        options: &["formal", "casual"],
        default: "",
    },
    FormVar {
        kind: VarKind::Paragraph,
        label: "Notes",
        variable: "notes",
        required: false,
        max_length: None,
        options: &[],
        default: "",
    },
    FormVar {
        kind: VarKind::Number,
        label: "Words",
        variable: "words",
        required: false,
        max_length: None,
        options: &[],
        default: "",
    },
];

fn form_json() -> Value {
    let items: Vec<Value> = FORM.iter().map(form_var_json).collect();
    Value::Array(items)
}

fn form_var_json(v: &FormVar) -> Value {
    let mut inner = serde_json::Map::new();
    inner.insert("label".into(), json!(v.label));
    inner.insert("variable".into(), json!(v.variable));
    inner.insert("required".into(), json!(v.required));
    if let Some(max) = v.max_length {
        inner.insert("max_length".into(), json!(max));
    }
    if v.kind == VarKind::Select {
        inner.insert("options".into(), json!(v.options));
    }
    inner.insert("default".into(), json!(v.default));
    let mut outer = serde_json::Map::new();
    outer.insert(v.kind.as_str().into(), Value::Object(inner));
    Value::Object(outer)
}

/// `GET /v1/` (no auth).
pub(crate) fn welcome() -> Response {
    restx(
        200,
        &json!({"welcome": "Dify OpenAPI", "api_version": "v1", "server_version": "1.14.1"}),
    )
}

pub(crate) fn info(app: &AppEntry) -> Response {
    restx(
        200,
        &json!({
            "name": app.name,
            "description": "Simulated Dify completion app.",
            "tags": [],
            "mode": "completion",
            "author_name": "dify-sim",
        }),
    )
}

pub(crate) fn meta() -> Response {
    restx(200, &json!({"tool_icons": {}}))
}

pub(crate) fn site(app: &AppEntry) -> Response {
    restx(
        200,
        &json!({
            "title": app.name,
            "chat_color_theme": null,
            "chat_color_theme_inverted": false,
            "icon_type": "emoji",
            "icon": "🍵",
            "icon_background": "#FFEAD5",
            "description": null,
            "copyright": null,
            "privacy_policy": null,
            "custom_disclaimer": "",
            "default_language": "en-US",
            "show_workflow_steps": true,
            "use_icon_as_answer_icon": false,
            "icon_url": null,
        }),
    )
}

pub(crate) fn parameters(shared: &Shared, app: &AppEntry) -> Response {
    let auto_play = if app.tts_autoplay { "enabled" } else { "disabled" };
    let body = json!({
        "opening_statement": null,
        "suggested_questions": [],
        "suggested_questions_after_answer": {"enabled": false},
        "speech_to_text": {"enabled": false},
        "text_to_speech": {"enabled": true, "voice": "alloy", "language": "en-US", "autoPlay": auto_play},
        "retriever_resource": {"enabled": false},
        "annotation_reply": annotation_reply(shared, app),
        "more_like_this": {"enabled": false},
        "user_input_form": form_json(),
        "sensitive_word_avoidance": {"enabled": false, "type": "", "configs": []},
        "file_upload": {"image": {"enabled": false, "number_limits": 3, "detail": "high", "transfer_methods": ["remote_url", "local_file"]}},
        "system_parameters": {"image_file_size_limit": 10, "video_file_size_limit": 100, "audio_file_size_limit": 50, "file_size_limit": 15, "workflow_file_upload_limit": 10},
    });
    restx(200, &body)
}

fn annotation_reply(shared: &Shared, app: &AppEntry) -> Value {
    let db = shared.db.lock();
    match db.annotation_settings.get(&app.key) {
        Some(s) => json!({
            "id": s.id,
            "enabled": true,
            "score_threshold": s.score_threshold,
            "embedding_model": {"embedding_provider_name": s.provider, "embedding_model_name": s.model},
        }),
        None => json!({"enabled": false}),
    }
}

/// `GET /health`: Dify's liveness probe (`{"pid", "status": "ok", "version"}`), or a 503 while the
/// simulator is told to be unhealthy.
pub(crate) fn health(shared: &Shared) -> Response {
    if !shared.healthy.load(std::sync::atomic::Ordering::Acquire) {
        return raw_response(503, "application/json", "{\"status\": \"unhealthy\"}\n");
    }
    let body = format!(
        "{{\"pid\": {}, \"status\": \"ok\", \"version\": \"1.14.1\"}}",
        std::process::id()
    );
    raw_response(200, "application/json", body)
}
