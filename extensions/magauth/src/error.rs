//! Errors: [`Error`] for what goes wrong inside MagAuth (storage, signing, mail), and
//! [`ApiError`], the HTTP answer in GoTrue's JSON shape `{code, error_code, msg}` with its
//! statuses, so supabase-js maps each failure to the same `AuthError` it gets from Supabase.

use magmobo_core::axum::Json;
use magmobo_core::axum::response::{IntoResponse, Response};

/// A boxed foreign error (signer, mailer).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can fail inside MagAuth. Never shown to HTTP clients as is: handlers log it and
/// answer 500 `unexpected_failure`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The board's Storage failed.
    #[error("MagAuth storage error: {0}")]
    Storage(#[from] magmobo_core::Error),
    /// The access-token signer failed (e.g. no HS256 secret configured).
    #[error("could not sign the access token: {0}; check the signer given to MagAuth::new")]
    Sign(#[source] BoxError),
    /// Hashing a password failed.
    #[error("could not hash the password: {0}")]
    Hash(String),
    /// The mailer failed.
    #[error("could not send the e-mail: {0}; check the Mailer given to MagAuth")]
    Mail(#[source] BoxError),
    /// A stored row is not what MagAuth wrote (edited by hand?).
    #[error("MagAuth table row is malformed: {0}")]
    Corrupt(String),
    /// The configuration is unusable.
    #[error("MagAuth configuration: {0}")]
    Config(String),
}

/// `Result` with MagAuth's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An HTTP error in GoTrue's shape.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// GoTrue's stable `error_code` (`invalid_credentials`, `weak_password`...).
    pub error_code: String,
    /// Human-readable message (GoTrue's wording where it has one).
    pub msg: String,
    /// For `weak_password`: the reasons (`length`).
    pub weak_reasons: Vec<&'static str>,
    /// For 429: seconds until the client may try again (the `Retry-After` header).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with `status`, `error_code` and `msg`.
    pub fn new(status: u16, error_code: impl Into<String>, msg: impl Into<String>) -> Self {
        ApiError {
            status,
            error_code: error_code.into(),
            msg: msg.into(),
            weak_reasons: Vec::new(),
            retry_after: None,
        }
    }

    /// 429 `over_request_rate_limit` (GoTrue's wording), with `Retry-After` in seconds.
    pub fn too_many_requests(retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(429, "over_request_rate_limit", "Request rate limit reached")
        }
    }

    /// 429 `over_email_send_rate_limit` with `Retry-After`: too many mails to one address
    /// or from the project.
    pub fn over_email_send_rate_limit(retry_after: u64, message: String) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(429, "over_email_send_rate_limit", message)
        }
    }

    /// 400 `validation_failed`.
    pub fn validation(msg: impl Into<String>) -> Self {
        ApiError::new(400, "validation_failed", msg)
    }

    /// 400 `invalid_credentials`: wrong e-mail or password, never saying which.
    pub fn invalid_credentials() -> Self {
        ApiError::new(400, "invalid_credentials", "Invalid login credentials")
    }

    /// 401 `no_authorization` / `bad_jwt`.
    pub fn unauthorized(error_code: &'static str, msg: impl Into<String>) -> Self {
        ApiError::new(401, error_code, msg)
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({
            "code": self.status,
            "error_code": self.error_code,
            "msg": self.msg,
        });
        if !self.weak_reasons.is_empty() {
            body["weak_password"] = serde_json::json!({ "reasons": self.weak_reasons });
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.error_code, self.msg)
    }
}

impl std::error::Error for ApiError {}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        tracing::error!(target: "magauth", %error, "request failed");
        ApiError::new(
            500,
            "unexpected_failure",
            "Unexpected failure, please check server logs for more information",
        )
    }
}

impl From<magmobo_core::Error> for ApiError {
    fn from(error: magmobo_core::Error) -> Self {
        ApiError::from(Error::Storage(error))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = http::StatusCode::from_u16(self.status)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
        }
        response
    }
}
