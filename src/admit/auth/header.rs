//! The header of a JWT, read before any key is chosen (request step 1): three base64url segments,
//! the first a JSON object naming `alg` and optionally `kid`. Pure; a token that is not plainly a
//! JWT is refused here.

use super::error::AuthError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

/// What the header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtHeader {
    /// The `alg` as written (`none` included: refusing it is the verifier's job).
    pub alg: String,
    /// The `kid`, when present.
    pub kid: Option<String>,
}

#[derive(Deserialize)]
struct Raw {
    alg: serde_json::Value,
    #[serde(default)]
    kid: Option<serde_json::Value>,
}

/// Reads the header of `token`.
pub fn peek(token: &str) -> Result<JwtHeader, AuthError> {
    let mut segments = token.split('.');
    let (Some(head), Some(_), Some(_), None) =
        (segments.next(), segments.next(), segments.next(), segments.next())
    else {
        return Err(AuthError::Malformed);
    };
    let raw = URL_SAFE_NO_PAD
        .decode(head.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed)?;
    let raw: Raw = serde_json::from_slice(&raw).map_err(|_| AuthError::Malformed)?;
    let alg = match raw.alg {
        serde_json::Value::String(a) => a,
        _ => return Err(AuthError::Malformed),
    };
    let kid = match raw.kid {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(k)) => Some(k),
        Some(_) => return Err(AuthError::Malformed),
    };
    Ok(JwtHeader { alg, kid })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn reads_alg_and_kid() {
        let t = format!("{}.e30.sig", seg(r#"{"alg":"HS256","kid":"k1","typ":"JWT"}"#));
        assert_eq!(
            peek(&t),
            Ok(JwtHeader {
                alg: "HS256".into(),
                kid: Some("k1".into())
            })
        );
        let none = format!("{}.e30.", seg(r#"{"alg":"none"}"#));
        assert_eq!(peek(&none).map(|h| h.alg), Ok("none".into()));
    }

    #[test]
    fn refuses_what_is_not_plainly_a_jwt() {
        for t in [
            "a.b",
            "a.b.c.d",
            "!!!.e30.x",
            &format!("{}.e30.x", seg("[]")),
            &format!("{}.e30.x", seg(r#"{"alg":5}"#)),
            &format!("{}.e30.x", seg(r#"{"alg":"HS256","kid":7}"#)),
        ] {
            assert_eq!(peek(t), Err(AuthError::Malformed), "{t}");
        }
    }
}
