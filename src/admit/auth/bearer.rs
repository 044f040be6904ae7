//! The one `Authorization: Bearer` parser (request step 1 for tenants, and the admin API): scheme
//! case-insensitive, the token is everything after the first whitespace, trimmed. Credentials longer
//! than [`MAX_TOKEN`] are refused before any verification work. Pure.

use super::error::AuthError;

/// Longest credential accepted (JWTs with many claims stay far below it).
pub const MAX_TOKEN: usize = 8 * 1024;

/// Extracts the bearer token from an `Authorization` header value (scheme case-insensitive).
pub fn bearer_token(header: Option<&[u8]>) -> Result<&str, AuthError> {
    let raw = header.ok_or(AuthError::Missing)?;
    if raw.len() > MAX_TOKEN + 64 {
        return Err(AuthError::TooLong);
    }
    let text = std::str::from_utf8(raw).map_err(|_| AuthError::Malformed)?.trim();
    let (scheme, token) = text.split_once(char::is_whitespace).ok_or(AuthError::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::BadScheme);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    if token.len() > MAX_TOKEN {
        return Err(AuthError::TooLong);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_token_after_the_scheme() {
        assert_eq!(bearer_token(Some(b"Bearer abc")), Ok("abc"));
        assert_eq!(bearer_token(Some(b"bEaReR \t abc ")), Ok("abc"));
        assert_eq!(bearer_token(None), Err(AuthError::Missing));
        assert_eq!(bearer_token(Some(b"Bearer")), Err(AuthError::Missing));
        assert_eq!(bearer_token(Some(b"Bearer   ")), Err(AuthError::Missing));
        assert_eq!(bearer_token(Some(b"Basic abc")), Err(AuthError::BadScheme));
        assert_eq!(bearer_token(Some(b"Bearer \xff")), Err(AuthError::Malformed));
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN + 1));
        assert_eq!(bearer_token(Some(long.as_bytes())), Err(AuthError::TooLong));
        let ok = format!("Bearer {}", "a".repeat(MAX_TOKEN));
        assert!(bearer_token(Some(ok.as_bytes())).is_ok());
    }
}
