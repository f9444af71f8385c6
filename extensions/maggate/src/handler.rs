//! The HTTP side of MagGate: one native handler that routes `{prefix}/{table}` by method,
//! parses the request, builds and runs the SQL, and answers the way PostgREST does
//! (statuses, `Content-Range`, `Location`, `Preference-Applied`, error bodies).

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use magmobo_core::axum::body::{Body, to_bytes};
use magmobo_core::axum::response::Response;
use magmobo_core::roles::auth::Identity;
use magmobo_core::roles::schema::Table;
use magmobo_core::roles::storage::{Dialect, Row, Value};

use crate::agents::serve::AgentCall;
use crate::api_error::{ApiError, ApiResult};
use crate::gate::{Inner, Runtime};
use crate::policy::{Command, Guard};
use crate::read_cache::{CachedReply, ReadCache};
use crate::request::{
    PreferHandling, PreferResolution, PreferReturn, Preferences, QueryParams, Request,
    RequestHeaders, SelectItem, url_decode,
};
#[cfg(test)]
use crate::session::db_error;
use crate::session::{Conn, Session};
use crate::sql::written::{self, WriteKind};
use crate::sql::{self, Catalog, Plan, ReadOptions, Returning, Shape, Statement};

const JSON: &str = "application/json; charset=utf-8";
const OBJECT_JSON: &str = "application/vnd.pgrst.object+json; charset=utf-8";
const OPENAPI_JSON: &str = "application/openapi+json; charset=utf-8";

/// Answers one request; never fails (errors become PostgREST error responses).
pub(crate) async fn handle(inner: Arc<Inner>, req: http::Request<Body>) -> Response {
    let csv = wants_csv(req.headers().get(header::ACCEPT));
    let response = match serve(&inner, req).await {
        Ok(r) => r,
        Err(e) => error_response(&e, None),
    };
    if csv {
        into_csv(response).await
    } else {
        response
    }
}

/// Whether the client prefers CSV: `text/csv` listed before any JSON type.
fn wants_csv(accept: Option<&HeaderValue>) -> bool {
    let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    for part in accept.split(',') {
        let media = part.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("text/csv") {
            return true;
        }
        if media.to_ascii_lowercase().contains("json") || media == "*/*" {
            return false;
        }
    }
    false
}

/// A successful JSON answer re-encoded as CSV; errors stay JSON, as in PostgREST.
async fn into_csv(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !response.status().is_success() || !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let converted = match to_bytes(body, usize::MAX).await {
        Ok(bytes) => crate::csv_body::from_json_rows(&String::from_utf8_lossy(&bytes)),
        Err(e) => {
            Err(ApiError::new(500, "MG500", "Could not read the response").details(e.to_string()))
        }
    };
    match converted {
        Ok(text) => {
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(crate::csv_body::CSV),
            );
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(text))
        }
        Err(e) => error_response(&e, None),
    }
}

