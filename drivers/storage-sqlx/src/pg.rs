//! PostgreSQL: binds, decoding of every built-in type into [`Value`], catalog introspection
//! (tables, views, keys, enums, comments, functions), the schema fingerprint, and LISTEN.
//!
//! Decoding reads the binary wire format directly where sqlx has no type for it (numeric,
//! inet, bit strings), so numeric keeps its exact digits and nothing needs an extra crate.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::str::FromStr;

use magmobo_core::roles::schema::{
    Column, ColumnKind, Function, FunctionParam, Schema, Table, TableKind,
};
use magmobo_core::roles::storage::Value;
use sqlx::postgres::{
    PgConnectOptions, PgConnection, PgRow, PgTypeInfo, PgTypeKind, PgValueFormat, PgValueRef,
    Postgres,
};
use sqlx::{Decode, Row as _, TypeInfo as _, ValueRef as _};

use crate::StorageOptions;
use crate::common::{Backend, KeyKind, Query, RowExt as _, fetch, iso_datetime, iso_time, to_json};
use crate::error::Failure;

impl Backend for Postgres {
    fn bind_value<'q>(query: Query<'q, Self>, value: &'q Value) -> Query<'q, Self> {
        match value {
            // An untyped NULL, so PostgreSQL infers its type from the context like a literal.
            Value::Null => query.bind(UntypedNull),
            Value::Bool(b) => query.bind(*b),
            Value::Int(i) => query.bind(*i),
            Value::Float(f) => query.bind(*f),
            Value::Text(s) => query.bind(s.as_str()),
            Value::Bytes(b) => query.bind(b.as_slice()),
            Value::Json(j) => query.bind(sqlx::types::Json(j)),
        }
    }

    fn decode(row: &PgRow, index: usize) -> Result<Value, String> {
        let raw = row.try_get_raw(index).map_err(|e| e.to_string())?;
        decode_value(raw)
    }
}

/// NULL with the "unspecified" type OID 0.
struct UntypedNull;

impl sqlx::Type<Postgres> for UntypedNull {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(sqlx::postgres::types::Oid(0))
    }
}

impl sqlx::Encode<'_, Postgres> for UntypedNull {
    fn encode_by_ref(
        &self,
        _buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        Ok(sqlx::encode::IsNull::Yes)
    }
}

/// A `real` through its shortest text form, so 1.1 stays 1.1 rather than 1.100000023841858
/// (also used by the pipelined path).
pub(crate) fn float4_value(f: f32) -> Value {
    Value::Float(f.to_string().parse().unwrap_or(f64::from(f)))
}

/// A `json` or `jsonb` value in binary format (`jsonb` carries a version byte, 1).
pub(crate) fn json_value(bytes: &[u8], jsonb: bool) -> Result<Value, String> {
    let bytes = match (jsonb, bytes.split_first()) {
        (false, _) => bytes,
        (true, Some((1, rest))) => rest,
        (true, _) => return Err("unsupported JSONB wire version".to_owned()),
    };
    serde_json::from_slice(bytes)
        .map(Value::Json)
        .map_err(|e| e.to_string())
}

fn decode_value(raw: PgValueRef<'_>) -> Result<Value, String> {
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let ty = raw.type_info().into_owned();
    decode_as(raw, &ty)
}

fn err(e: sqlx::error::BoxDynError) -> String {
    e.to_string()
}

