//! TOTP multi-factor authentication on GoTrue's `/factors` endpoints: enrol (an unverified
//! factor and its secret), challenge, verify (the factor becomes verified and the session
//! rises to `aal2`, kept across refreshes), unenrol. Sign-in still issues `aal1` tokens, as
//! GoTrue does: applications and policies require `aal2` where they need it (the `aal`
//! claim), and supabase-js's `getAuthenticatorAssuranceLevel` tells the client to verify.

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::service::{Caller, Client, Service, now};
use crate::store::Factor;
use crate::totp;

/// How long a challenge can be answered.
const CHALLENGE_TTL: i64 = 300;

type ApiResult<T> = Result<T, ApiError>;

fn factor_not_found() -> ApiError {
    ApiError::new(404, "mfa_factor_not_found", "Factor not found")
}

impl Service {
    /// `POST /factors` `{factor_type: "totp", friendly_name?, issuer?}`.
    pub async fn enroll(&self, caller: &Caller, body: &Value) -> ApiResult<Value> {
        let (_, user) = self.current(caller).await?;
        match body["factor_type"].as_str() {
            Some("totp") => {}
            other => {
                return Err(ApiError::validation(format!(
                    "factor_type must be totp (phone and WebAuthn factors are not supported), got {other:?}"
                )));
            }
        }
        let friendly_name = body["friendly_name"].as_str().map(str::to_owned);
        if friendly_name.as_ref().is_some_and(|n| n.len() > 255) {
            return Err(ApiError::validation(
                "friendly_name is longer than 255 bytes",
            ));
        }
        let existing = self.store.factors_of(&user.id).await?;
        if friendly_name.is_some() && existing.iter().any(|f| f.friendly_name == friendly_name) {
            return Err(ApiError::new(
                422,
                "mfa_factor_name_conflict",
                "A factor with this friendly name already exists",
            ));
        }
        let now = now();
        let factor = Factor {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user.id.clone(),
            friendly_name: friendly_name.clone(),
            factor_type: "totp".to_owned(),
            status: "unverified".to_owned(),
            secret: totp::new_secret(),
            created_at: now,
            updated_at: now,
        };
        self.store.insert_factor(&factor).await?;
        let issuer = body["issuer"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("MagMoBo");
        let uri = format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}",
            uri_escape(issuer),
            uri_escape(&user.email),
            factor.secret,
            uri_escape(issuer)
        );
        Ok(json!({
            "id": factor.id,
            "type": "totp",
            "friendly_name": friendly_name,
            "totp": { "qr_code": "", "secret": factor.secret, "uri": uri },
        }))
    }

    /// `POST /factors/{id}/challenge`.
    pub async fn challenge(&self, caller: &Caller, id: &str, client: &Client) -> ApiResult<Value> {
        self.current(caller).await?;
        let factor = self
            .store
            .factor(&caller.user_id, id)
            .await?
            .ok_or_else(factor_not_found)?;
        let now = now();
        let challenge = uuid::Uuid::new_v4().to_string();
        self.store
            .insert_challenge(&challenge, &factor.id, now, client.ip.as_deref())
            .await?;
        Ok(json!({ "id": challenge, "type": "totp", "expires_at": now + CHALLENGE_TTL }))
    }

    /// `POST /factors/{id}/verify` `{challenge_id, code}`: a new `aal2` session response.
    pub async fn verify_factor(&self, caller: &Caller, id: &str, body: &Value) -> ApiResult<Value> {
        let (session, user) = self.current(caller).await?;
        let factor = self
            .store
            .factor(&caller.user_id, id)
            .await?
            .ok_or_else(factor_not_found)?;
        let (Some(challenge), Some(code)) = (body["challenge_id"].as_str(), body["code"].as_str())
        else {
            return Err(ApiError::validation(
                "MFA verification requires challenge_id and code",
            ));
        };
        let now = now();
        let Some(created) = self.store.open_challenge(challenge, &factor.id).await? else {
            return Err(ApiError::new(
                404,
                "mfa_factor_not_found",
                "MFA challenge not found or already used",
            ));
        };
        if now > created + CHALLENGE_TTL {
            return Err(ApiError::new(
                422,
                "mfa_challenge_expired",
                "MFA challenge has expired, verify against another challenge",
            ));
        }
        if !totp::check(&factor.secret, code, now) {
            return Err(ApiError::new(
                422,
                "mfa_verification_failed",
                "Invalid TOTP code entered",
            ));
        }
        if !self.store.close_challenge(challenge, now).await? {
            return Err(ApiError::new(
                404,
                "mfa_factor_not_found",
                "MFA challenge not found or already used",
            ));
        }
        if factor.status != "verified" {
            self.store.verify_factor(&factor.id, now).await?;
        }
        self.store.raise_session(&session.id, now).await?;
        // A new refresh token for the raised session; earlier ones stay valid and now also
        // refresh into `aal2`, as the session itself was raised.
        let refresh = crate::tokens::random_token();
        self.store
            .insert_refresh_token(
                &crate::tokens::sha256_hex(&refresh),
                &user.id,
                &session.id,
                None,
                now,
            )
            .await?;
        let mut raised = session;
        raised.aal = Some("aal2".to_owned());
        raised.mfa_at = Some(now);
        let mut body = self.session_body(&user, &raised, refresh)?;
        body["user"] = self.user_json_with_factors(&user).await?;
        Ok(body)
    }

    /// `DELETE /factors/{id}`: a verified factor can only be removed from an `aal2` session.
    pub async fn unenroll(&self, caller: &Caller, id: &str) -> ApiResult<Value> {
        let (session, _) = self.current(caller).await?;
        let factor = self
            .store
            .factor(&caller.user_id, id)
            .await?
            .ok_or_else(factor_not_found)?;
        if factor.status == "verified" && session.aal.as_deref() != Some("aal2") {
            return Err(ApiError::new(
                403,
                "insufficient_aal",
                "AAL2 required to unenroll verified factor",
            ));
        }
        self.store.delete_factor(&factor.id).await?;
        Ok(json!({ "id": factor.id }))
    }
}

/// Percent-encodes everything but unreserved characters (for `otpauth://` labels).
fn uri_escape(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