pub(crate) fn error_response(e: &ApiError, content_range: Option<String>) -> Response {
    let mut b = http::Response::builder()
        .status(StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, JSON);
    if let Some(cr) = content_range.or_else(|| (e.status == 416).then(|| "*/*".to_owned())) {
        b = b.header(header::CONTENT_RANGE, cr);
    }
    if e.status == 401 {
        // As PostgREST: a 401 tells the client which scheme to authenticate with.
        b = b.header(header::WWW_AUTHENTICATE, "Bearer");
    }
    b.body(Body::from(e.to_json()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

struct Reply {
    status: u16,
    headers: Vec<(header::HeaderName, String)>,
    body: Option<String>,
    content_type: &'static str,
}

impl Reply {
    fn to_cached(&self) -> CachedReply {
        CachedReply {
            status: self.status,
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
                .collect(),
            body: self.body.clone(),
            content_type: self.content_type.to_owned(),
        }
    }

    fn from_cached(c: CachedReply) -> Reply {
        Reply {
            status: c.status,
            headers: c
                .headers
                .into_iter()
                .filter_map(|(k, v)| {
                    header::HeaderName::from_bytes(k.as_bytes())
                        .ok()
                        .map(|k| (k, v))
                })
                .collect(),
            body: c.body,
            content_type: [JSON, OBJECT_JSON, OPENAPI_JSON]
                .into_iter()
                .find(|t| *t == c.content_type)
                .unwrap_or(JSON),
        }
    }

    fn into_response(self, head: bool) -> Response {
        let mut b = http::Response::builder()
            .status(StatusCode::from_u16(self.status).unwrap_or(StatusCode::OK));
        if self.body.is_some() {
            b = b.header(header::CONTENT_TYPE, self.content_type);
        }
        for (k, v) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                b = b.header(k, v);
            }
        }
        let body = match self.body {
            Some(s) if !head => Body::from(s),
            _ => Body::empty(),
        };
        b.body(body)
            .unwrap_or_else(|_| Response::new(Body::empty()))
    }
}

async fn serve(inner: &Inner, req: http::Request<Body>) -> ApiResult<Response> {
    let Some(rt) = inner.runtime.load_full() else {
        return Err(ApiError::new(
            503,
            "PGRST002",
            "Could not query the database for the schema cache. Retrying.",
        ));
    };
    let (parts, body) = req.into_parts();
    // Authenticate before anything else, so an unauthenticated caller learns nothing, not
    // even which tables exist.
    let identity = match &rt.auth {
        Some(auth) => Some(auth.authenticate(&parts).await.map_err(|rejection| {
            ApiError::new(rejection.status, &rejection.code, &rejection.message)
        })?),
        None => None,
    };
    // The approval queue is served here, not from `route`, because approving replays a
    // request through `serve_as`: no cycle between the two.
    if inner.config.agents.is_some() {
        let rest = parts
            .uri
            .path()
            .strip_prefix(inner.config.prefix.as_str())
            .unwrap_or("")
            .trim_start_matches('/');
        if rest == "_approvals" || rest.starts_with("_approvals/") {
            let rest = rest.to_owned();
            return crate::agents::serve::approvals(inner, &rt, identity, &parts, &rest).await;
        }
    }
    serve_as(inner, &rt, identity, parts, body, None).await
}

/// Serves an authenticated request as `identity`; `replay` names the approved ticket run
/// for an agent (see [`crate::agents`]).
pub(crate) async fn serve_as(
    inner: &Inner,
    rt: &Runtime,
    identity: Option<Identity>,
    parts: http::request::Parts,
    body: Body,
    replay: Option<String>,
) -> ApiResult<Response> {
    let catalog = rt.catalog.load_full();
    let agent = match &identity {
        Some(id) if inner.config.agents.is_some() => {
            match crate::agents::serve::admit(inner, rt, id, replay).await {
                Ok(agent) => agent,
                Err(answer) => return Ok(answer),
            }
        }
        _ => None,
    };
    let mut session = Session::new(&inner.config, rt, &catalog, identity, &parts)?;
    let result = match route(
        inner,
        rt,
        &catalog,
        &mut session,
        agent.as_ref(),
        parts,
        body,
    )
    .await
    {
        Ok(mut response) => {
            if let Some(token) = session.applied {
                apply_preference(response.headers_mut(), token);
            }
            Ok(response)
        }
        Err(e) => {
            let mut e = session.permission(e);
            if agent.is_some() && e.code == "42501" {
                // The agent's grants are enforced as policies: refusals speak MagGate's code.
                e.code = "MG403".to_owned();
                e.status = 403;
            }
            Err(e)
        }
    };
    if let Some(agent) = &agent {
        agent.report(rt, &result);
    }
    result
}

/// Adds `token` to `Preference-Applied`, joining the value already there.
fn apply_preference(headers: &mut HeaderMap, token: &str) {
    let name = header::HeaderName::from_static("preference-applied");
    let value = match headers.get(&name).and_then(|v| v.to_str().ok()) {
        Some(existing) => format!("{existing}, {token}"),
        None => token.to_owned(),
    };
    if let Ok(v) = HeaderValue::from_str(&value) {
        headers.insert(name, v);
    }
}

/// Routes an authenticated request: the root, `/rpc/{fn}` or a table.
async fn route(
    inner: &Inner,
    rt: &Runtime,
    catalog: &Catalog,
    session: &mut Session,
    agent: Option<&AgentCall>,
    parts: http::request::Parts,
    mut body: Body,
) -> ApiResult<Response> {
    let path = parts.uri.path();
    let prefix = inner.config.prefix.as_str();
    let rest = path
        .strip_prefix(prefix)
        .unwrap_or(path)
        .trim_start_matches('/');
    let head = parts.method == Method::HEAD;
    if rest.is_empty() {
        return Ok(root(catalog, prefix, &parts.method)?.into_response(head));
    }
    if let Some(agent) = agent
        && rest.starts_with("rpc/")
    {
        agent.note(rest, None);
        return Err(agent.refuse_rpc(rest));
    }
    if rest.contains('/') {
        if let Some(function) = rest.strip_prefix("rpc/")
            && !function.contains('/')
        {
            let name = url_decode(function);
            return Ok(rpc(inner, session, catalog, &parts, body, &name)
                .await?
                .into_response(head));
        }
        return Err(ApiError::new(
            404,
            "PGRST125",
            "Invalid path specified in request URL",
        ));
    }
    let name = url_decode(rest);
    if let Some(agent) = agent {
        agent.note(&name, None);
    }
    let table = catalog.table(&name)?;

    let headers = &parts.headers;
    let prefer: Vec<&str> = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let is_read = matches!(parts.method, Method::GET | Method::HEAD);
    let range = if is_read {
        headers.get(header::RANGE).and_then(|v| v.to_str().ok())
    } else {
        None
    };
    let singular = negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()))?;
    let params = QueryParams::decode(parts.uri.query().unwrap_or(""));
    let mut request = Request::parse(
        &params,
        &RequestHeaders {
            prefer: &prefer,
            range,
        },
    )?;
    session.prefer(inner.config.tx_end, request.preferences.transaction);
    let session = &*session;
    let command = match parts.method {
        Method::GET | Method::HEAD => Some(Command::Select),
        Method::POST | Method::PUT => Some(Command::Insert),
        Method::PATCH => Some(Command::Update),
        Method::DELETE => Some(Command::Delete),
        _ => None,
    };
    // Before any policy adds its row filters, which do not count as the caller's.
    match command {
        Some(Command::Update) => refuse_unfiltered(inner, &request, "UPDATE")?,
        Some(Command::Delete) => refuse_unfiltered(inner, &request, "DELETE")?,
        _ => {}
    }
    // An agent's grants replace the role's policies (see `crate::agents`).
    let agent_policies = match agent {
        Some(agent) => {
            agent.note(&table.name, command.map(crate::agents::Op::of));
            if let Some(command) = command {
                agent.check(&table.name, command)?;
            }
            Some(agent.policies(catalog))
        }
        None => None,
    };
    let guard = match (&agent_policies, agent) {
        (Some(policies), Some(agent)) => policies.guard(&session.role, agent.claims(), false),
        _ => inner
            .config
            .policies
            .guard(&session.role, &session.claims, session.anonymous),
    };
    if let (Some(g), Some(command)) = (&guard, command) {
        g.apply(catalog, table, command, &mut request.query)?;
        if command != Command::Select
            && request.preferences.representation == Some(PreferReturn::Representation)
        {
            g.check_returning(table)?;
        }
    }
    if let (Some(agent), Some(command)) = (agent, command)
        && agent.replay.is_none()
        && let Some(threshold) = agent.approval(&table.name, command)
    {
        let max = inner.config.max_body_bytes;
        let bytes = to_bytes(std::mem::replace(&mut body, Body::empty()), max)
            .await
            .map_err(|_| ApiError::new(413, "MG413", "Payload Too Large"))?;
        body = Body::from(bytes.clone());
        let over = match threshold {
            None => true,
            Some(n) if command == Command::Insert => body_rows(&bytes) > n,
            Some(n) => count_matching(session, catalog, table, &request).await? > n,
        };
        if over {
            let text = (!bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).into_owned());
            return crate::agents::serve::park(
                inner,
                rt,
                agent,
                &table.name,
                command,
                &parts,
                text,
            )
            .await;
        }
    }
    let ctx = Ctx {
        inner,
        rt,
        session,
        guard: guard.as_ref(),
        catalog,
        table,
        request: &request,
        singular,
    };
    let reply = match parts.method {
        // Agents read uncached, so a changed grant applies at the next refresh.
        Method::GET | Method::HEAD if agent.is_some() => ctx.read().await?,
        Method::GET | Method::HEAD => ctx.cached_read(&parts).await?,
        Method::POST => {
            let payload = read_json(body, headers, inner.config.max_body_bytes).await?;
            ctx.insert(payload).await?
        }
        Method::PATCH => {
            let payload = read_json(body, headers, inner.config.max_body_bytes).await?;
            ctx.update(payload).await?
        }
        Method::DELETE => ctx.delete().await?,
        Method::PUT => {
            let payload = read_json(body, headers, inner.config.max_body_bytes).await?;
            ctx.put(payload).await?
        }
        Method::OPTIONS => Reply {
            status: 200,
            headers: vec![(
                header::ALLOW,
                "OPTIONS,GET,HEAD,POST,PUT,PATCH,DELETE".to_owned(),
            )],
            body: None,
            content_type: JSON,
        },
        ref other => {
            return Err(ApiError::new(
                405,
                "PGRST117",
                format!("Unsupported HTTP method: {other}"),
            ));
        }
    };
    Ok(reply.into_response(head))
}