fn decode_as(raw: PgValueRef<'_>, ty: &PgTypeInfo) -> Result<Value, String> {
    match ty.kind() {
        PgTypeKind::Enum(_) => return Ok(Value::Text(raw.as_str().map_err(err)?.to_owned())),
        PgTypeKind::Domain(base) => return decode_as(raw, base),
        PgTypeKind::Array(_) => return decode_array(raw),
        _ => {}
    }
    if raw.format() == PgValueFormat::Text {
        return Ok(Value::Text(raw.as_str().map_err(err)?.to_owned()));
    }
    let name = ty.name();
    Ok(match name {
        "BOOL" => Value::Bool(dec::<bool>(raw)?),
        "INT2" => Value::Int(dec::<i16>(raw)?.into()),
        "INT4" => Value::Int(dec::<i32>(raw)?.into()),
        "INT8" => Value::Int(dec::<i64>(raw)?),
        "OID" => Value::Int(dec::<sqlx::postgres::types::Oid>(raw)?.0.into()),
        "FLOAT4" => float4_value(dec::<f32>(raw)?),
        "FLOAT8" => Value::Float(dec::<f64>(raw)?),
        "NUMERIC" => Value::Text(numeric_text(raw.as_bytes().map_err(err)?)?),
        "MONEY" => {
            let cents = i64::from_be_bytes(fixed(raw.as_bytes().map_err(err)?)?);
            let sign = if cents < 0 { "-" } else { "" };
            let abs = cents.unsigned_abs();
            Value::Text(format!("{sign}{}.{:02}", abs / 100, abs % 100))
        }
        "TEXT" | "VARCHAR" | "CHAR" | "NAME" | "UNKNOWN" | "XML" | "citext" | "ltree"
        | "lquery" | "REGCLASS" | "REGPROC" | "REGTYPE" => {
            Value::Text(raw.as_str().map_err(err)?.to_owned())
        }
        "\"CHAR\"" => Value::Text(
            char::from(raw.as_bytes().map_err(err)?.first().copied().unwrap_or(0)).to_string(),
        ),
        "JSON" | "JSONB" => json_value(raw.as_bytes().map_err(err)?, name == "JSONB")?,
        "BYTEA" => Value::Bytes(raw.as_bytes().map_err(err)?.to_vec()),
        "UUID" => Value::Text(dec::<sqlx::types::Uuid>(raw)?.to_string()),
        "DATE" => Value::Text(dec::<chrono::NaiveDate>(raw)?.to_string()),
        "TIME" => Value::Text(iso_time(dec::<chrono::NaiveTime>(raw)?)),
        "TIMETZ" => {
            let t = dec::<sqlx::postgres::types::PgTimeTz<chrono::NaiveTime, chrono::FixedOffset>>(
                raw,
            )?;
            Value::Text(format!("{}{}", iso_time(t.time), t.offset))
        }
        "TIMESTAMP" => Value::Text(iso_datetime(dec::<chrono::NaiveDateTime>(raw)?)),
        "TIMESTAMPTZ" => Value::Text(
            dec::<chrono::DateTime<chrono::Utc>>(raw)?
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
        ),
        "INTERVAL" => {
            let i = dec::<sqlx::postgres::types::PgInterval>(raw)?;
            Value::Text(iso_interval(i.months, i.days, i.microseconds))
        }
        "INET" | "CIDR" => Value::Text(inet_text(raw.as_bytes().map_err(err)?, name == "CIDR")?),
        "MACADDR" => Value::Text(
            raw.as_bytes()
                .map_err(err)?
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
        ),
        "BIT" | "VARBIT" => Value::Text(bit_text(raw.as_bytes().map_err(err)?)?),
        "VOID" => Value::Null,
        other => {
            return Err(format!(
                "PostgreSQL type `{other}` is not decoded by this driver: cast it in the query, e.g. `column::text`"
            ));
        }
    })
}

/// An array element decoded with the element type the server sent.
struct Cell(Value);

impl sqlx::Type<Postgres> for Cell {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_name("text")
    }
}

impl<'r> Decode<'r, Postgres> for Cell {
    fn decode(value: PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(Cell(decode_value(value)?))
    }
}

fn decode_array(raw: PgValueRef<'_>) -> Result<Value, String> {
    let cells = dec::<Vec<Option<Cell>>>(raw).map_err(|e| {
        format!("{e}; for multi-dimensional arrays select `array_to_json(column)` instead")
    })?;
    Ok(Value::Json(serde_json::Value::Array(
        cells
            .into_iter()
            .map(|c| c.map_or(serde_json::Value::Null, |Cell(v)| to_json(v)))
            .collect(),
    )))
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], String> {
    bytes
        .try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", bytes.len()))
}

