//! Annotations CRUD (§3.3–3.6) and annotation-reply enable/disable jobs (§3.7–3.8).

use axum::response::Response;
use serde_json::{Value, json};

use crate::json::{ApiError, raw_response, restx};
use crate::pydantic::Validation;
use crate::routes::{Req, query_args};
use crate::state::{AnnotationRec, AnnotationSetting, AppEntry, JobRec, Shared, new_uuid, unix_now};
use crate::validate::{get_json, payload_or_empty};

fn annotation_json(a: &AnnotationRec) -> Value {
    json!({"id": a.id, "question": a.question, "answer": a.answer, "hit_count": 0, "created_at": a.created_at})
}

/// werkzeug `request.args.get(name, default, type=int)`: unparsable => default.
fn int_arg(args: &[(String, String)], name: &str, default: i64) -> i64 {
    args.iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// `GET /v1/apps/annotations?page&limit&keyword`: newest first; `limit` and `page` echo the request.
pub(crate) fn list(shared: &Shared, app: &AppEntry, req: &Req) -> Response {
    let args = query_args(req.query());
    let page = int_arg(&args, "page", 1);
    let limit = int_arg(&args, "limit", 20);
    let keyword = args
        .iter()
        .find(|(k, _)| k == "keyword")
        .map(|(_, v)| v.to_lowercase())
        .unwrap_or_default();
    let db = shared.db.lock();
    let matching: Vec<&AnnotationRec> = db
        .annotations
        .iter()
        .rev()
        .filter(|a| a.key == app.key)
        .filter(|a| {
            keyword.is_empty()
                || a.question.to_lowercase().contains(&keyword)
                || a.answer.to_lowercase().contains(&keyword)
        })
        .collect();
    let per_page = (if limit < 1 { 20 } else { limit.min(100) }) as usize;
    let skip = (page.max(1) as usize - 1).saturating_mul(per_page);
    let data: Vec<Value> = matching
        .iter()
        .skip(skip)
        .take(per_page)
        .map(|a| annotation_json(a))
        .collect();
    let has_more = i64::try_from(data.len()).is_ok_and(|n| n == limit);
    let body =
        json!({"data": data, "has_more": has_more, "limit": limit, "total": matching.len(), "page": page});
    restx(200, &body)
}

/// `{"question", "answer"}` validated as `AnnotationCreatePayload`.
fn parse_qa(req: &Req) -> Result<(String, String), ApiError> {
    let payload = payload_or_empty(get_json(req.headers(), &req.body)?);
    let mut v = Validation::new("AnnotationCreatePayload", &payload);
    let mut out = (None, None);
    if let Some(map) = v.object() {
        out = (v.req_str(map, "question"), v.req_str(map, "answer"));
    }
    v.finish()?;
    Ok((out.0.unwrap_or_default(), out.1.unwrap_or_default()))
}

/// `POST /v1/apps/annotations` → 201.
pub(crate) fn create(shared: &Shared, app: &AppEntry, req: &Req) -> Result<Response, ApiError> {
    let (question, answer) = parse_qa(req)?;
    let rec = AnnotationRec {
        id: new_uuid(),
        key: app.key.clone(),
        question,
        answer,
        created_at: unix_now(),
    };
    let body = annotation_json(&rec);
    shared.db.lock().annotations.push(rec);
    Ok(restx(201, &body))
}

/// `PUT /v1/apps/annotations/{id}`: looked up by id only (any app).
pub(crate) fn update(shared: &Shared, req: &Req, id: &str) -> Result<Response, ApiError> {
    let (question, answer) = parse_qa(req)?;
    let mut db = shared.db.lock();
    let rec = db
        .annotations
        .iter_mut()
        .find(|a| a.id == id)
        .ok_or_else(|| ApiError::not_found("Annotation not found"))?;
    rec.question = question;
    rec.answer = answer;
    Ok(restx(200, &annotation_json(rec)))
}

/// `DELETE /v1/apps/annotations/{id}` → 204 with an empty body (still `application/json`).
pub(crate) fn delete(shared: &Shared, id: &str) -> Result<Response, ApiError> {
    let mut db = shared.db.lock();
    let idx = db
        .annotations
        .iter()
        .position(|a| a.id == id)
        .ok_or_else(|| ApiError::not_found("Annotation not found"))?;
    db.annotations.remove(idx);
    Ok(raw_response(204, "application/json", ""))
}

/// `POST /v1/apps/annotation-reply/{action}` → `{"job_id", "job_status": "waiting"}`.
pub(crate) fn reply_action(
    shared: &Shared,
    app: &AppEntry,
    req: &Req,
    action: &str,
) -> Result<Response, ApiError> {
    let payload = payload_or_empty(get_json(req.headers(), &req.body)?);
    let mut v = Validation::new("AnnotationReplyActionPayload", &payload);
    let mut setting = None;
    if let Some(map) = v.object() {
        let score = v.req_float(map, "score_threshold");
        let provider = v.req_str(map, "embedding_provider_name");
        let model = v.req_str(map, "embedding_model_name");
        if let (Some(s), Some(p), Some(m)) = (score, provider, model) {
            setting = Some(AnnotationSetting {
                id: new_uuid(),
                score_threshold: json!(s),
                provider: p,
                model: m,
            });
        }
    }
    v.finish()?;
    let enable = match action {
        "enable" => true,
        "disable" => false,
        _ => return Err(ApiError::unknown()),
    };
    let job_id = new_uuid();
    let mut db = shared.db.lock();
    db.jobs.insert(
        job_id.clone(),
        JobRec {
            action: action.to_string(),
            polls: 0,
        },
    );
    match setting.filter(|_| enable) {
        Some(s) => db.annotation_settings.insert(app.key.clone(), s),
        None => db.annotation_settings.remove(&app.key),
    };
    Ok(restx(200, &json!({"job_id": job_id, "job_status": "waiting"})))
}

/// `GET .../annotation-reply/{action}/status/{job_id}`: `waiting` on the first poll, then `completed`.
pub(crate) fn reply_status(shared: &Shared, action: &str, job_id: &str) -> Result<Response, ApiError> {
    let mut db = shared.db.lock();
    let job = db
        .jobs
        .get_mut(job_id)
        .filter(|j| j.action == action)
        .ok_or_else(|| ApiError::invalid_param("The job does not exist."))?;
    job.polls += 1;
    let status = if job.polls == 1 { "waiting" } else { "completed" };
    Ok(restx(
        200,
        &json!({"job_id": job_id, "job_status": status, "error_msg": ""}),
    ))
}
