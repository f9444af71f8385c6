//! The router under the prefix: every request is authenticated by the PSU, its platform access
//! looked up in Storage, and refused with 403 naming the missing permission before anything
//! else happens. Changes (and refused changes) are published as `platform.action`.

use std::sync::Arc;

use magmobo_core::axum::body::{Body, to_bytes};
use magmobo_core::axum::extract::{FromRequestParts, Path};
use magmobo_core::axum::response::{IntoResponse, Response};
use magmobo_core::axum::routing::{get, post, put};
use magmobo_core::axum::{Json, Router};
use magmobo_core::roles::auth::IdentityKind;
use magmobo_core::roles::platform::{
    Access, Permission, PermissionSet, PlatformError, PlatformRole,
};
use magmobo_core::roles::storage::Dialect;
use serde::Deserialize;
use serde_json::json;

use crate::delegated;
use crate::error::{ApiError, ApiResult};
use crate::extension::{Service, Shared};
use crate::keys;

const MAX_BODY: usize = 64 * 1024;
const SERVICE_ROLE: &str = "service_role";

pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .route("/me", get(me))
        .route("/keys", get(list_keys).post(create_key))
        .route(
            "/keys/{id}",
            magmobo_core::axum::routing::delete(revoke_key),
        )
        .route(
            "/agents",
            get(delegated::list_agents).post(delegated::create_agent),
        )
        .route(
            "/agents/{name}",
            magmobo_core::axum::routing::patch(delegated::update_agent)
                .delete(delegated::revoke_agent),
        )
        .route("/audit", get(delegated::read_audit))
        .route("/audit/verify", get(delegated::verify_audit))
        .route("/members", get(list_members))
        .route(
            "/members/{subject}",
            put(grant_member).delete(revoke_member),
        )
        .route("/roles", get(list_roles))
        .route("/roles/{name}", put(define_role).delete(delete_role))
        .route("/schema", get(schema))
        .route("/schema/reload", post(reload_schema))
        .fallback(|| async {
            ApiError::new(404, "no such platform endpoint").hint(
                "see docs/platform.md: /me, /keys, /agents, /members, /roles, /schema, /audit",
            )
        })
        .with_state(shared)
}

/// An authenticated caller and what it may do.
pub(crate) struct Caller {
    pub(crate) svc: Arc<Service>,
    access: Access,
}

impl Caller {
    /// Publishes one `platform.action` event.
    pub(crate) fn publish(
        &self,
        action: &str,
        target: serde_json::Value,
        outcome: &str,
        detail: Option<&str>,
    ) {
        let Some(bus) = &self.svc.bus else { return };
        let payload = json!({
            "action": action,
            "by": self.access.subject,
            "role": self.access.role,
            "target": target,
            "outcome": outcome,
            "detail": detail,
        });
        if let Err(e) = bus.publish(crate::TOPIC, payload) {
            tracing::warn!(target: "magconsole", error = %e, "could not publish platform.action");
        }
    }

    /// Publishes the refusal of a change and hands the error back.
    fn refused(&self, action: &str, target: serde_json::Value, e: PlatformError) -> ApiError {
        let outcome = match e {
            PlatformError::Forbidden { .. } | PlatformError::OwnerOnly(_) => "denied",
            _ => "refused",
        };
        if !matches!(e, PlatformError::Storage(_)) {
            self.publish(action, target, outcome, Some(&e.to_string()));
        }
        ApiError::from(e)
    }

    /// `Ok` when the caller holds `permission`; a refused change is published.
    pub(crate) fn need(
        &self,
        permission: Permission,
        action: &str,
        target: serde_json::Value,
    ) -> ApiResult<()> {
        self.access.require(permission).map_err(|e| {
            if permission.is_read() {
                ApiError::from(e)
            } else {
                self.refused(action, target, e)
            }
        })
    }
}

/// Every handler takes a `Caller`: the request is authenticated and its platform access
/// resolved before the handler runs (and before any body is read).
impl FromRequestParts<Shared> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        shared: &Shared,
    ) -> Result<Self, Self::Rejection> {
        caller(shared, parts).await
    }
}

/// Authenticates the request and resolves its platform access.
async fn caller(shared: &Shared, parts: &http::request::Parts) -> ApiResult<Caller> {
    let Some(svc) = shared.load_full() else {
        return Err(ApiError::new(503, "the platform API is not running"));
    };
    let identity = svc.auth.authenticate(parts).await.map_err(|r| {
        ApiError::new(if r.status == 403 { 403 } else { 401 }, r.message).hint(r.code)
    })?;
    if identity.kind == IdentityKind::Anonymous {
        return Err(ApiError::new(401, "the platform API needs an identity")
            .hint("send an API key (`apikey` header) or a signed-in user's access token"));
    }
    let access = svc.platform.access(&identity).await?;
    Ok(Caller { svc, access })
}