fn be_u16(bytes: &[u8], at: usize) -> Result<u16, String> {
    match bytes.get(at..at + 2) {
        Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
        _ => Err("truncated value".to_owned()),
    }
}

/// The exact decimal text of a binary NUMERIC (base-10000 digits, a weight and a scale).
pub(crate) fn numeric_text(bytes: &[u8]) -> Result<String, String> {
    let ndigits = usize::from(be_u16(bytes, 0)?);
    let weight = i64::from(be_u16(bytes, 2)? as i16);
    let sign = be_u16(bytes, 4)?;
    let dscale = usize::from(be_u16(bytes, 6)?);
    match sign {
        0xC000 => return Ok("NaN".to_owned()),
        0xD000 => return Ok("Infinity".to_owned()),
        0xF000 => return Ok("-Infinity".to_owned()),
        _ => {}
    }
    let digits = (0..ndigits)
        .map(|i| be_u16(bytes, 8 + 2 * i))
        .collect::<Result<Vec<_>, _>>()?;
    let digit = |i: i64| -> u16 {
        usize::try_from(i)
            .ok()
            .and_then(|i| digits.get(i).copied())
            .unwrap_or(0)
    };
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for i in 0..=weight {
            if i == 0 {
                let _ = write!(s, "{}", digit(i));
            } else {
                let _ = write!(s, "{:04}", digit(i));
            }
        }
    }
    if dscale > 0 {
        let mut frac = String::new();
        let mut i = weight + 1;
        while frac.len() < dscale {
            let _ = write!(frac, "{:04}", digit(i));
            i += 1;
        }
        frac.truncate(dscale);
        s.push('.');
        s.push_str(&frac);
    }
    Ok(s)
}

/// An ISO 8601 duration as PostgreSQL's `iso_8601` interval style writes it.
pub(crate) fn iso_interval(months: i32, days: i32, micros: i64) -> String {
    let mut s = String::from("P");
    let (years, months) = (months / 12, months % 12);
    if years != 0 {
        let _ = write!(s, "{years}Y");
    }
    if months != 0 {
        let _ = write!(s, "{months}M");
    }
    if days != 0 {
        let _ = write!(s, "{days}D");
    }
    if micros != 0 {
        s.push('T');
        let hours = micros / 3_600_000_000;
        let minutes = (micros % 3_600_000_000) / 60_000_000;
        let rest = micros % 60_000_000;
        if hours != 0 {
            let _ = write!(s, "{hours}H");
        }
        if minutes != 0 {
            let _ = write!(s, "{minutes}M");
        }
        if rest != 0 {
            let sign = if rest < 0 { "-" } else { "" };
            let rest = rest.unsigned_abs();
            let (secs, frac) = (rest / 1_000_000, rest % 1_000_000);
            if frac == 0 {
                let _ = write!(s, "{sign}{secs}S");
            } else {
                let frac = format!("{frac:06}");
                let _ = write!(s, "{sign}{secs}.{}S", frac.trim_end_matches('0'));
            }
        }
    }
    if s == "P" {
        s.push_str("T0S");
    }
    s
}

fn inet_text(bytes: &[u8], cidr: bool) -> Result<String, String> {
    let (&[family, bits, _, len], addr) = bytes.split_at_checked(4).ok_or("truncated inet")? else {
        return Err("truncated inet".to_owned());
    };
    let (text, max) = match (family, len, addr) {
        (2, 4, &[a, b, c, d]) => (std::net::Ipv4Addr::new(a, b, c, d).to_string(), 32),
        (3, 16, _) => (
            std::net::Ipv6Addr::from(fixed::<16>(addr)?).to_string(),
            128,
        ),
        _ => return Err(format!("unexpected inet family {family}")),
    };
    Ok(if cidr || bits != max {
        format!("{text}/{bits}")
    } else {
        text
    })
}

