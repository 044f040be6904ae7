//! `validate_app_token`: `Authorization: Bearer <app key>` parsing and key lookup (completion-api.md §1.2).

use axum::http::{HeaderMap, header};

use crate::json::ApiError;
use crate::state::{AppEntry, Shared};

/// Resolves the app of the request or returns Dify's 401 (or the 400 of a failed tuple unpack).
pub(crate) fn authenticate<'a>(shared: &'a Shared, headers: &HeaderMap) -> Result<&'a AppEntry, ApiError> {
    let raw = headers
        .get(header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let Some(raw) = raw.filter(|h| h.contains(' ')) else {
        return Err(ApiError::unauthorized(
            "Authorization header must be provided and start with 'Bearer'",
        ));
    };
    let (scheme, token) = split_once_ws(&raw)?;
    if scheme.to_lowercase() != "bearer" {
        return Err(ApiError::unauthorized("Authorization scheme must be 'Bearer'"));
    }
    shared
        .app(token)
        .ok_or_else(|| ApiError::unauthorized("Access token is invalid"))
}

/// Python `scheme, token = header.split(None, 1)`, including its unpack `ValueError`.
fn split_once_ws(raw: &str) -> Result<(&str, &str), ApiError> {
    let s = raw.trim_start_matches(is_py_space);
    let parts = match s.find(is_py_space) {
        None if s.is_empty() => None,
        None => Some((s, None)),
        Some(i) => {
            let rest = s[i..].trim_start_matches(is_py_space);
            Some((&s[..i], (!rest.is_empty()).then_some(rest)))
        }
    };
    match parts {
        Some((scheme, Some(token))) => Ok((scheme, token)),
        Some((_, None)) => Err(unpack_error(1)),
        None => Err(unpack_error(0)),
    }
}

fn unpack_error(got: usize) -> ApiError {
    ApiError::invalid_param(&format!("not enough values to unpack (expected 2, got {got})"))
}

fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_python() {
        assert_eq!(
            split_once_ws("Bearer  app-1 x").ok().unwrap(),
            ("Bearer", "app-1 x")
        );
        assert!(split_once_ws("Bearer ").is_err());
        assert!(split_once_ws(" ").is_err());
    }
}