/// Rows an insert body holds: an array's length, else one.
fn body_rows(bytes: &[u8]) -> u64 {
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Array(items)) => items.len() as u64,
        _ => 1,
    }
}

/// How many rows `request`'s filters (policies' included) match on `table`, within its
/// `limit`/`offset` when it is a limited write: what an UPDATE or DELETE would touch,
/// counted before deciding whether it needs approval.
async fn count_matching(
    session: &Session,
    catalog: &Catalog,
    table: &Table,
    request: &Request<'_>,
) -> ApiResult<u64> {
    let opts = ReadOptions {
        max_rows: None,
        count: true,
        aggregates: false,
    };
    let range = crate::request::QueryRange {
        offset: 0,
        limit: Some(0),
    };
    let plan = sql::read(catalog, table, &request.query, range, opts)?;
    let matching = run_in(session, &plan).await?.total.unwrap_or(0);
    Ok(match sql::write_range(&request.query) {
        Some((limit, offset)) => {
            let after_offset = matching.saturating_sub(offset.max(0) as u64);
            limit.map_or(after_offset, |l| after_offset.min(l.max(0) as u64))
        }
        None => matching,
    })
}

/// PATCH and DELETE need a filter unless the configuration allows otherwise.
fn refuse_unfiltered(inner: &Inner, request: &Request<'_>, verb: &str) -> ApiResult<()> {
    if inner.config.allow_unfiltered_writes || sql::has_filters(&request.query) {
        return Ok(());
    }
    Err(
        ApiError::new(400, "21000", format!("{verb} requires a WHERE clause")).hint(
            "Add a filter such as ?id=eq.1, or enable allow_unfiltered_writes in GateConfig.",
        ),
    )
}

/// The API root: the OpenAPI document of everything served (see [`crate::openapi`]).
fn root(catalog: &Catalog, prefix: &str, method: &Method) -> ApiResult<Reply> {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return Err(ApiError::new(
            405,
            "PGRST117",
            format!("Unsupported HTTP method: {method}"),
        ));
    }
    Ok(Reply {
        status: 200,
        headers: Vec::new(),
        body: Some(crate::openapi::document(catalog, prefix).to_string()),
        content_type: OPENAPI_JSON,
    })
}

/// Whether the client asked for a single object; 406 when it accepts nothing we produce.
fn negotiate(accept: Option<&str>) -> ApiResult<bool> {
    let Some(accept) = accept else {
        return Ok(false);
    };
    for part in accept.split(',') {
        let media = part.split(';').next().unwrap_or("").trim();
        match media.to_ascii_lowercase().as_str() {
            "application/vnd.pgrst.object+json" | "application/vnd.pgrst.object" => {
                return Ok(true);
            }
            "" | "*/*" | "application/*" | "application/json" | "text/csv" => return Ok(false),
            _ => {}
        }
    }
    Err(ApiError::new(
        406,
        "PGRST107",
        format!("None of these media types are available: {accept}"),
    ))
}

async fn read_json(body: Body, headers: &HeaderMap, max: usize) -> ApiResult<serde_json::Value> {
    let too_large = || {
        ApiError::new(413, "MG413", "Payload Too Large")
            .details(format!("The request body is larger than {max} bytes"))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let bytes = to_bytes(body, max).await.map_err(|_| too_large())?;
    let is_csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/csv"));
    if is_csv {
        return crate::csv_body::to_json_rows(&bytes);
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::invalid_body(e.to_string()))
}

/// What a statement returned.
struct Outcome {
    /// The JSON array, when rows were asked for.
    body: Option<String>,
    /// Rows in the body, or rows affected.
    page_total: u64,
    /// The exact count, when asked for.
    total: Option<u64>,
}

fn text_of(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Text(s) => Some(s.clone()),
        Value::Json(j) => Some(j.to_string()),
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

fn count_of(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::Float(f) => Some(f.max(0.0) as u64),
        Value::Text(s) => s.parse().ok(),
        _ => None,
    }
}

fn get<'r>(row: &'r Row, name: &str, index: usize) -> Option<&'r Value> {
    row.get(name).or_else(|| row.values.get(index))
}

