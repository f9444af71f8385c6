//! The axum router mounted at the prefix: GoTrue's paths, request parsing into GoTrue's
//! errors (never axum's plain-text rejections), the PSU check every endpoint but the e-mail
//! link makes (the API key, and for user endpoints the access token), the client's
//! address for bus events and attempt limits, and those limits on the endpoints where a
//! client guesses (checked here, before the service hashes a password or reads a row).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use magmobo_core::axum::body::{Body, to_bytes};
use magmobo_core::axum::extract::{ConnectInfo, Path, State};
use magmobo_core::axum::response::{IntoResponse, Response};
use magmobo_core::axum::routing::{delete, get, post};
use magmobo_core::axum::{Json, Router};
use serde_json::Value;

use crate::error::ApiError;
use crate::limits::Attempt;
use crate::service::{Caller, Client, Service};

/// The service, present between `init` and `stop`.
pub(crate) type Shared = Arc<ArcSwapOption<Service>>;

const MAX_BODY: usize = 64 * 1024;

pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .route("/signup", post(signup))
        .route("/token", post(token))
        .route("/logout", post(logout))
        .route("/user", get(get_user).put(put_user))
        .route("/settings", get(settings))
        .route("/verify", post(verify).get(verify_link))
        .route("/recover", post(recover))
        .route("/sessions", get(list_sessions))
        .route("/sessions/{id}", delete(delete_session))
        .route("/factors", post(enroll))
        .route("/factors/{id}", delete(unenroll))
        .route("/factors/{id}/challenge", post(challenge))
        .route("/factors/{id}/verify", post(verify_factor))
        .fallback(|| async { ApiError::new(404, "not_found", "No such auth endpoint") })
        .with_state(shared)
}

/// A parsed request: the service, query, JSON body, client and (for user endpoints) caller.
struct Call {
    service: Arc<Service>,
    query: HashMap<String, String>,
    body: Value,
    client: Client,
    caller: Option<Caller>,
}

#[derive(PartialEq)]
enum Need {
    /// The API key only (the PSU's rule).
    Key,
    /// A user's access token.
    User,
    /// Nothing (links opened from e-mail).
    Nothing,
}

fn query_map(uri: &http::Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            q.split('&')
                .filter_map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    Some((decode(k)?, decode(v)?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Percent-decoding (and `+` as space) of one query component.
fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

async fn prepare(shared: &Shared, req: http::Request<Body>, need: Need) -> Result<Call, ApiError> {
    let Some(service) = shared.load_full() else {
        return Err(ApiError::new(
            503,
            "service_unavailable",
            "MagAuth is not running",
        ));
    };
    let (parts, body) = req.into_parts();
    let client = Client {
        ip: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string()),
        user_agent: parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect()),
    };
    let mut caller = None;
    if need != Need::Nothing {
        let identity = service
            .auth
            .authenticate(&parts)
            .await
            .map_err(|r| ApiError::new(r.status, r.code, r.message))?;
        if need == Need::User {
            let claim = |name: &str| identity.claims.get(name).and_then(Value::as_str);
            let (Some(sub), Some(session)) = (claim("sub"), claim("session_id")) else {
                return Err(ApiError::unauthorized(
                    "no_authorization",
                    "This endpoint requires a Bearer token of a signed-in user",
                ));
            };
            caller = Some(Caller {
                user_id: sub.to_owned(),
                session_id: session.to_owned(),
            });
        }
    }
    let bytes = to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::new(
            413,
            "request_too_large",
            "Request body is larger than 64 KiB",
        )
    })?;
    let body = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                400,
                "bad_json",
                format!("Could not parse request body as JSON: {e}"),
            )
        })?
    };
    Ok(Call {
        service,
        query: query_map(&parts.uri),
        body,
        client,
        caller,
    })
}

fn answer(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}