fn bit_text(bytes: &[u8]) -> Result<String, String> {
    let (len, data) = bytes.split_at_checked(4).ok_or("truncated bit string")?;
    let len = usize::try_from(i32::from_be_bytes(fixed(len)?)).unwrap_or(0);
    Ok((0..len)
        .map(|i| {
            let byte = data.get(i / 8).copied().unwrap_or(0);
            if byte & (0x80 >> (i % 8)) != 0 {
                '1'
            } else {
                '0'
            }
        })
        .collect())
}

/// Connect options for `url` with our application name and statement timeout.
pub(crate) fn connect_options(
    url: &str,
    options: &StorageOptions,
) -> Result<PgConnectOptions, sqlx::Error> {
    let mut connect = PgConnectOptions::from_str(url)?.application_name("magmobo");
    if let Some(timeout) = options.statement_timeout {
        connect = connect.options([("statement_timeout", timeout.as_millis().to_string())]);
    }
    Ok(connect)
}

/// A pool that opens nothing until first used.
pub(crate) fn pool(
    connect: PgConnectOptions,
    options: &StorageOptions,
) -> crate::pool::Pool<Postgres> {
    crate::pool::build(connect, options, None)
}

/// `PostgreSQL 15.20`.
pub(crate) async fn version(conn: &mut PgConnection) -> Result<String, Failure> {
    let rows = fetch(&mut *conn, "SHOW server_version", &[]).await?;
    let full = rows
        .first()
        .map(|r| r.text("server_version"))
        .unwrap_or_default();
    let short = full.split_whitespace().next().unwrap_or("").to_owned();
    Ok(format!("PostgreSQL {short}"))
}

/// The catalog filter shared by introspection and the fingerprint: user schemas (or those in
/// the JSON array `$1`), never our own bookkeeping tables.
const SCHEMA_FILTER: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
      AND (jsonb_array_length($1::jsonb) = 0
           OR n.nspname = ANY (ARRAY(SELECT jsonb_array_elements_text($1::jsonb))))";

const RELATION_FILTER: &str = "c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
      AND c.relname NOT LIKE '\\_magmobo\\_%'";

fn schemas_param(schemas: &[String]) -> Value {
    Value::Json(serde_json::Value::from(schemas.to_vec()))
}

/// A hash computed in the server over everything introspection reads.
pub(crate) async fn fingerprint(
    conn: &mut PgConnection,
    schemas: &[String],
) -> Result<String, Failure> {
    let sql = format!(
        "SELECT md5(coalesce(string_agg(x, E'\\n' ORDER BY x), '')) AS fp FROM (
           SELECT concat_ws(' ', n.nspname, c.relname, c.relkind, a.attnum, a.attname,
                  format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attgenerated, a.attidentity,
                  pg_get_expr(d.adbin, d.adrelid), col_description(c.oid, a.attnum),
                  obj_description(c.oid, 'pg_class')) AS x
           FROM pg_attribute a
           JOIN pg_class c ON c.oid = a.attrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
           WHERE a.attnum > 0 AND NOT a.attisdropped AND {RELATION_FILTER} AND {SCHEMA_FILTER}
           UNION ALL
           SELECT concat_ws(' ', n.nspname, c.relname, con.conname, pg_get_constraintdef(con.oid))
           FROM pg_constraint con
           JOIN pg_class c ON c.oid = con.conrelid
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE {RELATION_FILTER} AND {SCHEMA_FILTER}
           UNION ALL
           SELECT concat_ws(' ', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid),
                  format_type(p.prorettype, NULL), p.proretset, p.provolatile, p.pronargdefaults)
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE p.prokind = 'f' AND {SCHEMA_FILTER}
           UNION ALL
           SELECT concat_ws(' ', n.nspname, t.typname, e.enumsortorder, e.enumlabel)
           FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
           JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE {SCHEMA_FILTER}
         ) s"
    );
    let rows = fetch(&mut *conn, &sql, &[schemas_param(schemas)]).await?;
    Ok(rows.first().map(|r| r.text("fp")).unwrap_or_default())
}