async fn run(conn: &mut Conn, plan: &Plan) -> ApiResult<Outcome> {
    match plan.shape {
        Shape::Affected => Ok(Outcome {
            body: None,
            page_total: conn.execute(&plan.statement).await?,
            total: None,
        }),
        Shape::Aggregated => {
            let rows = conn.query(&plan.statement).await?;
            let row = rows.first().ok_or_else(|| {
                ApiError::new(
                    500,
                    "XX000",
                    "the database returned no row for an aggregate",
                )
            })?;
            let total = row.get(sql::TOTAL).and_then(|v| count_of(Some(v)));
            let page_total = count_of(row.get(sql::PAGE_TOTAL)).unwrap_or(0);
            let body = text_of(row.get(sql::BODY)).unwrap_or_else(|| "[]".to_owned());
            Ok(Outcome {
                body: Some(body),
                page_total,
                total,
            })
        }
        Shape::Rows => {
            let rows = conn.query(&plan.statement).await?;
            let mut body = String::with_capacity(rows.len() * 64 + 2);
            body.push('[');
            for (i, row) in rows.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                body.push_str(&text_of(get(row, sql::ROW_JSON, 0)).unwrap_or_default());
            }
            body.push(']');
            let total = match &plan.count {
                Some(st) => {
                    let rows = conn.query(st).await?;
                    rows.first().and_then(|r| count_of(get(r, sql::TOTAL, 0)))
                }
                None => None,
            };
            Ok(Outcome {
                body: Some(body),
                page_total: rows.len() as u64,
                total,
            })
        }
    }
}

/// Runs `plan` in the request's session: on the pool, or in its transaction, ended as
/// the session says (rolled back on failure).
async fn run_in(session: &Session, plan: &Plan) -> ApiResult<Outcome> {
    let mut conn = session.open(false).await?;
    match run(&mut conn, plan).await {
        Ok(out) => {
            session.finish(conn).await?;
            Ok(out)
        }
        Err(e) => {
            let _ = conn.finish(false).await;
            Err(e)
        }
    }
}

/// `[{...}]` → `{...}` for a singular response.
fn unwrap_single(body: &str) -> String {
    let t = body.trim();
    let t = t.strip_prefix('[').unwrap_or(t);
    let t = t.strip_suffix(']').unwrap_or(t);
    t.trim().to_owned()
}

fn not_single(n: u64) -> ApiError {
    ApiError::new(
        406,
        "PGRST116",
        "JSON object requested, multiple (or no) rows returned",
    )
    .details(format!("The result contains {n} rows"))
}

/// A write whose response is read back by primary key (see [`sql::written`]).
#[derive(Clone, Copy)]
enum ReadBack<'p> {
    /// An INSERT or upsert returning the keys it wrote.
    Insert(&'p Plan),
    /// A PATCH: `plan` returns the written keys on SQLite; on MariaDB the keys are located
    /// first and the payload is written to them.
    Update {
        plan: &'p Plan,
        payload: &'p serde_json::Map<String, serde_json::Value>,
    },
    /// A DELETE (read before it deletes).
    Delete,
}

struct Ctx<'a, 'q> {
    inner: &'a Inner,
    rt: &'a Runtime,
    session: &'a Session,
    /// The code-declared policies that apply to this caller, if any.
    guard: Option<&'a Guard<'a>>,
    catalog: &'a Catalog,
    table: &'a Table,
    request: &'a Request<'q>,
    singular: bool,
}

