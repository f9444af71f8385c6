//! Why a bearer token was refused, as stable values.
//!
//! PostgREST answers every token failure with one of two codes (`PGRST301`: the token could not
//! be decoded or verified; `PGRST303`: its claims did not validate), and Supabase clients branch
//! on them, so those are the HTTP codes. The finer reason (`token_expired`, ...) is stable too:
//! it opens the message, names the bus event's `reason`, and goes into the `WWW-Authenticate`
//! value of RFC 6750. No message names a secret, a key or an expected claim value.

/// One reason a JWT was refused. Each maps to a PostgREST code and a stable reason string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum TokenRejection {
    /// Not three base64url parts, or a header or payload that is not a JSON object.
    #[error("JWT could not be decoded: send `Authorization: Bearer <header.payload.signature>`")]
    Malformed,
    /// `alg` is `none`, or not an algorithm of the configured keys (algorithm confusion).
    #[error("JWT algorithm is not accepted: sign the token with the algorithm of the server's key")]
    WrongAlgorithm,
    /// The header names a `kid` that is not in the key set, even after re-reading it.
    #[error("JWT key id is unknown: the token was signed by a key this server does not know")]
    UnknownKey,
    /// The signature does not verify with any configured key.
    #[error("JWT signature is invalid: the token was not signed by a key this server trusts")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("JWT expired: sign in again or refresh the token")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("JWT not yet valid: its `nbf` time has not come; check the issuer's clock")]
    NotYetValid,
    /// `aud` is missing or names another audience.
    #[error("JWT not in audience: the token was issued for another service")]
    WrongAudience,
    /// `iss` names an issuer that is not trusted.
    #[error("JWT issuer is not trusted: the token was issued by another service")]
    WrongIssuer,
    /// A registered claim has the wrong type (`exp` not a number, `role` not a string...).
    #[error("JWT claims are invalid: `exp`/`nbf` must be numbers and `role` a non-empty string")]
    InvalidClaims,
}

impl TokenRejection {
    /// PostgREST's error code: `PGRST301` (not decodable or not verifiable) or `PGRST303`
    /// (claims validation failed).
    pub fn code(self) -> &'static str {
        match self {
            TokenRejection::Malformed
            | TokenRejection::WrongAlgorithm
            | TokenRejection::UnknownKey
            | TokenRejection::BadSignature => "PGRST301",
            TokenRejection::Expired
            | TokenRejection::NotYetValid
            | TokenRejection::WrongAudience
            | TokenRejection::WrongIssuer
            | TokenRejection::InvalidClaims => "PGRST303",
        }
    }

    /// The stable reason, distinct per variant (bus events, logs, dashboards).
    pub fn reason(self) -> &'static str {
        match self {
            TokenRejection::Malformed => "token_malformed",
            TokenRejection::WrongAlgorithm => "token_wrong_algorithm",
            TokenRejection::UnknownKey => "token_unknown_key",
            TokenRejection::BadSignature => "token_bad_signature",
            TokenRejection::Expired => "token_expired",
            TokenRejection::NotYetValid => "token_not_yet_valid",
            TokenRejection::WrongAudience => "token_wrong_audience",
            TokenRejection::WrongIssuer => "token_wrong_issuer",
            TokenRejection::InvalidClaims => "token_invalid_claims",
        }
    }

    /// The message sent to the client: the reason, then what is wrong and what to do.
    pub fn message(self) -> String {
        format!("{} ({})", self, self.reason())
    }

    /// A `WWW-Authenticate` value for this rejection (RFC 6750 `invalid_token`).
    pub fn www_authenticate(self) -> String {
        format!(
            "Bearer error=\"invalid_token\", error_description=\"{}\"",
            self.reason()
        )
    }

    /// The rejection as the PSU role returns it: 401 with the code and message.
    pub fn to_auth_rejection(self) -> magmobo_core::roles::auth::AuthRejection {
        magmobo_core::roles::auth::AuthRejection {
            status: 401,
            code: self.code().to_owned(),
            message: self.message(),
        }
    }

    /// Every variant, for tests and documentation tables.
    pub const ALL: [TokenRejection; 9] = [
        TokenRejection::Malformed,
        TokenRejection::WrongAlgorithm,
        TokenRejection::UnknownKey,
        TokenRejection::BadSignature,
        TokenRejection::Expired,
        TokenRejection::NotYetValid,
        TokenRejection::WrongAudience,
        TokenRejection::WrongIssuer,
        TokenRejection::InvalidClaims,
    ];
}

impl From<&jsonwebtoken::errors::Error> for TokenRejection {
    fn from(error: &jsonwebtoken::errors::Error) -> Self {
        use jsonwebtoken::errors::ErrorKind;
        match error.kind() {
            ErrorKind::InvalidSignature => TokenRejection::BadSignature,
            ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidAlgorithmName
            | ErrorKind::UnsupportedAlgorithm
            | ErrorKind::MissingAlgorithm => TokenRejection::WrongAlgorithm,
            ErrorKind::ExpiredSignature => TokenRejection::Expired,
            ErrorKind::ImmatureSignature => TokenRejection::NotYetValid,
            ErrorKind::InvalidAudience => TokenRejection::WrongAudience,
            ErrorKind::InvalidIssuer => TokenRejection::WrongIssuer,
            ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => {
                TokenRejection::WrongAudience
            }
            ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => TokenRejection::WrongIssuer,
            ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) => {
                TokenRejection::InvalidClaims
            }
            _ => TokenRejection::Malformed,
        }
    }
}