fn kind_of(base: &str, category: &str) -> ColumnKind {
    match (base, category) {
        (_, "A") => ColumnKind::Array,
        ("int2" | "int4" | "int8" | "oid", _) => ColumnKind::Integer,
        (_, "N") => ColumnKind::Number,
        (_, "B") => ColumnKind::Boolean,
        ("json" | "jsonb", _) => ColumnKind::Json,
        ("uuid", _) => ColumnKind::Uuid,
        ("bytea", _) => ColumnKind::Binary,
        (_, "D") | ("interval", _) => ColumnKind::Temporal,
        (_, "S" | "E") => ColumnKind::Text,
        _ => ColumnKind::Other,
    }
}

/// Reads the catalogs into the dialect-neutral model.
pub(crate) async fn introspect(
    conn: &mut PgConnection,
    schemas: &[String],
) -> Result<Schema, Failure> {
    let params = [schemas_param(schemas)];
    let tables_sql = format!(
        "SELECT n.nspname::text AS schema_name, c.relname::text AS table_name,
                c.relkind::text AS relkind, obj_description(c.oid, 'pg_class') AS comment,
                CASE WHEN c.relkind IN ('r', 'p', 'f') THEN true
                     ELSE (pg_relation_is_updatable(c.oid::regclass, true) & 8) = 8 END AS insertable
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE {RELATION_FILTER} AND {SCHEMA_FILTER}
         ORDER BY 1, 2"
    );
    let columns_sql = format!(
        "SELECT n.nspname::text AS schema_name, c.relname::text AS table_name,
                a.attname::text AS column_name, format_type(a.atttypid, a.atttypmod) AS data_type,
                a.attnotnull AS notnull, pg_get_expr(d.adbin, d.adrelid) AS default_expr,
                a.attidentity::text AS identity, a.attgenerated::text AS generated,
                col_description(c.oid, a.attnum) AS comment,
                bt.typname::text AS base_type, bt.typcategory::text AS category,
                (SELECT string_agg(e.enumlabel::text, E'\\x1f' ORDER BY e.enumsortorder)
                   FROM pg_enum e WHERE e.enumtypid = bt.oid) AS enum_values
         FROM pg_attribute a
         JOIN pg_class c ON c.oid = a.attrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_type t ON t.oid = a.atttypid
         JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attnum > 0 AND NOT a.attisdropped AND {RELATION_FILTER} AND {SCHEMA_FILTER}
         ORDER BY 1, 2, a.attnum"
    );
    let keys_sql = format!(
        "SELECT n.nspname::text AS schema_name, c.relname::text AS table_name,
                con.conname::text AS constraint_name, con.contype::text AS kind,
                a.attname::text AS column_name, fn.nspname::text AS foreign_schema,
                fc.relname::text AS foreign_table, fa.attname::text AS foreign_column
         FROM pg_constraint con
         JOIN pg_class c ON c.oid = con.conrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
         LEFT JOIN pg_class fc ON fc.oid = con.confrelid
         LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
         LEFT JOIN pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = con.confkey[k.ord]
         WHERE con.contype IN ('p', 'u', 'f') AND {RELATION_FILTER} AND {SCHEMA_FILTER}
         ORDER BY 1, 2, 3, k.ord"
    );
    let functions_sql = format!(
        "SELECT p.oid::int8 AS oid, n.nspname::text AS schema_name, p.proname::text AS function_name,
                format_type(p.prorettype, NULL) AS returns, p.proretset AS returns_set,
                p.provolatile::text AS volatility, p.pronargdefaults::int8 AS defaults,
                a.ord AS ord, COALESCE(a.arg_name, '') AS arg_name,
                format_type(a.arg_type, NULL) AS arg_type, COALESCE(a.arg_mode::text, 'i') AS arg_mode,
                t.typname::text AS arg_base, t.typcategory::text AS arg_category
         FROM pg_proc p
         JOIN pg_namespace n ON n.oid = p.pronamespace
         LEFT JOIN LATERAL unnest(COALESCE(p.proallargtypes, p.proargtypes::oid[]),
                                  p.proargmodes, p.proargnames)
                WITH ORDINALITY AS a(arg_type, arg_mode, arg_name, ord) ON true
         LEFT JOIN pg_type t ON t.oid = a.arg_type
         WHERE p.prokind = 'f' AND {SCHEMA_FILTER}
           AND p.prorettype NOT IN ('trigger'::regtype, 'event_trigger'::regtype)
           AND NOT EXISTS (SELECT 1 FROM pg_depend dep WHERE dep.objid = p.oid AND dep.deptype = 'e')
         ORDER BY 2, 3, 1, a.ord"
    );
    let fingerprint = fingerprint(&mut *conn, schemas).await?;
    let table_rows = fetch(&mut *conn, &tables_sql, &params).await?;
    let column_rows = fetch(&mut *conn, &columns_sql, &params).await?;
    let key_rows = fetch(&mut *conn, &keys_sql, &params).await?;
    let function_rows = fetch(&mut *conn, &functions_sql, &params).await?;

    let mut tables: BTreeMap<(String, String), Table> = BTreeMap::new();
    for r in &table_rows {
        let key = (r.text("schema_name"), r.text("table_name"));
        let kind = if matches!(r.text("relkind").as_str(), "v" | "m") {
            TableKind::View
        } else {
            TableKind::Table
        };
        tables.insert(
            key.clone(),
            Table {
                schema: key.0,
                name: key.1,
                kind,
                columns: Vec::new(),
                primary_key: Vec::new(),
                unique: Vec::new(),
                foreign_keys: Vec::new(),
                insertable: r.flag("insertable"),
                comment: r.opt_text("comment"),
            },
        );
    }
    for r in &column_rows {
        let Some(table) = tables.get_mut(&(r.text("schema_name"), r.text("table_name"))) else {
            continue;
        };
        let identity = r.text("identity");
        let generated = !r.text("generated").is_empty() || identity == "a";
        let default = match identity.as_str() {
            "a" => Some("GENERATED ALWAYS AS IDENTITY".to_owned()),
            "d" => Some("GENERATED BY DEFAULT AS IDENTITY".to_owned()),
            _ => r.opt_text("default_expr"),
        };
        table.columns.push(Column {
            name: r.text("column_name"),
            data_type: r.text("data_type"),
            kind: kind_of(&r.text("base_type"), &r.text("category")),
            nullable: !r.flag("notnull"),
            default,
            generated,
            enum_values: r
                .opt_text("enum_values")
                .map(|v| v.split('\u{1f}').map(str::to_owned).collect())
                .unwrap_or_default(),
            comment: r.opt_text("comment"),
        });
    }
    crate::common::fold_keys(&mut tables, &key_rows, |r| match r.text("kind").as_str() {
        "p" => Some(KeyKind::Primary),
        "u" => Some(KeyKind::Unique),
        _ => Some(KeyKind::Foreign),
    });

    let mut functions: Vec<Function> = Vec::new();
    let mut last_oid = None;
    let mut defaults_left = Vec::new();
    for r in &function_rows {
        let oid = r.int("oid");
        if last_oid != Some(oid) {
            last_oid = Some(oid);
            defaults_left.push(r.int("defaults"));
            functions.push(Function {
                schema: r.text("schema_name"),
                name: r.text("function_name"),
                params: Vec::new(),
                returns: r.text("returns"),
                returns_set: r.flag("returns_set"),
                read_only: matches!(r.text("volatility").as_str(), "i" | "s"),
                returns_columns: Vec::new(),
            });
        }
        // TABLE (...) columns and OUT parameters describe the result rows.
        if r.opt_text("arg_type").is_some()
            && matches!(r.text("arg_mode").as_str(), "t" | "o" | "b")
            && let Some(f) = functions.last_mut()
        {
            f.returns_columns.push(Column {
                name: r.text("arg_name"),
                data_type: r.text("arg_type"),
                kind: kind_of(&r.text("arg_base"), &r.text("arg_category")),
                nullable: true,
                default: None,
                generated: false,
                enum_values: Vec::new(),
                comment: None,
            });
        }
        if r.opt_text("arg_type").is_some()
            && matches!(r.text("arg_mode").as_str(), "i" | "b" | "v")
            && let Some(f) = functions.last_mut()
        {
            f.params.push(FunctionParam {
                name: r.text("arg_name"),
                data_type: r.text("arg_type"),
                has_default: false,
            });
        }
    }
    // The last `pronargdefaults` input parameters are the ones with defaults.
    for (f, defaults) in functions.iter_mut().zip(defaults_left) {
        let n = f.params.len();
        let with_default = usize::try_from(defaults).unwrap_or(0).min(n);
        for p in &mut f.params[n - with_default..] {
            p.has_default = true;
        }
    }

    Ok(Schema {
        tables: tables.into_values().collect(),
        functions,
        fingerprint,
    })
}