impl Ctx<'_, '_> {
    fn prefs(&self) -> &Preferences<'_> {
        &self.request.preferences
    }

    /// A read through the read cache when one is configured (see [`crate::read_cache`]).
    async fn cached_read(&self, parts: &http::request::Parts) -> ApiResult<Reply> {
        let cache = match &self.rt.read_cache {
            Some(cache) if self.inner.config.pre_request.is_none() => cache,
            _ => return self.read().await,
        };
        let key = ReadCache::key(
            &self.session.role,
            &self.session.claims,
            parts.uri.path(),
            parts.uri.query(),
            &parts.headers,
        );
        if let Some(hit) = cache.get(&key).await {
            cache.hit();
            return Ok(Reply::from_cached(hit));
        }
        // Only a miss needs the tables the read touches (for tags and write counters).
        let (tables, any) = self.tables_read();
        match cache.miss(&key, &tables, any).await {
            Ok(hit) => Ok(Reply::from_cached(hit)),
            Err(loading) => {
                let reply = self.read().await?;
                cache.store(loading, &tables, &reply.to_cached()).await;
                Ok(reply)
            }
        }
    }

    /// The tables a read touches (its own and its embedded resources'), and whether any is
    /// a view (whose base tables are unknown).
    fn tables_read(&self) -> (Vec<String>, bool) {
        fn walk(items: &[SelectItem<'_>], out: &mut Vec<String>) {
            for item in items {
                let (name, children) = match item {
                    SelectItem::Relation(r) => (&r.name, &r.children),
                    SelectItem::Spread(s) => (&s.name, &s.children),
                    SelectItem::Star | SelectItem::Field(_) => continue,
                };
                out.push(name.to_string());
                walk(children, out);
            }
        }
        let mut tables = vec![self.table.name.clone()];
        walk(&self.request.query.select, &mut tables);
        tables.sort();
        tables.dedup();
        let any = tables.iter().any(|t| {
            self.catalog.table(t).map_or(true, |t| {
                t.kind != magmobo_core::roles::schema::TableKind::Table
            })
        });
        (tables, any)
    }

    async fn read(&self) -> ApiResult<Reply> {
        use crate::request::PreferCount;
        let max_rows = self.inner.config.max_rows;
        // PostgreSQL and MariaDB can estimate instead of counting (PostgREST's planned and
        // estimated counts); SQLite keeps no estimates, so its counts are exact.
        let planned = match self.prefs().count {
            Some(c @ (PreferCount::Planned | PreferCount::Estimated))
                if self.catalog.dialect() != magmobo_core::roles::storage::Dialect::Sqlite =>
            {
                let rows = self.planned_rows().await?;
                // `estimated`: exact up to the row cap, the planner's figure above it.
                let exact_is_cheap = c == PreferCount::Estimated
                    && max_rows.is_none_or(|cap| rows.is_none_or(|r| r <= cap));
                if exact_is_cheap {
                    None
                } else {
                    rows.or(Some(0))
                }
            }
            _ => None,
        };
        let opts = ReadOptions {
            max_rows,
            count: self.prefs().count.is_some() && planned.is_none(),
            aggregates: self.inner.config.aggregates_enabled,
        };
        let plan = sql::read(
            self.catalog,
            self.table,
            &self.request.query,
            self.request.range,
            opts,
        )?;
        answer_read_counted(self.session, self.request, self.singular, &plan, planned).await
    }

    /// The planner's estimate of the rows the request's filters match.
    async fn planned_rows(&self) -> ApiResult<Option<u64>> {
        let Some(st) = sql::estimate(self.catalog, self.table, &self.request.query)? else {
            return Ok(None);
        };
        let mut conn = self.session.open(false).await?;
        let rows = match conn.query(&st).await {
            Ok(rows) => rows,
            Err(e) => {
                let _ = conn.finish(false).await;
                return Err(e);
            }
        };
        self.session.finish(conn).await?;
        Ok(sql::planned_rows(self.catalog.dialect(), &rows))
    }

    fn returning(&self, location: bool) -> Returning {
        match self.prefs().representation {
            Some(PreferReturn::Representation) => Returning::Selected,
            Some(PreferReturn::HeadersOnly) if location && !self.table.primary_key.is_empty() => {
                Returning::PrimaryKey
            }
            _ => Returning::Nothing,
        }
    }

    /// Runs a write plan, in a transaction when a check on the result may undo it or when
    /// `pre` (a count read before the write) must see the same rows; returns `pre`'s count.
    async fn write(
        &self,
        plan: &Plan,
        max_affected: Option<i64>,
        pre: Option<&Statement>,
    ) -> ApiResult<(Outcome, Option<u64>)> {
        let needs_tx = self.singular || max_affected.is_some() || pre.is_some();
        let mut conn = self.session.open(needs_tx).await?;
        let counted = match pre {
            Some(st) => match conn.query(st).await {
                Ok(rows) => rows.first().and_then(|r| count_of(get(r, sql::TOTAL, 0))),
                Err(e) => {
                    let _ = conn.finish(false).await;
                    return Err(e);
                }
            },
            None => None,
        };
        let out = match run(&mut conn, plan).await {
            Ok(out) => out,
            Err(e) => {
                let _ = conn.finish(false).await;
                return Err(e);
            }
        };
        if let Err(e) = self.check_affected(out.page_total, max_affected) {
            conn.finish(false).await?;
            return Err(e);
        }
        // Committed or rolled back as `db-tx-end` and `Prefer: tx=` say; the representation
        // is returned either way.
        self.session.finish(conn).await?;
        Ok((out, counted))
    }

    /// `Prefer: max-affected` (PGRST124) and a singular answer's one row (PGRST116).
    fn check_affected(&self, n: u64, max_affected: Option<i64>) -> ApiResult<()> {
        if let Some(max) = max_affected
            && i128::from(n) > i128::from(max)
        {
            return Err(ApiError::new(
                400,
                "PGRST124",
                "Query result exceeds max-affected preference constraint",
            )
            .details(format!("The query affects {n} rows")));
        }
        if self.singular && n != 1 {
            return Err(not_single(n));
        }
        Ok(())
    }

    /// Like [`Ctx::write`] for a write whose response is read back by primary key, always
    /// in a transaction (rolled back on any failure).
    async fn write_back(
        &self,
        step: ReadBack<'_>,
        max_affected: Option<i64>,
        pre: Option<&Statement>,
    ) -> ApiResult<(Outcome, Option<u64>)> {
        let mut conn = self.session.open(true).await?;
        match self.write_back_in(&mut conn, step, max_affected, pre).await {
            Ok(done) => {
                self.session.finish(conn).await?;
                Ok(done)
            }
            Err(e) => {
                let _ = conn.finish(false).await;
                Err(e)
            }
        }
    }

    async fn write_back_in(
        &self,
        conn: &mut Conn,
        step: ReadBack<'_>,
        max_affected: Option<i64>,
        pre: Option<&Statement>,
    ) -> ApiResult<(Outcome, Option<u64>)> {
        let (cat, table, q) = (self.catalog, self.table, &self.request.query);
        let counted = match pre {
            Some(st) => {
                let rows = conn.query(st).await?;
                rows.first().and_then(|r| count_of(get(r, sql::TOTAL, 0)))
            }
            None => None,
        };
        let sqlite = cat.dialect() == Dialect::Sqlite;
        // The keys of the rows written (INSERT, SQLite's UPDATE) or about to be.
        let located = match step {
            ReadBack::Insert(plan) => conn.query(&plan.statement).await?,
            ReadBack::Update { plan, .. } if sqlite => conn.query(&plan.statement).await?,
            ReadBack::Update { .. } | ReadBack::Delete => {
                conn.query(&written::locate(cat, table, q)?).await?
            }
        };
        let mut keys = written::keys_of(table, &located);
        let affected = keys.len() as u64;
        self.check_affected(affected, max_affected)?;
        if let ReadBack::Update { payload, .. } = step
            && !sqlite
        {
            if !keys.is_empty()
                && let Some(st) = written::update_keys(cat, table, q, payload, &keys)?
            {
                conn.execute(&st).await?;
            }
            keys = written::rekey(cat, table, q, payload, keys)?;
        }
        let out = run(conn, &written::read_keys(cat, table, q, &keys)?).await?;
        if matches!(step, ReadBack::Delete) && !keys.is_empty() {
            conn.execute(&written::delete_keys(cat, table, &keys))
                .await?;
        }
        Ok((
            Outcome {
                body: out.body,
                page_total: affected,
                total: None,
            },
            counted,
        ))
    }

    /// After a write: cached reads of the table are dropped (before the answer, so the
    /// writer reads its own write) and `table.<name>.changed` is published.
    async fn changed(&self, operation: &str, count: u64) {
        if count == 0 {
            return;
        }
        if let Some(cache) = &self.rt.read_cache {
            cache.invalidate_table(&self.table.name).await;
        }
        self.publish(operation, count);
    }

    fn publish(&self, operation: &str, count: u64) {
        let Some(bus) = &self.rt.bus else {
            return;
        };
        let topic = format!("table.{}.changed", self.table.name);
        let payload = serde_json::json!({
            "schema": self.table.schema,
            "table": self.table.name,
            "operation": operation,
            "count": count,
        });
        if let Err(e) = bus.publish(&topic, payload) {
            tracing::debug!(target: "maggate", error = %e, topic, "change event not published");
        }
    }

    fn applied(&self, headers: &mut Vec<(header::HeaderName, String)>) {
        let mut applied = Vec::new();
        match self.prefs().representation {
            Some(PreferReturn::Representation) => applied.push("return=representation"),
            Some(PreferReturn::HeadersOnly) => applied.push("return=headers-only"),
            Some(PreferReturn::Minimal) => applied.push("return=minimal"),
            None => {}
        }
        match self.prefs().resolution {
            Some(PreferResolution::MergeDuplicates) => {
                applied.push("resolution=merge-duplicates");
            }
            Some(PreferResolution::IgnoreDuplicates) => {
                applied.push("resolution=ignore-duplicates");
            }
            None => {}
        }
        if !applied.is_empty() {
            headers.push((
                header::HeaderName::from_static("preference-applied"),
                applied.join(", "),
            ));
        }
    }

    fn body_reply(
        &self,
        status: u16,
        mut headers: Vec<(header::HeaderName, String)>,
        out: &Outcome,
    ) -> Reply {
        self.applied(&mut headers);
        match (&out.body, self.returning(false)) {
            (Some(body), Returning::Selected) => Reply {
                status,
                headers,
                body: Some(if self.singular {
                    unwrap_single(body)
                } else {
                    body.clone()
                }),
                content_type: if self.singular { OBJECT_JSON } else { JSON },
            },
            _ => Reply {
                status: if status == 200 { 204 } else { status },
                headers,
                body: None,
                content_type: JSON,
            },
        }
    }

    /// PUT: insert or replace the one row named by its primary key.
    async fn put(&self, payload: serde_json::Value) -> ApiResult<Reply> {
        let serde_json::Value::Object(row) = payload else {
            return Err(ApiError::invalid_body("Expected a JSON object"));
        };
        sql::check_put(self.table, &self.request.query, &row)?;
        self.upsert(
            vec![row],
            Some(crate::request::PreferResolution::MergeDuplicates),
        )
        .await
    }

    async fn insert(&self, payload: serde_json::Value) -> ApiResult<Reply> {
        let rows: Vec<serde_json::Map<String, serde_json::Value>> = match payload {
            serde_json::Value::Object(o) => vec![o],
            serde_json::Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    serde_json::Value::Object(o) => Ok(o),
                    _ => Err(ApiError::invalid_body("All array elements must be objects")),
                })
                .collect::<ApiResult<_>>()?,
            _ => return Err(ApiError::invalid_body("Expected a JSON object or array")),
        };
        self.upsert(rows, self.prefs().resolution).await
    }

    /// An INSERT of `rows`, an upsert when `resolution` is given.
    async fn upsert(
        &self,
        rows: Vec<serde_json::Map<String, serde_json::Value>>,
        resolution: Option<crate::request::PreferResolution>,
    ) -> ApiResult<Reply> {
        let ret = self.returning(true);
        if let Some(g) = self.guard {
            g.check_rows(self.table, Command::Insert, &rows)?;
            if resolution == Some(PreferResolution::MergeDuplicates) {
                g.check_merge(self.table)?;
            }
        }
        if rows.is_empty() {
            let out = Outcome {
                body: Some("[]".to_owned()),
                page_total: 0,
                total: None,
            };
            return Ok(self.body_reply(201, vec![(header::CONTENT_RANGE, "*/*".to_owned())], &out));
        }
        let opts = sql::InsertOptions {
            rows: &rows,
            missing: self.prefs().missing,
            resolution,
        };
        let back = ret == Returning::Selected
            && written::reads_back(
                self.catalog,
                self.table,
                &self.request.query,
                WriteKind::Insert,
            );
        if back {
            written::check(self.catalog, self.table, &self.request.query)?;
        }
        let plan_ret = if back { Returning::Keys } else { ret };
        let plan = sql::insert(
            self.catalog,
            self.table,
            &self.request.query,
            opts,
            plan_ret,
        )?;
        let pre = match resolution {
            Some(_) => sql::conflict_count(self.catalog, self.table, &self.request.query, &rows)?,
            None => None,
        };
        let (out, existing) = if back {
            self.write_back(ReadBack::Insert(&plan), None, pre.as_ref())
                .await?
        } else {
            self.write(&plan, None, pre.as_ref()).await?
        };
        // An upsert that only met existing rows created nothing: 200, as PostgREST.
        let status = if resolution.is_some() && existing.unwrap_or(0) >= rows.len() as u64 {
            200
        } else {
            201
        };
        self.changed("insert", out.page_total).await;
        let mut headers = vec![(header::CONTENT_RANGE, "*/*".to_owned())];
        if ret == Returning::PrimaryKey
            && let Some(loc) = out.body.as_deref().and_then(|b| self.location(b))
        {
            headers.push((header::LOCATION, loc));
        }
        let mut reply = self.body_reply(status, headers, &out);
        if status == 200 && reply.status == 204 {
            reply.status = 200;
        }
        Ok(reply)
    }

    /// `/table?pk=eq.value` for the first returned row.
    fn location(&self, body: &str) -> Option<String> {
        let rows: serde_json::Value = serde_json::from_str(body).ok()?;
        let first = rows.as_array()?.first()?.as_object()?;
        let mut loc = format!("/{}?", encode(&self.table.name));
        for (i, k) in self.table.primary_key.iter().enumerate() {
            if i > 0 {
                loc.push('&');
            }
            let v = match first.get(k)? {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            loc.push_str(&format!("{}=eq.{}", encode(k), encode(&v)));
        }
        Some(loc)
    }

    fn max_affected(&self) -> Option<i64> {
        let p = self.prefs();
        (p.handling == Some(PreferHandling::Strict))
            .then_some(p.max_affected)
            .flatten()
    }

    fn write_range(n: u64) -> String {
        if n == 0 {
            "*/*".to_owned()
        } else {
            format!("0-{}/*", n - 1)
        }
    }

    async fn update(&self, payload: serde_json::Value) -> ApiResult<Reply> {
        let serde_json::Value::Object(payload) = payload else {
            return Err(ApiError::invalid_body("Expected a JSON object"));
        };
        if let Some(g) = self.guard {
            g.check_rows(self.table, Command::Update, std::slice::from_ref(&payload))?;
        }
        let ret = self.returning(false);
        let back = ret == Returning::Selected
            && written::reads_back(
                self.catalog,
                self.table,
                &self.request.query,
                WriteKind::Update,
            );
        if back {
            written::check(self.catalog, self.table, &self.request.query)?;
        }
        // SQLite returns the written keys; MariaDB locates them first (see `write_back`).
        let plan_ret = match (back, self.catalog.dialect()) {
            (true, Dialect::Sqlite) => Returning::Keys,
            (true, _) => Returning::Nothing,
            (false, _) => ret,
        };
        let Some(plan) = sql::update(
            self.catalog,
            self.table,
            &self.request.query,
            &payload,
            plan_ret,
        )?
        else {
            let out = Outcome {
                body: Some("[]".to_owned()),
                page_total: 0,
                total: None,
            };
            return Ok(self.body_reply(200, vec![(header::CONTENT_RANGE, "*/*".to_owned())], &out));
        };
        let (out, _) = if back {
            let step = ReadBack::Update {
                plan: &plan,
                payload: &payload,
            };
            self.write_back(step, self.max_affected(), None).await?
        } else {
            self.write(&plan, self.max_affected(), None).await?
        };
        self.changed("update", out.page_total).await;
        let headers = vec![(header::CONTENT_RANGE, Self::write_range(out.page_total))];
        Ok(self.body_reply(200, headers, &out))
    }

    async fn delete(&self) -> ApiResult<Reply> {
        let ret = self.returning(false);
        let (out, _) = if ret == Returning::Selected
            && written::reads_back(
                self.catalog,
                self.table,
                &self.request.query,
                WriteKind::Delete,
            ) {
            written::check(self.catalog, self.table, &self.request.query)?;
            self.write_back(ReadBack::Delete, self.max_affected(), None)
                .await?
        } else {
            let plan = sql::delete(self.catalog, self.table, &self.request.query, ret)?;
            self.write(&plan, self.max_affected(), None).await?
        };
        self.changed("delete", out.page_total).await;
        let headers = vec![(header::CONTENT_RANGE, Self::write_range(out.page_total))];
        Ok(self.body_reply(200, headers, &out))
    }
}

