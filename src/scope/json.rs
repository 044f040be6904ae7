//! Rewrites `user` in a JSON request body (completion, stop, feedback, text-to-audio) and reads the
//! ids the gateway needs to check ownership. Pure: bytes in, bytes out. The body is read as Dify's
//! Python reads it (an object; a repeated key's last value wins, in its first place), but only
//! `user` and `message_id` are decoded: every other value goes on as the exact text the client sent.

use super::user::{DEFAULT_USER, scoped};
use indexmap::IndexMap;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// What the gateway learned from, and did to, a JSON body.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct JsonBody {
    /// The body to send instead, when it changed.
    pub rewritten: Option<Vec<u8>>,
    /// `user` as Dify will see it.
    pub dify_user: Option<String>,
    /// `message_id`, when the body names one (text-to-audio).
    pub message_id: Option<String>,
    /// The body asks for `"response_mode": "streaming"`.
    pub streaming: bool,
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

/// A JSON object's members: each key once, with its last value, in the place it first took
/// (`None`: the scoped `user` goes there).
type Members<'a> = IndexMap<Cow<'a, str>, Option<&'a RawValue>>;

/// An object key, borrowed from the body unless it had escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// The top level of a body: an object's members, or `None` for any other JSON value.
struct Top<'a>(Option<Members<'a>>);

impl<'de> serde::Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TopVisitor;
        impl<'de> Visitor<'de> for TopVisitor {
            type Value = Top<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
                let mut members = Members::with_capacity(map.size_hint().unwrap_or(8).min(64));
                while let Some((Key(k), v)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    members.insert(k, Some(v));
                }
                Ok(Top(Some(members)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Top<'de>, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Top(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Top<'de>, E> {
                Ok(Top(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Top<'de>, E> {
                Ok(Top(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Top<'de>, E> {
                Ok(Top(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Top<'de>, E> {
                Ok(Top(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Top<'de>, E> {
                Ok(Top(None))
            }
            fn visit_unit<E>(self) -> Result<Top<'de>, E> {
                Ok(Top(None))
            }
        }
        d.deserialize_any(TopVisitor)
    }
}

/// Reads (and with `scope` rewrites) a JSON body for `tenant`. Anything but a JSON object is refused:
/// passing it on unread could let a body Dify reads differently carry an unscoped `user`. With
/// `default_user`, a missing `user` becomes the tenant's own `DEFAULT-USER` (endpoints where Dify would
/// fall back to a user shared by everyone).
pub fn inspect(body: &[u8], tenant: &str, scope: bool, default_user: bool) -> Result<JsonBody, BodyError> {
    // Dify decodes the whole body as UTF-8 before it parses it: so does the gateway.
    let text = std::str::from_utf8(body).map_err(|_| BodyError::NotJson)?;
    if too_deep(body) {
        return Err(BodyError::NotJson);
    }
    let mut members = match serde_json::from_str::<Top<'_>>(text) {
        Ok(Top(Some(members))) => members,
        Ok(Top(None)) => return Err(BodyError::NotObject),
        Err(_) => return Err(BodyError::NotJson),
    };
    let decoded = |raw: &RawValue| {
        let text = raw.get();
        match text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
            // A string without escapes is its own text (the parse above refused control bytes).
            Some(plain) if !plain.contains(['\\', '"']) => Ok(Value::String(plain.to_owned())),
            _ => serde_json::from_str::<Value>(text).map_err(|_| BodyError::NotJson),
        }
    };
    // Dify ignores an empty `message_id` (and voices `text`): so does the ownership check.
    let streaming = match members.get("response_mode").copied().flatten() {
        Some(raw) => decoded(raw)?.as_str() == Some("streaming"),
        None => false,
    };
    let message_id = match members.get("message_id").copied().flatten() {
        Some(raw) => match decoded(raw)? {
            Value::String(m) if !m.is_empty() => Some(m),
            _ => None,
        },
        None => None,
    };
    let user = match members.get("user").copied().flatten().map(decoded).transpose()? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s),
        // Dify str()s other scalars; keep that, then scope the text.
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) => Some(if b { "True" } else { "False" }.to_string()),
        Some(_) if scope => return Err(BodyError::BadUser),
        Some(_) => None,
    };
    if !scope {
        return Ok(JsonBody {
            rewritten: None,
            dify_user: user,
            message_id,
            streaming,
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
                streaming,
            });
        }
    };
    // `user` keeps its place, or comes last when it was missing.
    members.entry(Cow::Borrowed("user")).or_insert(None);
    Ok(JsonBody {
        rewritten: Some(write_object(&members, &dify_user, body.len())),
        dify_user: Some(dify_user),
        message_id,
        streaming,
    })
}

/// Nesting the gateway reads at most, as a full parse did (serde_json's limit). Raw values are
/// skipped without one, and Python's reader fails past ~1,000 levels with an error Dify answers 500.
const MAX_DEPTH: usize = 128;

/// Whether arrays and objects in `body` nest deeper than [`MAX_DEPTH`] (brackets inside strings do
/// not count). Bodies with fewer brackets than that are not scanned.
fn too_deep(body: &[u8]) -> bool {
    if memchr::memchr2_iter(b'[', b'{', body).nth(MAX_DEPTH).is_none() {
        return false;
    }
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        match (in_string, b) {
            (true, _) if escaped => escaped = false,
            (true, b'\\') => escaped = true,
            (true, b'"') => in_string = false,
            (true, _) => {}
            (false, b'"') => in_string = true,
            (false, b'[' | b'{') => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return true;
                }
            }
            (false, b']' | b'}') => depth = depth.saturating_sub(1),
            (false, _) => {}
        }
    }
    false
}

