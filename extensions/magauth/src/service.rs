//! What each endpoint does, free of HTTP plumbing: sign-up, the password and refresh-token
//! grants with rotation and reuse detection, sign-out scopes, password change, e-mail
//! verification and recovery, sessions. Bus events go out from here.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use magmobo_core::board::BusHandle;
use magmobo_core::roles::auth::Auth;
use serde_json::{Value, json};

use crate::config::AuthConfig;
use crate::error::{ApiError, Error};
use crate::limits::Limiter;
use crate::mail::{Mail, MailKind, Mailer};
use crate::password;
use crate::shapes;
use crate::store::{Session, Store, User};
use crate::tokens::{TokenSigner, otp, random_token, sha256_hex};

/// Longest password accepted (argon2 takes any length; this bounds the work per request).
const MAX_PASSWORD_LEN: usize = 1024;

/// Who made the request, as far as the server can tell.
#[derive(Debug, Clone, Default)]
pub(crate) struct Client {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A signed-in caller: the `sub` and `session_id` of a valid access token.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub user_id: String,
    pub session_id: String,
}

pub(crate) struct Service {
    pub config: AuthConfig,
    pub store: Store,
    pub signer: Arc<dyn TokenSigner>,
    pub mailer: Option<Arc<dyn Mailer>>,
    pub auth: Arc<dyn Auth>,
    pub bus: Option<BusHandle>,
    pub limits: Limiter,
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

type ApiResult<T> = Result<T, ApiError>;

fn normalise_email(email: &str) -> ApiResult<String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 255
        && !email.chars().any(char::is_whitespace)
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
    if valid {
        Ok(email)
    } else {
        Err(ApiError::new(
            400,
            "email_address_invalid",
            "Unable to validate email address: invalid format",
        ))
    }
}

impl Service {
    fn publish(&self, topic: &str, payload: Value) {
        if let Some(bus) = &self.bus
            && let Err(e) = bus.publish(topic, payload)
        {
            tracing::warn!(target: "magauth", topic, error = %e, "could not publish");
        }
    }

    pub fn user_json(&self, user: &User) -> Value {
        shapes::user(user, &self.config.role)
    }

    /// The user object with its MFA factors (as `GET /user` answers it).
    pub async fn user_json_with_factors(&self, user: &User) -> ApiResult<Value> {
        let mut body = self.user_json(user);
        let factors = self.store.factors_of(&user.id).await?;
        if !factors.is_empty() {
            body["factors"] = Value::Array(factors.iter().map(shapes::factor).collect());
        }
        Ok(body)
    }

    fn check_password(&self, password: &str) -> ApiResult<()> {
        if password.chars().count() < self.config.min_password_length {
            let mut e = ApiError::new(
                422,
                "weak_password",
                format!(
                    "Password should be at least {} characters.",
                    self.config.min_password_length
                ),
            );
            e.weak_reasons = vec!["length"];
            return Err(e);
        }
        if password.len() > MAX_PASSWORD_LEN {
            return Err(ApiError::new(
                422,
                "validation_failed",
                format!("Password should be at most {MAX_PASSWORD_LEN} bytes."),
            ));
        }
        Ok(())
    }

    /// Opens a session for `user` and answers GoTrue's session object.
    async fn new_session(&self, user: &User, client: &Client) -> ApiResult<Value> {
        let now = now();
        let session = Session {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user.id.clone(),
            created_at: now,
            refreshed_at: now,
            user_agent: client.user_agent.clone(),
            ip: client.ip.clone(),
            aal: None,
            mfa_at: None,
        };
        self.store.insert_session(&session).await?;
        self.store.signed_in(&user.id, now).await?;
        let refresh = random_token();
        self.store
            .insert_refresh_token(&sha256_hex(&refresh), &user.id, &session.id, None, now)
            .await?;
        let mut user = user.clone();
        user.last_sign_in_at = Some(now);
        self.session_body(&user, &session, refresh)
    }

    pub(crate) fn session_body(
        &self,
        user: &User,
        session: &Session,
        refresh: String,
    ) -> ApiResult<Value> {
        let now = now();
        let ttl = self.config.access_token_ttl.as_secs() as i64;
        let claims = shapes::claims(user, &self.config.role, session, now, now + ttl);
        let access = self.signer.sign(&claims).map_err(Error::Sign)?;
        Ok(shapes::session(
            access,
            refresh,
            ttl,
            now + ttl,
            self.user_json(user),
        ))
    }