fn no_content(result: Result<(), ApiError>) -> Response {
    match result {
        Ok(()) => http::StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

impl Call {
    /// Takes one attempt of `attempt` for this client and `account` (429 when over a limit).
    fn limit(&self, attempt: Attempt, account: Option<&str>) -> Result<(), ApiError> {
        self.service
            .limits
            .check(attempt, account, self.client.ip.as_deref())
    }

    /// The body's `email`, when it is a string.
    fn email(&self) -> Option<&str> {
        self.body["email"].as_str()
    }
}

/// The caller of a `Need::User` call (always present there).
fn caller(call: &Call) -> Result<&Caller, ApiError> {
    call.caller.as_ref().ok_or_else(|| {
        ApiError::unauthorized("no_authorization", "This endpoint requires a Bearer token")
    })
}

async fn signup(State(s): State<Shared>, req: http::Request<Body>) -> Response {
    answer(
        async {
            let call = prepare(&s, req, Need::Key).await?;
            call.service.signup(&call.body, &call.client).await
        }
        .await,
    )
}

async fn token(State(s): State<Shared>, req: http::Request<Body>) -> Response {
    answer(
        async {
            let call = prepare(&s, req, Need::Key).await?;
            match call.query.get("grant_type").map(String::as_str) {
                Some("password") => {
                    call.limit(Attempt::SignIn, call.email())?;
                    call.service.password_grant(&call.body, &call.client).await
                }
                Some("refresh_token") => call.service.refresh_grant(&call.body, &call.client).await,
                other => Err(ApiError::new(
                    400,
                    "validation_failed",
                    format!("unsupported_grant_type {other:?}: use password or refresh_token"),
                )),
            }
        }
        .await,
    )
}

async fn logout(State(s): State<Shared>, req: http::Request<Body>) -> Response {
    no_content(
        async {
            let call = prepare(&s, req, Need::User).await?;
            let scope = call.query.get("scope").map(String::as_str);
            call.service.logout(caller(&call)?, scope).await
        }
        .await,
    )
}

async fn get_user(State(s): State<Shared>, req: http::Request<Body>) -> Response {
    answer(
        async {
            let call = prepare(&s, req, Need::User).await?;
            let (_, user) = call.service.current(caller(&call)?).await?;
            call.service.user_json_with_factors(&user).await
        }
        .await,
    )
}

async fn put_user(State(s): State<Shared>, req: http::Request<Body>) -> Response {
    answer(
        async {
            let call = prepare(&s, req, Need::User).await?;
            call.service.update_user(caller(&call)?, &call.body).await
        }
        .await,
    )
}

async fn settings(State(s): State<Shared>, req: http::Request<Body>) -> Response {
    answer(
        async {
            let call = prepare(&s, req, Need::Key).await?;
            Ok(call.service.settings())
        }
        .await,
    )
}

async fn verify(State(s): State<Shared>, req: http::Request<Body>) -> Response {
    answer(
        async {
            let call = prepare(&s, req, Need::Key).await?;
            call.limit(Attempt::Verify, call.email())?;
            call.service.verify(&call.body, &call.client).await
        }
        .await,
    )
}

/// `GET /verify?token=&type=&redirect_to=`: the link in e-mails. Redirects (303) to
/// `redirect_to` when it lies under the site URL (else to the site URL, so the link cannot
/// be turned into an open redirect), with the session or the error in the fragment, as
/// GoTrue does.
async fn verify_link(State(s): State<Shared>, req: http::Request<Body>) -> Response {
    let call = match prepare(&s, req, Need::Nothing).await {
        Ok(call) => call,
        Err(e) => return e.into_response(),
    };
    let site = call.service.config.site_url.clone();
    let target = call
        .query
        .get("redirect_to")
        .filter(|r| r.starts_with(&site))
        .cloned()
        .unwrap_or(site);
    let body = serde_json::json!({
        "type": call.query.get("type"),
        "token_hash": call.query.get("token"),
    });
    let enc = |v: &str| -> String {
        v.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let verified = match call.limit(Attempt::Verify, None) {
        Ok(()) => call.service.verify(&body, &call.client).await,
        Err(e) => Err(e),
    };
    let fragment = match verified {
        Ok(session) => format!(
            "access_token={}&expires_at={}&expires_in={}&refresh_token={}&token_type=bearer&type={}",
            enc(session["access_token"].as_str().unwrap_or_default()),
            session["expires_at"],
            session["expires_in"],
            enc(session["refresh_token"].as_str().unwrap_or_default()),
            enc(body["type"].as_str().unwrap_or_default()),
        ),
        Err(e) => format!(
            "error=access_denied&error_code={}&error_description={}",
            enc(&e.error_code),
            enc(&e.msg)
        ),
    };
    let location = format!("{target}#{fragment}");
    match http::HeaderValue::from_str(&location) {
        Ok(v) => (http::StatusCode::SEE_OTHER, [(http::header::LOCATION, v)]).into_response(),
        Err(_) => ApiError::validation("redirect_to is not a valid URL").into_response(),
    }
}

async fn recover(State(s): State<Shared>, req: http::Request<Body>) -> Response {
    answer(
        async {
            let call = prepare(&s, req, Need::Key).await?;
            call.limit(Attempt::Recover, call.email())?;
            call.service.recover(&call.body).await
        }
        .await,
    )
}

async fn list_sessions(State(s): State<Shared>, req: http::Request<Body>) -> Response {
    answer(
        async {
            let call = prepare(&s, req, Need::User).await?;
            call.service.sessions(caller(&call)?).await
        }
        .await,
    )
}

async fn delete_session(
    State(s): State<Shared>,
    Path(id): Path<String>,
    req: http::Request<Body>,
) -> Response {
    no_content(
        async {
            let call = prepare(&s, req, Need::User).await?;
            call.service.revoke_session(caller(&call)?, &id).await
        }
        .await,
    )
}

async fn enroll(State(s): State<Shared>, req: http::Request<Body>) -> Response {
    answer(
        async {
            let call = prepare(&s, req, Need::User).await?;
            call.service.enroll(caller(&call)?, &call.body).await
        }
        .await,
    )
}

async fn unenroll(
    State(s): State<Shared>,
    Path(id): Path<String>,
    req: http::Request<Body>,
) -> Response {
    answer(
        async {
            let call = prepare(&s, req, Need::User).await?;
            call.service.unenroll(caller(&call)?, &id).await
        }
        .await,
    )
}

async fn challenge(
    State(s): State<Shared>,
    Path(id): Path<String>,
    req: http::Request<Body>,
) -> Response {
    answer(
        async {
            let call = prepare(&s, req, Need::User).await?;
            call.service
                .challenge(caller(&call)?, &id, &call.client)
                .await
        }
        .await,
    )
}

async fn verify_factor(
    State(s): State<Shared>,
    Path(id): Path<String>,
    req: http::Request<Body>,
) -> Response {
    answer(
        async {
            let call = prepare(&s, req, Need::User).await?;
            let caller = caller(&call)?;
            call.limit(Attempt::FactorVerify, Some(&caller.user_id))?;
            call.service.verify_factor(caller, &id, &call.body).await
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_components_are_decoded() {
        let uri: http::Uri = "/token?grant_type=password&x=a%20b+c&bad=%zz"
            .parse()
            .unwrap_or_default();
        let q = super::query_map(&uri);
        assert_eq!(q.get("grant_type").map(String::as_str), Some("password"));
        assert_eq!(q.get("x").map(String::as_str), Some("a b c"));
        assert!(!q.contains_key("bad"));
    }
}
