//! GoTrue's JSON shapes: the user object, the session object, `/settings`, and the access
//! token's claims. supabase-js reads exactly these fields.

use serde_json::{Value, json};

use crate::store::{Factor, Session, User};

/// RFC 3339 in UTC (`2026-01-02T03:04:05Z`), as GoTrue writes times.
pub fn time(secs: i64) -> Value {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        .unwrap_or(Value::Null)
}

fn opt_time(secs: Option<i64>) -> Value {
    secs.map_or(Value::Null, time)
}

/// GoTrue's user object.
pub fn user(u: &User, role: &str) -> Value {
    json!({
        "id": u.id,
        "aud": "authenticated",
        "role": role,
        "email": u.email,
        "email_confirmed_at": opt_time(u.email_confirmed_at),
        "confirmed_at": opt_time(u.email_confirmed_at),
        "confirmation_sent_at": opt_time(u.confirmation_sent_at),
        "phone": "",
        "last_sign_in_at": opt_time(u.last_sign_in_at),
        "app_metadata": u.app_metadata,
        "user_metadata": u.user_metadata,
        "identities": [],
        "created_at": time(u.created_at),
        "updated_at": time(u.updated_at),
        "is_anonymous": false,
    })
}

/// The access token's claims, as GoTrue issues them.
pub fn claims(u: &User, role: &str, s: &Session, now: i64, expires_at: i64) -> Value {
    let password = json!({ "method": "password", "timestamp": s.created_at });
    let (aal, amr) = match (s.aal.as_deref(), s.mfa_at) {
        (Some("aal2"), Some(at)) => (
            "aal2",
            json!([{ "method": "totp", "timestamp": at }, password]),
        ),
        _ => ("aal1", json!([password])),
    };
    json!({
        "aud": "authenticated",
        "exp": expires_at,
        "iat": now,
        "sub": u.id,
        "email": u.email,
        "phone": "",
        "app_metadata": u.app_metadata,
        "user_metadata": u.user_metadata,
        "role": role,
        "aal": aal,
        "amr": amr,
        "session_id": s.id,
        "is_anonymous": false,
    })
}

/// A session response: `{access_token, token_type, expires_in, expires_at, refresh_token,
/// user}`.
pub fn session(
    access: String,
    refresh: String,
    expires_in: i64,
    expires_at: i64,
    user: Value,
) -> Value {
    json!({
        "access_token": access,
        "token_type": "bearer",
        "expires_in": expires_in,
        "expires_at": expires_at,
        "refresh_token": refresh,
        "user": user,
    })
}

/// One entry of `GET /sessions` (a MagMoBo addition).
pub fn session_entry(s: &Session, current: &str) -> Value {
    json!({
        "id": s.id,
        "created_at": time(s.created_at),
        "refreshed_at": time(s.refreshed_at),
        "user_agent": s.user_agent,
        "ip": s.ip,
        "current": s.id == current,
    })
}

/// One factor, as GoTrue lists it in the user object.
pub fn factor(f: &Factor) -> Value {
    json!({
        "id": f.id,
        "friendly_name": f.friendly_name,
        "factor_type": f.factor_type,
        "status": f.status,
        "created_at": time(f.created_at),
        "updated_at": time(f.updated_at),
    })
}