    async fn send_mail(&self, user: &User, kind: MailKind) -> ApiResult<()> {
        let Some(mailer) = &self.mailer else {
            return Err(ApiError::new(
                422,
                "email_provider_disabled",
                "Email sending is not configured on this server",
            ));
        };
        let code = otp();
        let token_hash = sha256_hex(&format!("{}{code}", user.email));
        let (token_type, link_type, subject) = match kind {
            MailKind::Confirmation => ("confirmation", "signup", "Confirm your signup"),
            MailKind::Recovery => ("recovery", "recovery", "Reset your password"),
        };
        // Recovery mails are counted in `recover`, before it looks the address up, so the
        // limit answers alike whether the address has an account or not.
        if kind == MailKind::Confirmation {
            self.limits.check_mail(token_type, &user.email)?;
        }
        let now = now();
        self.store
            .insert_one_time_token(&token_hash, &user.id, token_type, now)
            .await?;
        let link = format!(
            "{}{}/verify?token={token_hash}&type={link_type}",
            self.config.site_url.trim_end_matches('/'),
            self.config.prefix
        );
        let mail = Mail {
            kind,
            to: user.email.clone(),
            subject: subject.to_owned(),
            body: format!("{subject}: follow {link}\nor enter the code {code}\n"),
            otp: code,
            token_hash,
            link,
        };
        if let Err(error) = mailer.send(&mail).await {
            self.limits.mail_not_sent(token_type, &user.email);
            tracing::error!(target: "magauth", error = %Error::Mail(error), to = %mail.to, "could not send the {token_type} e-mail");
            // GoTrue's answer, word for word: clients match on it.
            return Err(ApiError::new(
                500,
                "unexpected_failure",
                format!("Error sending {token_type} email"),
            ));
        }
        if kind == MailKind::Confirmation {
            self.store.confirmation_sent(&user.id, now).await?;
        }
        Ok(())
    }

    /// `POST /signup`.
    pub async fn signup(&self, body: &Value, client: &Client) -> ApiResult<Value> {
        if self.config.disable_signup {
            return Err(ApiError::new(
                422,
                "signup_disabled",
                "Signups not allowed for this instance",
            ));
        }
        let email = body["email"]
            .as_str()
            .ok_or_else(|| ApiError::validation("Signup requires an email address"))?;
        let email = normalise_email(email)?;
        let password = body["password"]
            .as_str()
            .ok_or_else(|| ApiError::validation("Signup requires a valid password"))?;
        self.check_password(password)?;
        let data = match &body["data"] {
            Value::Null => json!({}),
            Value::Object(o) => Value::Object(o.clone()),
            _ => return Err(ApiError::validation("`data` must be a JSON object")),
        };
        let now = now();
        let mut user = User {
            id: uuid::Uuid::new_v4().to_string(),
            email,
            password_hash: password::hash(password.to_owned()).await?,
            email_confirmed_at: (!self.config.confirm_email).then_some(now),
            confirmation_sent_at: None,
            created_at: now,
            updated_at: now,
            last_sign_in_at: None,
            app_metadata: json!({ "provider": "email", "providers": ["email"] }),
            user_metadata: data,
        };
        if !self.store.insert_user(&user).await? {
            return Err(ApiError::new(
                422,
                "user_already_exists",
                "User already registered",
            ));
        }
        if self.config.confirm_email {
            if let Err(e) = self.send_mail(&user, MailKind::Confirmation).await {
                // As GoTrue's sign-up transaction does: no account without its mail, so the
                // same address can sign up again once mail works.
                self.store.delete_unconfirmed_user(&user.id).await?;
                return Err(e);
            }
            user.confirmation_sent_at = Some(now);
            return Ok(self.user_json(&user));
        }
        let body = self.new_session(&user, client).await?;
        self.publish(
            "auth.login.succeeded",
            json!({ "user_id": user.id, "ip": client.ip, "method": "signup" }),
        );
        Ok(body)
    }