pub(crate) async fn body<T: serde::de::DeserializeOwned>(body: Body) -> ApiResult<T> {
    let bytes = to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::new(413, "the request body is larger than 64 KiB"))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            400,
            format!("the request body is not what this endpoint takes: {e}"),
        )
    })
}

pub(crate) fn ok(status: u16, value: serde_json::Value) -> Response {
    let status = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    (status, Json(value)).into_response()
}

async fn me(c: Caller) -> ApiResult<Response> {
    Ok(ok(200, json!(c.access)))
}

// --- keys ---

async fn list_keys(c: Caller) -> ApiResult<Response> {
    c.need(Permission::KeysRead, "keys.list", json!(null))?;
    let list = keys::list(&c.svc.storage)
        .await
        .map_err(ApiError::storage)?;
    Ok(ok(200, json!(list)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    role: String,
    expires_at: Option<i64>,
}

async fn create_key(c: Caller, raw: Body) -> ApiResult<Response> {
    c.need(Permission::KeysWrite, "keys.create", json!(null))?;
    let new: NewKey = body(raw).await?;
    let (name, role) = (new.name.trim(), new.role.trim());
    let target = json!({ "name": name, "role": role });
    if name.is_empty() || name.len() > 200 {
        return Err(ApiError::new(
            400,
            "a key needs a name of 1 to 200 characters",
        ));
    }
    if role.is_empty() || role.len() > 100 || !role.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::new(
            400,
            "a key needs a database role of 1 to 100 visible characters, e.g. anon",
        ));
    }
    // A service_role key bypasses every policy and counts as an owner here.
    if role == SERVICE_ROLE && !c.access.owner {
        return Err(c.refused(
            "keys.create",
            target,
            PlatformError::OwnerOnly("create service_role keys".into()),
        ));
    }
    if role.starts_with("agent:") {
        c.need(Permission::AgentsWrite, "keys.create", target.clone())?;
    }
    let (record, full) = keys::create(&c.svc.storage, name, role, new.expires_at)
        .await
        .map_err(ApiError::storage)?;
    delegated::reload_keys(&c).await;
    c.publish(
        "keys.create",
        json!({ "id": record.id, "name": name, "role": role }),
        "ok",
        None,
    );
    let mut answer = json!(record);
    answer["key"] = json!(full);
    Ok(ok(201, answer))
}

async fn revoke_key(Path(id): Path<String>, c: Caller) -> ApiResult<Response> {
    let id = id.strip_prefix("mf_").unwrap_or(&id).to_owned();
    let target = json!({ "id": id });
    c.need(Permission::KeysWrite, "keys.revoke", target.clone())?;
    let Some(key) = keys::find(&c.svc.storage, &id)
        .await
        .map_err(ApiError::storage)?
    else {
        return Err(ApiError::new(404, format!("API key '{id}' not found"))
            .hint("GET /keys lists the keys"));
    };
    if key.role == SERVICE_ROLE && !c.access.owner {
        return Err(c.refused(
            "keys.revoke",
            target,
            PlatformError::OwnerOnly("revoke service_role keys".into()),
        ));
    }
    let revoked = keys::revoke(&c.svc.storage, &id)
        .await
        .map_err(ApiError::storage)?;
    if revoked {
        delegated::reload_keys(&c).await;
        c.publish("keys.revoke", target, "ok", None);
    }
    Ok(ok(
        200,
        json!({ "id": id, "revoked": true, "already_revoked": !revoked }),
    ))
}

// --- members and roles ---

