//! Why a tenant's call was not authenticated (request step 1): each variant is the 401's message and
//! a bounded metric label. Pure.

/// Why a call was not authenticated. Each variant is a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("Authorization header must be provided and start with 'Bearer'")]
    Missing,
    /// A scheme other than Bearer.
    #[error("Authorization scheme must be 'Bearer'")]
    BadScheme,
    /// Not a well-formed JWT, or its claims have the wrong types.
    #[error("Access token is malformed")]
    Malformed,
    /// The header's algorithm is not the one pinned for the key (including `none`).
    #[error("Access token algorithm is not accepted")]
    AlgorithmNotAllowed,
    /// The header's `kid` names no configured key.
    #[error("Access token key id is unknown")]
    UnknownKeyId,
    /// No key verifies the signature.
    #[error("Access token signature is invalid")]
    BadSignature,
    /// `exp` has passed.
    #[error("Access token has expired")]
    Expired,
    /// `exp` is missing.
    #[error("Access token has no expiry (exp)")]
    MissingExp,
    /// `nbf` is in the future.
    #[error("Access token is not valid yet")]
    NotYetValid,
    /// `iss` is missing or not the configured issuer.
    #[error("Access token issuer is not accepted")]
    WrongIssuer,
    /// `aud` is missing or not the configured audience.
    #[error("Access token audience is not accepted")]
    WrongAudience,
    /// The tenant claim is missing or empty.
    #[error("Access token names no tenant")]
    MissingTenant,
    /// The credentials are longer than any the gateway issues or accepts.
    #[error("Access token is too long")]
    TooLong,
    /// The key that signed the token may not sign for its tenant.
    #[error("Access token is signed by a key of another tenant")]
    WrongTenant,
    /// The token lives longer than `auth.max_token_lifetime`, or has no `iat` while that is set.
    #[error("Access token lives longer than the gateway accepts")]
    LifetimeTooLong,
    /// The token (its `jti`, or its issue time) was revoked.
    #[error("Access token has been revoked")]
    Revoked,
    /// No gateway API key matches.
    #[error("API key is invalid")]
    UnknownApiKey,
    /// The gateway API key has expired.
    #[error("API key has expired")]
    ApiKeyExpired,
}

impl AuthError {
    /// Every reason, for metric pre-creation.
    pub const ALL: [AuthError; 18] = [
        Self::Missing,
        Self::BadScheme,
        Self::Malformed,
        Self::AlgorithmNotAllowed,
        Self::UnknownKeyId,
        Self::BadSignature,
        Self::Expired,
        Self::MissingExp,
        Self::NotYetValid,
        Self::WrongIssuer,
        Self::WrongAudience,
        Self::MissingTenant,
        Self::TooLong,
        Self::WrongTenant,
        Self::LifetimeTooLong,
        Self::Revoked,
        Self::UnknownApiKey,
        Self::ApiKeyExpired,
    ];

    /// Bounded label for metrics and logs.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::BadScheme => "bad_scheme",
            Self::Malformed => "malformed",
            Self::AlgorithmNotAllowed => "algorithm",
            Self::UnknownKeyId => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::MissingExp => "missing_exp",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "issuer",
            Self::WrongAudience => "audience",
            Self::MissingTenant => "missing_tenant",
            Self::TooLong => "too_long",
            Self::WrongTenant => "wrong_tenant",
            Self::LifetimeTooLong => "lifetime",
            Self::Revoked => "revoked",
            Self::UnknownApiKey => "unknown_api_key",
            Self::ApiKeyExpired => "api_key_expired",
        }
    }
}