    /// `POST /token?grant_type=password`.
    pub async fn password_grant(&self, body: &Value, client: &Client) -> ApiResult<Value> {
        let (Some(email), Some(password)) = (body["email"].as_str(), body["password"].as_str())
        else {
            return Err(ApiError::validation(
                "Sign in with a password requires an email and a password",
            ));
        };
        let email = email.trim().to_lowercase();
        let user = self.store.user_by_email(&email).await?;
        let ok = password::verify(
            password.to_owned(),
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await?;
        let user = match (ok, user) {
            (true, Some(user)) => user,
            (_, user) => {
                self.publish(
                    "auth.login.failed",
                    json!({
                        "email_hash": sha256_hex(&email),
                        "reason": if user.is_some() { "wrong_password" } else { "unknown_user" },
                        "ip": client.ip,
                    }),
                );
                return Err(ApiError::invalid_credentials());
            }
        };
        if user.email_confirmed_at.is_none() {
            return Err(ApiError::new(
                400,
                "email_not_confirmed",
                "Email not confirmed",
            ));
        }
        let body = self.new_session(&user, client).await?;
        self.publish(
            "auth.login.succeeded",
            json!({ "user_id": user.id, "ip": client.ip, "method": "password" }),
        );
        Ok(body)
    }

    /// `POST /token?grant_type=refresh_token`: rotates; a used token revokes its session.
    pub async fn refresh_grant(&self, body: &Value, client: &Client) -> ApiResult<Value> {
        let Some(token) = body["refresh_token"].as_str().filter(|t| !t.is_empty()) else {
            return Err(ApiError::validation("refresh_token required"));
        };
        let not_found = || {
            ApiError::new(
                400,
                "refresh_token_not_found",
                "Invalid Refresh Token: Refresh Token Not Found",
            )
        };
        let Some(row) = self.store.refresh_token(&sha256_hex(token)).await? else {
            return Err(not_found());
        };
        if row.revoked || !self.store.revoke_refresh_token(&row.id).await? {
            // Reuse of a rotated token: someone else may hold the chain. End the session.
            self.store.delete_session(&row.session_id).await?;
            tracing::warn!(target: "magauth", session = %row.session_id, "refresh token reused; session revoked");
            self.publish(
                "auth.refresh.reused",
                json!({ "user_id": row.user_id, "session_id": row.session_id, "ip": client.ip }),
            );
            return Err(ApiError::new(
                400,
                "refresh_token_already_used",
                "Invalid Refresh Token: Already Used",
            ));
        }
        let (Some(session), Some(user)) = (
            self.store.session(&row.session_id).await?,
            self.store.user_by_id(&row.user_id).await?,
        ) else {
            return Err(not_found());
        };
        let now = now();
        let refresh = random_token();
        self.store
            .insert_refresh_token(
                &sha256_hex(&refresh),
                &user.id,
                &session.id,
                Some(&row.id),
                now,
            )
            .await?;
        self.store.touch_session(&session.id, now).await?;
        self.session_body(&user, &session, refresh)
    }

    /// The caller's session and user, or GoTrue's 403s when either is gone.
    pub async fn current(&self, caller: &Caller) -> ApiResult<(Session, User)> {
        let Some(session) = self
            .store
            .session(&caller.session_id)
            .await?
            .filter(|s| s.user_id == caller.user_id)
        else {
            return Err(ApiError::new(
                403,
                "session_not_found",
                "Session from session_id claim in JWT does not exist",
            ));
        };
        let Some(user) = self.store.user_by_id(&caller.user_id).await? else {
            return Err(ApiError::new(
                403,
                "user_not_found",
                "User from sub claim in JWT does not exist",
            ));
        };
        Ok((session, user))
    }

    /// `POST /logout?scope=local|global|others`.
    pub async fn logout(&self, caller: &Caller, scope: Option<&str>) -> ApiResult<()> {
        match scope.unwrap_or("global") {
            "local" => {
                self.store.delete_session(&caller.session_id).await?;
            }
            "global" => {
                self.store.delete_sessions_of(&caller.user_id, None).await?;
            }
            "others" => {
                self.store
                    .delete_sessions_of(&caller.user_id, Some(&caller.session_id))
                    .await?;
            }
            other => {
                return Err(ApiError::validation(format!(
                    "Unsupported logout scope {other:?}: use local, global or others"
                )));
            }
        }
        Ok(())
    }

    /// `PUT /user`: password and `data` (user metadata) changes.
    pub async fn update_user(&self, caller: &Caller, body: &Value) -> ApiResult<Value> {
        let (_, mut user) = self.current(caller).await?;
        if body.get("email").is_some_and(|e| !e.is_null())
            || body.get("phone").is_some_and(|e| !e.is_null())
        {
            return Err(ApiError::new(
                422,
                "validation_failed",
                "Changing the email address or phone is not supported by this server yet",
            ));
        }
        let now = now();
        if let Some(password) = body.get("password").filter(|p| !p.is_null()) {
            let password = password
                .as_str()
                .ok_or_else(|| ApiError::validation("`password` must be a string"))?;
            self.check_password(password)?;
            if password::verify(password.to_owned(), Some(user.password_hash.clone())).await? {
                return Err(ApiError::new(
                    422,
                    "same_password",
                    "New password should be different from the old password.",
                ));
            }
            let hash = password::hash(password.to_owned()).await?;
            self.store.set_password(&user.id, &hash, now).await?;
            user.password_hash = hash;
            user.updated_at = now;
            if self.config.revoke_sessions_on_password_change {
                self.store
                    .delete_sessions_of(&user.id, Some(&caller.session_id))
                    .await?;
            }
        }
        match body.get("data") {
            None | Some(Value::Null) => {}
            Some(Value::Object(changes)) => {
                let mut meta = user.user_metadata.as_object().cloned().unwrap_or_default();
                for (k, v) in changes {
                    if v.is_null() {
                        meta.remove(k);
                    } else {
                        meta.insert(k.clone(), v.clone());
                    }
                }
                user.user_metadata = Value::Object(meta);
                self.store
                    .set_user_metadata(&user.id, &user.user_metadata, now)
                    .await?;
                user.updated_at = now;
            }
            Some(_) => return Err(ApiError::validation("`data` must be a JSON object")),
        }
        Ok(self.user_json(&user))
    }

    /// `POST /verify` (and `GET /verify`): confirms with a mailed code or hash and signs in.
    pub async fn verify(&self, body: &Value, client: &Client) -> ApiResult<Value> {
        let kind = body["type"].as_str().unwrap_or_default();
        let token_type = match kind {
            "signup" | "email" => "confirmation",
            "recovery" => "recovery",
            other => {
                return Err(ApiError::validation(format!(
                    "Verify requires a verification type of signup, email or recovery, not {other:?}"
                )));
            }
        };
        let hash = if let Some(hash) = body["token_hash"].as_str() {
            hash.to_owned()
        } else if let (Some(token), Some(email)) = (body["token"].as_str(), body["email"].as_str())
        {
            sha256_hex(&format!("{}{}", email.trim().to_lowercase(), token.trim()))
        } else {
            return Err(ApiError::validation(
                "Verify requires either a token_hash, or a token and an email",
            ));
        };
        let expired = || ApiError::new(403, "otp_expired", "Token has expired or is invalid");
        let Some((user_id, created_at)) = self.store.take_one_time_token(&hash, token_type).await?
        else {
            return Err(expired());
        };
        if now() > created_at + self.config.email_token_ttl.as_secs() as i64 {
            return Err(expired());
        }
        let Some(mut user) = self.store.user_by_id(&user_id).await? else {
            return Err(expired());
        };
        if user.email_confirmed_at.is_none() {
            let now = now();
            self.store.confirm_email(&user.id, now).await?;
            user.email_confirmed_at = Some(now);
        }
        self.new_session(&user, client).await
    }

    /// `POST /recover`: mails a recovery code when the address is known; always `{}` so
    /// the answer does not reveal which addresses have accounts.
    pub async fn recover(&self, body: &Value) -> ApiResult<Value> {
        let email = body["email"]
            .as_str()
            .ok_or_else(|| ApiError::validation("Password recovery requires an email"))?;
        let email = normalise_email(email)?;
        if self.mailer.is_none() {
            return Err(ApiError::new(
                422,
                "email_provider_disabled",
                "Email sending is not configured on this server",
            ));
        }
        self.limits.check_mail("recovery", &email)?;
        if let Some(user) = self.store.user_by_email(&email).await? {
            self.send_mail(&user, MailKind::Recovery).await?;
        }
        Ok(json!({}))
    }

    /// `GET /settings`.
    pub fn settings(&self) -> Value {
        json!({
            "external": { "email": true, "phone": false, "anonymous_users": false },
            "disable_signup": self.config.disable_signup,
            "mailer_autoconfirm": !self.config.confirm_email,
            "phone_autoconfirm": false,
            "sms_provider": "",
            "saml_enabled": false,
        })
    }

    /// `GET /sessions`.
    pub async fn sessions(&self, caller: &Caller) -> ApiResult<Value> {
        self.current(caller).await?;
        let list = self.store.sessions_of(&caller.user_id).await?;
        Ok(Value::Array(
            list.iter()
                .map(|s| shapes::session_entry(s, &caller.session_id))
                .collect(),
        ))
    }

    /// `DELETE /sessions/{id}`.
    pub async fn revoke_session(&self, caller: &Caller, id: &str) -> ApiResult<()> {
        self.current(caller).await?;
        match self.store.session(id).await? {
            Some(s) if s.user_id == caller.user_id => {
                self.store.delete_session(id).await?;
                Ok(())
            }
            _ => Err(ApiError::new(404, "session_not_found", "Session not found")),
        }
    }
}