/// `/rpc/{name}`: POST with the arguments as a JSON object, GET (read-only functions) with
/// them in the query string; other query parameters refine set results as on a table.
async fn rpc(
    inner: &Inner,
    session: &mut Session,
    catalog: &Catalog,
    parts: &http::request::Parts,
    body: Body,
    name: &str,
) -> ApiResult<Reply> {
    let d = catalog.dialect();
    if d != magmobo_core::roles::storage::Dialect::Postgres {
        return Err(sql::rpc::postgres_only(d));
    }
    let headers = &parts.headers;
    let is_read = matches!(parts.method, Method::GET | Method::HEAD);
    if !is_read && parts.method != Method::POST {
        return Err(ApiError::new(
            405,
            "PGRST101",
            "Only GET, HEAD and POST can call a function",
        ));
    }
    let prefer: Vec<&str> = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let range = if is_read {
        headers.get(header::RANGE).and_then(|v| v.to_str().ok())
    } else {
        None
    };
    let singular = negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()))?;
    let mut params = QueryParams::decode(parts.uri.query().unwrap_or(""));
    let mut args: Vec<(String, sql::rpc::Arg)> = Vec::new();
    if is_read {
        // Query parameters naming a parameter of the function are arguments; the rest
        // are filters on its result.
        let param_names: Vec<&str> = catalog
            .schema()
            .functions
            .iter()
            .filter(|f| f.name == name)
            .flat_map(|f| f.params.iter().map(|p| p.name.as_str()))
            .collect();
        params.pairs.retain(|(k, v)| match v {
            Some(v) if param_names.contains(&k.as_ref()) => {
                args.push((k.to_string(), sql::rpc::Arg::Text(v.to_string())));
                false
            }
            _ => true,
        });
    } else {
        let declared_empty = headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0");
        let payload = if declared_empty {
            serde_json::Value::Object(serde_json::Map::new())
        } else {
            read_json(body, headers, inner.config.max_body_bytes).await?
        };
        if sql::rpc::single_unnamed_json(catalog, name).is_some() {
            // PostgREST's single unnamed JSON parameter: the body is the argument.
            args.push((String::new(), sql::rpc::Arg::Json(payload)));
        } else {
            let serde_json::Value::Object(members) = payload else {
                return Err(ApiError::invalid_body(
                    "Expected a JSON object of named arguments",
                ));
            };
            args.extend(
                members
                    .into_iter()
                    .map(|(k, v)| (k, sql::rpc::Arg::Json(v))),
            );
        }
    }
    let arg_names: Vec<&str> = args.iter().map(|(k, _)| k.as_str()).collect();
    let function = sql::rpc::find(catalog, name, &arg_names)?;
    if is_read && !function.read_only {
        return Err(ApiError::new(
            405,
            "25006",
            format!("cannot call the volatile function '{name}' with GET"),
        )
        .hint("Call it with POST, or declare it STABLE or IMMUTABLE."));
    }
    let request = Request::parse(
        &params,
        &RequestHeaders {
            prefer: &prefer,
            range,
        },
    )?;
    session.prefer(inner.config.tx_end, request.preferences.transaction);
    let session = &*session;
    let opts = ReadOptions {
        max_rows: inner.config.max_rows,
        count: request.preferences.count.is_some(),
        aggregates: inner.config.aggregates_enabled,
    };
    let call = sql::rpc::call(
        catalog,
        function,
        &args,
        &request.query,
        request.range,
        opts,
    )?;
    if !call.scalar {
        return answer_read(session, &request, singular, &call.plan).await;
    }
    let out = run_in(session, &call.plan).await?;
    let body = out.body.unwrap_or_else(|| "null".to_owned());
    // A function returning one row of a table type answers with that row as an object.
    let body = if body.trim_start().starts_with('[') {
        unwrap_single(&body)
    } else {
        body
    };
    Ok(Reply {
        status: 200,
        headers: Vec::new(),
        body: Some(if body.is_empty() {
            "null".to_owned()
        } else {
            body
        }),
        content_type: JSON,
    })
}

