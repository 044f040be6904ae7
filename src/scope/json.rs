//! Rewrites `user` in a JSON request body (completion, stop, feedback, text-to-audio) and reads the
//! ids the gateway needs to check ownership. Pure: bytes in, bytes out.

use super::user::{DEFAULT_USER, scoped};
use serde_json::Value;

/// What the gateway learned from, and did to, a JSON body.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct JsonBody {
    /// The body to send instead, when it changed.
    pub rewritten: Option<Vec<u8>>,
    /// `user` as Dify will see it.
    pub dify_user: Option<String>,
    /// `message_id`, when the body names one (text-to-audio).
    pub message_id: Option<String>,
}

/// A body the gateway will not pass on, because it cannot read it the way Dify would.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Not JSON at all (or JSON only Python reads, such as `NaN`).
    #[error("The request body is not valid JSON.")]
    NotJson,
    /// JSON, but not an object.
    #[error("The JSON body must be an object.")]
    NotObject,
    /// A `user` the gateway cannot scope safely.
    #[error("Arg user must be a string.")]
    BadUser,
}

/// Reads (and with `scope` rewrites) a JSON body for `tenant`. Anything but a JSON object is refused:
/// passing it on unread could let a body Dify reads differently carry an unscoped `user`. With
/// `default_user`, a missing `user` becomes the tenant's own `DEFAULT-USER` (endpoints where Dify would
/// fall back to a user shared by everyone).
pub fn inspect(body: &[u8], tenant: &str, scope: bool, default_user: bool) -> Result<JsonBody, BodyError> {
    let mut map = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(BodyError::NotObject),
        Err(_) => return Err(BodyError::NotJson),
    };
    // Dify ignores an empty `message_id` (and voices `text`): so does the ownership check.
    let message_id = map
        .get("message_id")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map(String::from);
    let user = match map.get("user") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        // Dify str()s other scalars; keep that, then scope the text.
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(if *b { "True" } else { "False" }.to_string()),
        Some(_) if scope => return Err(BodyError::BadUser),
        Some(_) => None,
    };
    if !scope {
        return Ok(JsonBody {
            rewritten: None,
            dify_user: user,
            message_id,
        });
    }
    let dify_user = match (user, default_user) {
        (Some(u), _) => scoped(tenant, &u),
        (None, true) => scoped(tenant, DEFAULT_USER),
        // Leave it missing: Dify answers `Arg user must be provided.` itself.
        (None, false) => {
            return Ok(JsonBody {
                rewritten: None,
                dify_user: None,
                message_id,
            });
        }
    };
    map.insert("user".into(), Value::String(dify_user.clone()));
    let rewritten = serde_json::to_vec(&Value::Object(map)).ok();
    Ok(JsonBody {
        rewritten,
        dify_user: Some(dify_user),
        message_id,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn body(r: &JsonBody) -> Value {
        serde_json::from_slice(r.rewritten.as_ref().unwrap()).unwrap()
    }

    #[test]
    fn scopes_user_and_keeps_everything_else() {
        let r = inspect(
            br#"{"inputs": {"topic": "t"}, "user": "bob", "response_mode": "streaming"}"#,
            "acme",
            true,
            false,
        )
        .unwrap();
        assert_eq!(r.dify_user.as_deref(), Some("acme:bob"));
        let v = body(&r);
        assert_eq!(v["user"], "acme:bob");
        assert_eq!(v["inputs"]["topic"], "t");
        assert_eq!(v["response_mode"], "streaming");
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["inputs", "user", "response_mode"], "key order kept");
    }

    #[test]
    fn missing_user_is_left_to_dify_or_defaulted_per_tenant() {
        let r = inspect(br#"{"inputs": {}}"#, "acme", true, false).unwrap();
        assert_eq!(r, JsonBody::default());
        let r = inspect(br#"{"text": "hi", "message_id": "m1"}"#, "acme", true, true).unwrap();
        assert_eq!(r.dify_user.as_deref(), Some("acme:DEFAULT-USER"));
        assert_eq!(r.message_id.as_deref(), Some("m1"));
    }

    #[test]
    fn an_empty_message_id_names_no_message() {
        let r = inspect(br#"{"message_id": "", "text": "hi"}"#, "acme", true, true).unwrap();
        assert_eq!(r.message_id, None);
    }

    #[test]
    fn odd_bodies() {
        assert_eq!(inspect(b"not json", "acme", true, true), Err(BodyError::NotJson));
        assert_eq!(inspect(b"[]", "acme", true, true), Err(BodyError::NotObject));
        let n = inspect(br#"{"user": 42}"#, "acme", true, false).unwrap();
        assert_eq!(n.dify_user.as_deref(), Some("acme:42"));
        assert_eq!(
            inspect(br#"{"user": ["x"]}"#, "acme", true, false),
            Err(BodyError::BadUser)
        );
        let off = inspect(br#"{"user": "bob"}"#, "acme", false, false).unwrap();
        assert_eq!((off.rewritten, off.dify_user.as_deref()), (None, Some("bob")));
    }
}
