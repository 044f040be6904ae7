//! `POST /v1/messages/{message_id}/feedbacks` (§3.10) and `GET /v1/app/feedbacks` (§3.11).

use std::time::SystemTime;

use axum::response::Response;
use serde_json::{Value, json};

use crate::json::{ApiError, restx};
use crate::pydantic::Validation;
use crate::routes::{Req, query_dict};
use crate::state::{AppEntry, FeedbackRec, Shared, new_uuid};
use crate::validate::{get_json, payload_or_empty, user_from_json};

pub(crate) fn create(
    shared: &Shared,
    app: &AppEntry,
    req: &Req,
    message_id: &str,
) -> Result<Response, ApiError> {
    let body = get_json(req.headers(), &req.body)?;
    let user = user_from_json(&body, true)?.unwrap_or_default();
    let end_user_id = shared.end_user_id(&app.key, &user);
    let payload = payload_or_empty(body);
    let mut v = Validation::new("MessageFeedbackPayload", &payload);
    let mut fields = (None, None);
    if let Some(map) = v.object() {
        fields.0 = v.opt_literal(map, "rating", &["like", "dislike"]);
        fields.1 = v.opt_str(map, "content");
    }
    v.finish()?;
    let owner = Owner {
        user: &user,
        end_user_id: &end_user_id,
    };
    apply(shared, app, message_id, owner, fields)?;
    Ok(restx(200, &json!({"result": "success"})))
}

struct Owner<'a> {
    user: &'a str,
    end_user_id: &'a str,
}

/// Create / update / revoke the end user's feedback on a message of this app.
fn apply(
    shared: &Shared,
    app: &AppEntry,
    message_id: &str,
    owner: Owner<'_>,
    (rating, content): (Option<String>, Option<String>),
) -> Result<(), ApiError> {
    let mut db = shared.db.lock();
    let msg = db
        .messages
        .get(message_id)
        .filter(|m| m.key == app.key && m.user == owner.user)
        .cloned()
        .ok_or_else(|| ApiError::not_found("Message Not Exists."))?;
    let existing = db
        .feedbacks
        .iter()
        .position(|f| f.message_id == message_id && f.end_user_id == owner.end_user_id);
    let now = SystemTime::now();
    match (rating, existing) {
        (None, None) => {
            return Err(ApiError::invalid_param(
                "rating cannot be None when feedback not exists",
            ));
        }
        (None, Some(i)) => {
            db.feedbacks.remove(i);
        }
        (Some(rating), Some(i)) => {
            if let Some(f) = db.feedbacks.get_mut(i) {
                f.rating = rating;
                f.content = content;
                f.updated_at = now;
                f.updated = true;
            }
        }
        (Some(rating), None) => db.feedbacks.push(FeedbackRec {
            id: new_uuid(),
            key: app.key.clone(),
            conversation_id: msg.conversation_id.clone(),
            message_id: message_id.to_string(),
            end_user_id: msg.end_user_id.clone(),
            rating,
            content,
            created_at: now,
            updated_at: now,
            updated: false,
        }),
    }
    Ok(())
}

/// `GET /v1/app/feedbacks?page&limit`: newest first, `{"data": [...]}` only.
pub(crate) fn list(shared: &Shared, app: &AppEntry, req: &Req) -> Result<Response, ApiError> {
    let args = Value::Object(query_dict(req.query()));
    let mut v = Validation::new("FeedbackListQuery", &args);
    let (mut page, mut limit) = (1, 20);
    if let Some(map) = v.object() {
        page = v.query_int(map, "page", 1, 1, None);
        limit = v.query_int(map, "limit", 20, 1, Some(101));
    }
    v.finish()?;
    let db = shared.db.lock();
    let skip = usize::try_from((page - 1) * limit).unwrap_or(usize::MAX);
    let data: Vec<Value> = db
        .feedbacks
        .iter()
        .rev()
        .filter(|f| f.key == app.key)
        .skip(skip)
        .take(usize::try_from(limit).unwrap_or(0))
        .map(|f| feedback_json(f, &app.app_id))
        .collect();
    Ok(restx(200, &json!({"data": data})))
}

fn feedback_json(f: &FeedbackRec, app_id: &str) -> Value {
    json!({
        "id": f.id,
        "app_id": app_id,
        "conversation_id": f.conversation_id,
        "message_id": f.message_id,
        "rating": f.rating,
        "content": f.content,
        "from_source": "user",
        "from_end_user_id": f.end_user_id,
        "from_account_id": null,
        "created_at": iso_utc(f.created_at, false),
        "updated_at": iso_utc(f.updated_at, f.updated),
    })
}

/// Naive UTC ISO-8601 like Python's `datetime.isoformat()` (microseconds only when asked and non-zero).
pub(crate) fn iso_utc(t: SystemTime, micros: bool) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (y, m, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let base = format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    match d.subsec_micros() {
        us if micros && us > 0 => format!("{base}.{us:06}"),
        _ => base,
    }
}

/// Days since 1970-01-01 to (year, month, day) — Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn iso_format() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_778_574_629);
        assert_eq!(iso_utc(t, false), "2026-05-12T08:30:29");
        let t2 = t + Duration::from_micros(1500);
        assert_eq!(iso_utc(t2, true), "2026-05-12T08:30:29.001500");
        assert_eq!(iso_utc(SystemTime::UNIX_EPOCH, false), "1970-01-01T00:00:00");
    }
}
