//! The errors MagGate answers with over HTTP, shaped like PostgREST's
//! (`{"code","message","details","hint"}` plus a status), and the mapping from database
//! SQLSTATEs to HTTP statuses that PostgREST applies.

use crate::request;

/// A refused or failed request: what goes on the wire.
///
/// Codes are PostgREST's (`PGRST...`) or SQLSTATEs (`42703`, `23505`...) so clients written
/// against PostgREST keep working; the few MagGate-only conditions use `MG...` codes, listed
/// in the crate docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// PostgREST code or SQLSTATE.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// More detail, `null` when absent.
    pub details: Option<String>,
    /// What to do about it, `null` when absent.
    pub hint: Option<String>,
    /// Structured details, written instead of [`ApiError::details`] when present (PGRST201
    /// lists the candidate relationships as objects, as PostgREST does).
    pub details_json: Option<Box<serde_json::Value>>,
}

/// Result alias for request handling.
pub type ApiResult<T> = std::result::Result<T, ApiError>;

impl ApiError {
    /// An error with no details nor hint.
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
            details: None,
            hint: None,
            details_json: None,
        }
    }

    /// Adds details.
    pub fn details(mut self, details: impl Into<String>) -> ApiError {
        self.details = Some(details.into());
        self
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> ApiError {
        self.hint = Some(hint.into());
        self
    }

    /// PGRST127: something PostgREST offers that this dialect or MagGate cannot do yet.
    pub fn not_supported(what: impl Into<String>) -> ApiError {
        ApiError::new(400, "PGRST127", "Feature not implemented").details(what)
    }

    /// 22P02: a value that cannot be of the column's type.
    pub fn invalid_text(type_name: &str, value: &str) -> ApiError {
        ApiError::new(
            400,
            "22P02",
            format!("invalid input syntax for type {type_name}: \"{value}\""),
        )
    }

    /// PGRST102: a body that is not the JSON expected.
    pub fn invalid_body(details: impl Into<String>) -> ApiError {
        ApiError::new(400, "PGRST102", "Empty or invalid json").details(details)
    }

    /// The PostgREST error body.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "code": self.code,
            "message": self.message,
            "details": match &self.details_json {
                Some(j) => (**j).clone(),
                None => serde_json::json!(self.details),
            },
            "hint": self.hint,
        })
        .to_string()
    }

    /// An error raised by the database, classified by its SQLSTATE (when the driver exposes
    /// one) as PostgREST does. `message` is the database's own text.
    pub fn from_database(sqlstate: Option<&str>, message: &str) -> ApiError {
        // MySQL reports every constraint failure as 23000 and SQLite as HY000 at best: the
        // message then tells which PostgreSQL SQLSTATE it corresponds to.
        let code = match sqlstate {
            Some(s) if s != "23000" && s != "HY000" => s.to_owned(),
            Some(s) => guess_sqlstate(message).unwrap_or_else(|| s.to_owned()),
            None => guess_sqlstate(message).unwrap_or_else(|| "XX000".to_owned()),
        };
        ApiError::new(sqlstate_status(&code), &code, message.to_owned())
    }
}

impl From<request::Error> for ApiError {
    fn from(e: request::Error) -> ApiError {
        ApiError {
            status: e.status(),
            code: e.code().to_owned(),
            message: e.message(),
            details: e.details(),
            hint: e.hint(),
            details_json: None,
        }
    }
}

/// PostgREST's SQLSTATE → HTTP status table (`pgErrorStatus`). Anything unlisted is 400.
pub fn sqlstate_status(code: &str) -> u16 {
    let class = code.get(..2).unwrap_or("");
    match code {
        "23503" | "23505" => 409,
        "25006" => 405,
        "P0001" => 400,
        "42883" | "42P01" => 404,
        "42P17" => 500,
        "42501" => 403,
        _ => match class {
            "08" | "53" => 503,
            "0L" | "0P" | "28" => 403,
            "09" | "25" | "2D" | "38" | "39" | "3B" | "40" | "54" | "55" | "57" | "58" | "F0"
            | "HV" | "P0" | "XX" => 500,
            "" => 500,
            _ => 400,
        },
    }
}

/// SQLite and MySQL report constraint failures with their own codes (or a generic 23000);
/// their messages are stable, so map them to PostgreSQL's SQLSTATEs for PostgREST statuses.
fn guess_sqlstate(message: &str) -> Option<String> {
    let m = message.to_ascii_lowercase();
    let code = if m.contains("unique constraint failed") || m.contains("duplicate entry") {
        "23505"
    } else if m.contains("foreign key constraint") {
        "23503"
    } else if m.contains("not null constraint failed") || m.contains("cannot be null") {
        "23502"
    } else if m.contains("check constraint") {
        "23514"
    } else if m.contains("incorrect integer value")
        || m.contains("incorrect decimal value")
        || m.contains("datatype mismatch")
        || m.contains("truncated incorrect")
    {
        "22P02"
    } else if m.contains("readonly database") || m.contains("read-only") {
        "25006"
    } else if m.contains("timeout") || m.contains("interrupted") {
        "57014"
    } else {
        return None;
    };
    Some(code.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_postgrest() {
        for (code, status) in [
            ("23505", 409),
            ("23503", 409),
            ("23502", 400),
            ("22P02", 400),
            ("42501", 403),
            ("42P01", 404),
            ("08006", 503),
            ("57014", 500),
            ("40001", 500),
            ("XX000", 500),
        ] {
            assert_eq!(sqlstate_status(code), status, "{code}");
        }
    }

    #[test]
    fn foreign_messages_map_to_sqlstates() {
        let e = ApiError::from_database(None, "UNIQUE constraint failed: items.name");
        assert_eq!((e.status, e.code.as_str()), (409, "23505"));
        let e = ApiError::from_database(None, "Duplicate entry 'a' for key 'name'");
        assert_eq!(e.code, "23505");
        let e = ApiError::from_database(None, "Column 'name' cannot be null");
        assert_eq!((e.status, e.code.as_str()), (400, "23502"));
        let e = ApiError::from_database(Some("23505"), "dup");
        assert_eq!(e.status, 409);
    }
}