/// Runs a read plan and answers as PostgREST does: `Content-Range`, 206 on a partial
/// counted page, 416 past the end, a single object when asked for.
async fn answer_read(
    session: &Session,
    request: &Request<'_>,
    singular: bool,
    plan: &Plan,
) -> ApiResult<Reply> {
    answer_read_counted(session, request, singular, plan, None).await
}

/// [`answer_read`] with the total given (a planner's estimate) instead of counted.
async fn answer_read_counted(
    session: &Session,
    request: &Request<'_>,
    singular: bool,
    plan: &Plan,
    total: Option<u64>,
) -> ApiResult<Reply> {
    let mut out = run_in(session, plan).await?;
    if total.is_some() {
        out.total = total;
    }
    let lower = request.range.offset;
    let total_s = out.total.map_or_else(|| "*".to_owned(), |t| t.to_string());
    if let Some(total) = out.total
        && lower > total
    {
        let e = ApiError::new(416, "PGRST103", "Requested range not satisfiable").details(format!(
            "An offset of {lower} was requested, but there are only {total} rows."
        ));
        return Err(e).or_else(|e| {
            Ok(Reply {
                status: 416,
                headers: vec![(header::CONTENT_RANGE, format!("*/{total}"))],
                body: Some(e.to_json()),
                content_type: JSON,
            })
        });
    }
    let content_range = if out.page_total > 0 && out.total != Some(0) {
        format!("{lower}-{}/{total_s}", lower + out.page_total - 1)
    } else {
        format!("*/{total_s}")
    };
    let status = match out.total {
        Some(total) if out.page_total < total => 206,
        _ => 200,
    };
    let mut headers = vec![(header::CONTENT_RANGE, content_range)];
    if let Some(c) = request.preferences.count {
        let applied = match c {
            crate::request::PreferCount::Exact => "count=exact",
            crate::request::PreferCount::Planned => "count=planned",
            crate::request::PreferCount::Estimated => "count=estimated",
        };
        headers.push((
            header::HeaderName::from_static("preference-applied"),
            applied.to_owned(),
        ));
    }
    let body = out.body.unwrap_or_else(|| "[]".to_owned());
    if singular {
        if out.page_total != 1 {
            return Err(not_single(out.page_total));
        }
        return Ok(Reply {
            status: 200,
            headers,
            body: Some(unwrap_single(&body)),
            content_type: OBJECT_JSON,
        });
    }
    Ok(Reply {
        status,
        headers,
        body: Some(body),
        content_type: JSON,
    })
}