crate::common::migrate_fn!(
    PgConnection,
    magmobo_core::roles::storage::Dialect::Postgres,
    MIGRATIONS
);

/// Statements for the migrations bookkeeping.
pub(crate) const MIGRATIONS: crate::common::MigrationSql = crate::common::MigrationSql {
    lock: Some("SELECT pg_advisory_lock(hashtext('_magmobo_migrations'))::text AS locked"),
    unlock: Some("SELECT pg_advisory_unlock(hashtext('_magmobo_migrations'))::text AS unlocked"),
    create: "CREATE TABLE IF NOT EXISTS _magmobo_migrations (
        owner text NOT NULL,
        version integer NOT NULL,
        name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (owner, version))",
    applied: "SELECT version::int8 AS version FROM _magmobo_migrations WHERE owner = $1",
    record: "INSERT INTO _magmobo_migrations (owner, version, name) VALUES ($1, $2::int8::int4, $3)",
};

/// Decodes `raw` as `T` without sqlx's type check: the caller already matched the type.
fn dec<'r, T: Decode<'r, Postgres>>(raw: PgValueRef<'r>) -> Result<T, String> {
    T::decode(raw).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [ndigits, weight as u16, sign, dscale] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        for d in digits {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b
    }

    #[test]
    fn numerics_keep_every_digit() {
        let cases = [
            (numeric(2, 0, 0, 2, &[12, 3400]), "12.34"),
            (numeric(3, 1, 0x4000, 3, &[1, 2345, 6700]), "-12345.670"),
            (numeric(1, -1, 0, 5, &[500]), "0.05000"),
            (numeric(0, 0, 0, 0, &[]), "0"),
            (numeric(1, 2, 0, 0, &[7]), "700000000"),
            (numeric(0, 0, 0xC000, 0, &[]), "NaN"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(numeric_text(&bytes).unwrap(), expected);
        }
    }

    #[test]
    fn intervals_read_as_iso_8601() {
        let cases = [
            ((14, 3, 3_723_500_000), "P1Y2M3DT1H2M3.5S"),
            ((0, 0, 0), "PT0S"),
            ((0, -1, 0), "P-1D"),
            ((0, 0, -90_000_000), "PT-1M-30S"),
        ];
        for ((m, d, us), expected) in cases {
            assert_eq!(iso_interval(m, d, us), expected);
        }
    }

    #[test]
    fn inet_and_bits_render_like_postgres() {
        assert_eq!(
            inet_text(&[2, 32, 0, 4, 10, 0, 0, 1], false).unwrap(),
            "10.0.0.1"
        );
        assert_eq!(
            inet_text(&[2, 24, 1, 4, 10, 0, 0, 0], true).unwrap(),
            "10.0.0.0/24"
        );
        assert_eq!(bit_text(&[0, 0, 0, 5, 0b1010_1000]).unwrap(), "10101");
    }
}
