//! The console's JSON errors: `{"code":"MM403","message":"...","hint":"..."}`, one stable code
//! per status, so clients branch on the code and people read the message and the hint.

use magmobo_core::axum::Json;
use magmobo_core::axum::response::{IntoResponse, Response};
use magmobo_core::roles::platform::PlatformError;
use serde::Serialize;

/// A refusal or failure as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// HTTP status.
    #[serde(skip)]
    pub status: u16,
    /// `MM` and the status, e.g. `MM403`.
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl ApiError {
    /// An error with `status` and `message`; the code is `MM<status>`.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: format!("MM{status}"),
            message: message.into(),
            hint: None,
        }
    }

    /// The same error with a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// A storage failure: logged in full, answered without internals.
    pub fn storage(error: impl std::fmt::Display) -> Self {
        tracing::error!(target: "magconsole", %error, "platform storage failed");
        ApiError::new(500, "the platform's storage failed; see the server log")
    }
}

impl From<PlatformError> for ApiError {
    fn from(e: PlatformError) -> Self {
        match &e {
            PlatformError::Storage(inner) => ApiError::storage(inner),
            PlatformError::Forbidden { permission, .. } => {
                ApiError::new(403, e.to_string()).hint(format!("needs permission {permission}"))
            }
            PlatformError::OwnerOnly(_) => {
                ApiError::new(403, e.to_string()).hint("needs the owner role")
            }
            _ => ApiError::new(e.status(), e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = http::StatusCode::from_u16(self.status)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self)).into_response()
    }
}

/// Handlers' result.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use magmobo_core::roles::platform::Permission;

    #[test]
    fn refusals_keep_their_shape_and_storage_errors_leak_nothing() {
        let forbidden = ApiError::from(PlatformError::Forbidden {
            permission: Permission::KeysWrite,
            message: "key:a (role viewer) may not do this".into(),
        });
        let json = serde_json::to_value(&forbidden).ok();
        assert_eq!(
            json,
            Some(serde_json::json!({
                "code": "MM403",
                "message": "key:a (role viewer) may not do this",
                "hint": "needs permission keys.write",
            }))
        );
        let last = ApiError::from(PlatformError::LastOwner("key:a".into()));
        assert_eq!((last.status, last.code.as_str()), (409, "MM409"));
        let failed = ApiError::from(PlatformError::Storage(magmobo_core::Error::part(
            "storage",
            "password authentication failed for user secret_admin",
        )));
        assert_eq!(failed.status, 500);
        assert!(!failed.message.contains("secret_admin"));
    }
}