/// Percent-encodes everything but unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation() {
        assert_eq!(negotiate(None), Ok(false));
        assert_eq!(negotiate(Some("application/json")), Ok(false));
        assert_eq!(
            negotiate(Some("application/vnd.pgrst.object+json")),
            Ok(true)
        );
        assert_eq!(negotiate(Some("text/csv")), Ok(false));
        assert_eq!(
            negotiate(Some("application/xml")).unwrap_err().code,
            "PGRST107"
        );
    }

    #[test]
    fn csv_is_chosen_only_when_listed_before_json() {
        let wants = |v: &str| wants_csv(Some(&HeaderValue::from_str(v).unwrap()));
        assert!(wants("text/csv"));
        assert!(wants("text/csv;q=0.9, application/json"));
        assert!(!wants("application/json, text/csv"));
        assert!(!wants("*/*"));
        assert!(!wants_csv(None));
    }

    #[test]
    fn database_messages_keep_their_sqlstate() {
        let e = magmobo_core::Error::part(
            "SQLite",
            "query: UNIQUE constraint failed: items.name (SQLSTATE 23505)",
        );
        let api = db_error(&e);
        assert_eq!((api.status, api.code.as_str()), (409, "23505"));
        assert_eq!(api.message, "UNIQUE constraint failed: items.name");
    }

    #[test]
    fn singular_bodies_lose_their_brackets() {
        assert_eq!(unwrap_single("[{\"a\":1}]"), "{\"a\":1}");
    }
}