async fn list_members(c: Caller) -> ApiResult<Response> {
    c.need(Permission::MembersRead, "members.list", json!(null))?;
    Ok(ok(200, json!(c.svc.platform.members().await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Grant {
    role: String,
}

async fn grant_member(Path(subject): Path<String>, c: Caller, raw: Body) -> ApiResult<Response> {
    c.need(
        Permission::MembersWrite,
        "members.grant",
        json!({ "subject": subject }),
    )?;
    let grant: Grant = body(raw).await?;
    let target = json!({ "subject": subject, "role": grant.role });
    if let Some(id) = subject.strip_prefix("key:") {
        check_member_key(&c, id).await?;
    }
    let member = c
        .svc
        .platform
        .grant(&c.access, &subject, grant.role.trim())
        .await
        .map_err(|e| c.refused("members.grant", target.clone(), e))?;
    c.publish("members.grant", target, "ok", None);
    Ok(ok(200, json!(member)))
}

/// A key that becomes a member must exist, be usable, and be personal: the `anon` key is
/// shipped to every client of the project, so a role on it would be a role for everyone.
async fn check_member_key(c: &Caller, id: &str) -> ApiResult<()> {
    let key = keys::find(&c.svc.storage, id)
        .await
        .map_err(ApiError::storage)?;
    match key {
        None => Err(ApiError::new(404, format!("API key '{id}' not found"))
            .hint("GET /keys lists the keys; subjects are key:<id> or user:<id>")),
        Some(k) if !k.active => Err(ApiError::new(
            409,
            format!("API key '{id}' is revoked or expired"),
        )),
        Some(k) if k.role == "anon" => Err(ApiError::new(
            400,
            format!("API key '{id}' acts as role anon, which every client of the project holds"),
        )
        .hint("create a personal key (POST /keys) and grant the role to it")),
        Some(_) => Ok(()),
    }
}

async fn revoke_member(Path(subject): Path<String>, c: Caller) -> ApiResult<Response> {
    let target = json!({ "subject": subject });
    c.need(Permission::MembersWrite, "members.revoke", target.clone())?;
    let member = c
        .svc
        .platform
        .revoke(&c.access, &subject)
        .await
        .map_err(|e| c.refused("members.revoke", target, e))?;
    c.publish(
        "members.revoke",
        json!({ "subject": subject, "role": member.role }),
        "ok",
        None,
    );
    Ok(ok(200, json!({ "revoked": member })))
}

async fn list_roles(c: Caller) -> ApiResult<Response> {
    c.need(Permission::MembersRead, "roles.list", json!(null))?;
    Ok(ok(200, json!(c.svc.platform.roles().await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    permissions: PermissionSet,
    description: Option<String>,
}

async fn define_role(Path(name): Path<String>, c: Caller, raw: Body) -> ApiResult<Response> {
    c.need(
        Permission::MembersWrite,
        "roles.define",
        json!({ "name": name }),
    )?;
    let spec: RoleBody = body(raw).await?;
    let target = json!({ "name": name, "permissions": spec.permissions });
    let role =
        PlatformRole::custom(&name, spec.permissions, spec.description).map_err(ApiError::from)?;
    let role = c
        .svc
        .platform
        .define_role(&c.access, &role)
        .await
        .map_err(|e| c.refused("roles.define", target.clone(), e))?;
    c.publish("roles.define", target, "ok", None);
    Ok(ok(200, json!(role)))
}

async fn delete_role(Path(name): Path<String>, c: Caller) -> ApiResult<Response> {
    let target = json!({ "name": name });
    c.need(Permission::MembersWrite, "roles.delete", target.clone())?;
    let role = c
        .svc
        .platform
        .delete_role(&c.access, &name)
        .await
        .map_err(|e| c.refused("roles.delete", target.clone(), e))?;
    c.publish("roles.delete", target, "ok", None);
    Ok(ok(200, json!({ "deleted": role })))
}

// --- schema ---

/// The introspected schema without MagMoBo's own tables (`_magmobo_*`).
async fn user_schema(svc: &Service) -> ApiResult<magmobo_core::roles::schema::Schema> {
    let mut schema = svc
        .storage
        .introspect(&[])
        .await
        .map_err(ApiError::storage)?;
    schema.tables.retain(|t| !t.name.starts_with("_magmobo"));
    Ok(schema)
}

async fn schema(c: Caller) -> ApiResult<Response> {
    c.need(Permission::SchemaRead, "schema.read", json!(null))?;
    Ok(ok(200, json!(user_schema(&c.svc).await?)))
}

async fn reload_schema(c: Caller) -> ApiResult<Response> {
    c.need(Permission::SchemaWrite, "schema.reload", json!(null))?;
    let mut reloaded = Vec::new();
    for (name, reload) in &c.svc.reloads {
        match reload().await {
            Ok(changed) => reloaded.push(json!({ "name": name, "changed": changed })),
            Err(e) => {
                tracing::warn!(target: "magconsole", part = %name, error = %e, "schema reload failed");
                reloaded.push(json!({ "name": name, "error": e.to_string() }));
            }
        }
    }
    // PostgREST's convention reaches MagGate on every instance, not just this one.
    let notified = c.svc.storage.dialect() == Dialect::Postgres
        && c.svc
            .storage
            .execute("NOTIFY pgrst, 'reload schema'", &[])
            .await
            .inspect_err(
                |e| tracing::warn!(target: "magconsole", error = %e, "NOTIFY pgrst failed"),
            )
            .is_ok();
    let schema = user_schema(&c.svc).await?;
    c.publish(
        "schema.reload",
        json!({ "fingerprint": schema.fingerprint }),
        "ok",
        None,
    );
    Ok(ok(
        200,
        json!({
            "reloaded": reloaded,
            "notified": notified,
            "tables": schema.tables.len(),
            "fingerprint": schema.fingerprint,
        }),
    ))
}