/// The object of `members`, compact between members, each value as it was written and `user` as
/// `dify_user`.
fn write_object(members: &Members<'_>, dify_user: &str, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity + dify_user.len() + 16);
    out.push(b'{');
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // A key came from a JSON string: it always writes back.
        let _ = serde_json::to_writer(&mut out, k.as_ref());
        out.push(b':');
        match v {
            Some(raw) if k != "user" => out.extend_from_slice(raw.get().as_bytes()),
            _ => {
                let _ = serde_json::to_writer(&mut out, dify_user);
            }
        }
    }
    out.push(b'}');
    out
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

    fn rewritten(body: &[u8]) -> String {
        let r = inspect(body, "acme", true, false).unwrap();
        String::from_utf8(r.rewritten.unwrap()).unwrap()
    }

    #[test]
    fn a_repeated_user_is_read_as_python_reads_it() {
        // The last value wins, in the place the key first took; an escaped key is the same key.
        assert_eq!(
            rewritten(br#"{"user": "a", "x": 1, "user": "b"}"#),
            r#"{"user":"acme:b","x":1}"#
        );
        assert_eq!(
            rewritten(br#"{"us\u0065r": "eve", "inputs": {"user": "x"}}"#),
            r#"{"user":"acme:eve","inputs":{"user": "x"}}"#,
            "only the top-level user is scoped"
        );
        assert_eq!(
            rewritten(br#"{"user": ["no"], "user": "bob"}"#),
            r#"{"user":"acme:bob"}"#
        );
        assert_eq!(
            rewritten(br#"{"user": "b\u00f6b \"q\""}"#),
            r#"{"user":"acme:böb \"q\""}"#,
            "escapes in user are read as Python reads them"
        );
    }

    #[test]
    fn other_values_go_on_as_the_client_wrote_them() {
        // Numbers Rust's f64 would round, escapes and spacing inside values are Dify's to read.
        let body = br#"{"inputs": {"n": 12345678901234567890123, "s": "caf\u00e9 \ud83d\ude00"}, "big": 1e400, "user": "bob"}"#;
        assert_eq!(
            rewritten(body),
            r#"{"inputs":{"n": 12345678901234567890123, "s": "caf\u00e9 \ud83d\ude00"},"big":1e400,"user":"acme:bob"}"#
        );
        let odd_key = rewritten(b"{\"a\\\"b\\n\": true, \"user\": \"bob\"}");
        assert_eq!(odd_key, "{\"a\\\"b\\n\":true,\"user\":\"acme:bob\"}");
    }

    #[test]
    fn bodies_python_would_not_read_are_refused() {
        for bad in [
            &b"{\"user\": \"b\xffb\"}"[..],
            b"{\"x\": \"\xc3\"}",
            b"{\"user\": NaN}",
            b"{\"user\": \"bob\"} trailing",
            b"{\"user\": \"\\ud800\"}",
            b"{\"user\": \"a\tb\"}",
            b"",
        ] {
            assert_eq!(
                inspect(bad, "acme", true, false),
                Err(BodyError::NotJson),
                "{bad:?}"
            );
        }
        for not_object in [&b"\"s\""[..], b"1", b"null", b"true", b"[{\"user\": 1}]"] {
            assert_eq!(
                inspect(not_object, "acme", true, false),
                Err(BodyError::NotObject)
            );
        }
    }

    #[test]
    fn reads_the_response_mode() {
        let mode = |b: &[u8]| inspect(b, "acme", true, false).map(|r| r.streaming);
        assert_eq!(
            mode(br#"{"inputs": {}, "response_mode": "streaming", "user": "u"}"#),
            Ok(true)
        );
        assert_eq!(mode(br#"{"response_mode": "stre\u0061ming"}"#), Ok(true));
        assert_eq!(mode(br#"{"inputs": {}, "response_mode": "blocking"}"#), Ok(false));
        assert_eq!(mode(br#"{"response_mode": ["streaming"]}"#), Ok(false));
        assert_eq!(mode(br#"{"inputs": {}}"#), Ok(false));
    }

    #[test]
    fn nesting_is_read_as_deep_as_a_full_parse_read_it() {
        let nested = |n: usize| format!("{{\"user\": \"b\", \"x\": {}1{}}}", "[".repeat(n), "]".repeat(n));
        assert!(inspect(nested(126).as_bytes(), "acme", true, false).is_ok());
        assert_eq!(
            inspect(nested(2000).as_bytes(), "acme", true, false),
            Err(BodyError::NotJson)
        );
        // Brackets inside strings are text.
        let quoted = format!("{{\"user\": \"b\", \"x\": \"{}\"}}", "[".repeat(2000));
        assert!(inspect(quoted.as_bytes(), "acme", true, false).is_ok());
        let escaped = format!("{{\"user\": \"b\\\"\", \"x\": \"{}\"}}", "{".repeat(300));
        assert!(
            inspect(escaped.as_bytes(), "acme", true, false).is_ok(),
            "{escaped}"
        );
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
