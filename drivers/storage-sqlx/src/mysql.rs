//! MySQL and MariaDB: binds, decoding by wire type, information_schema introspection (a
//! "schema" is a database; the connection's own database when none is named), and the
//! fingerprint. MariaDB stores JSON as LONGTEXT with a `json_valid` check, which is how
//! introspection recognises it.

use std::collections::BTreeMap;
use std::str::FromStr;

use magmobo_core::roles::schema::{Column, ColumnKind, Schema, Table, TableKind};
use magmobo_core::roles::storage::{Row, Value};
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlConnection, MySqlRow};
use sqlx::{Decode, Row as _, TypeInfo as _, ValueRef as _};

use crate::StorageOptions;
use crate::common::{
    Backend, KeyKind, Query, RowExt as _, fetch, fingerprint_rows, iso_datetime, iso_time,
};
use crate::error::Failure;

impl Backend for MySql {
    fn bind_value<'q>(query: Query<'q, Self>, value: &'q Value) -> Query<'q, Self> {
        match value {
            Value::Null => query.bind(None::<String>),
            Value::Bool(b) => query.bind(*b),
            Value::Int(i) => query.bind(*i),
            Value::Float(f) => query.bind(*f),
            Value::Text(s) => query.bind(s.as_str()),
            Value::Bytes(b) => query.bind(b.as_slice()),
            Value::Json(j) => query.bind(j.to_string()),
        }
    }

    fn decode(row: &MySqlRow, index: usize) -> Result<Value, String> {
        let raw = row.try_get_raw(index).map_err(|e| e.to_string())?;
        if raw.is_null() {
            return Ok(Value::Null);
        }
        let ty = raw.type_info().into_owned();

        Ok(match ty.name() {
            "NULL" => Value::Null,
            "BOOLEAN" => Value::Bool(dec::<i64>(raw)? != 0),
            "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" => {
                Value::Int(dec::<i64>(raw)?)
            }
            "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED"
            | "BIGINT UNSIGNED" | "BIT" => {
                let u = dec::<u64>(raw)?;
                i64::try_from(u).map_or_else(|_| Value::Text(u.to_string()), Value::Int)
            }
            "FLOAT" => {
                let f = dec::<f32>(raw)?;
                Value::Float(f.to_string().parse().unwrap_or(f64::from(f)))
            }
            "DOUBLE" => Value::Float(dec::<f64>(raw)?),
            "DECIMAL" | "CHAR" | "VARCHAR" | "TEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT"
            | "ENUM" | "SET" => Value::Text(dec::<String>(raw)?),
            "JSON" => {
                let text = dec::<String>(raw)?;
                serde_json::from_str(&text).map_or(Value::Text(text), Value::Json)
            }
            "BINARY" | "VARBINARY" | "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB"
            | "GEOMETRY" => Value::Bytes(dec::<Vec<u8>>(raw)?),
            "DATE" => Value::Text(dec::<chrono::NaiveDate>(raw)?.to_string()),
            "DATETIME" | "TIMESTAMP" => {
                Value::Text(iso_datetime(dec::<chrono::NaiveDateTime>(raw)?))
            }
            "TIME" => match dec::<chrono::NaiveTime>(raw.clone()) {
                Ok(t) => Value::Text(iso_time(t)),
                // TIME is a duration in MySQL and may be negative or past 24 h.
                Err(_) => Value::Text(dec::<sqlx::mysql::types::MySqlTime>(raw)?.to_string()),
            },
            other => {
                return Err(format!(
                    "MySQL type `{other}` is not decoded by this driver: CAST it to CHAR in the query"
                ));
            }
        })
    }
}

/// Connect options for `url` (`mariadb://` is read as `mysql://`).
pub(crate) fn connect_options(url: &str) -> Result<MySqlConnectOptions, sqlx::Error> {
    let url = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("mariadb") => format!("mysql://{rest}"),
        _ => url.to_owned(),
    };
    MySqlConnectOptions::from_str(&url)
}

/// A pool that opens nothing until first used; every connection gets the statement timeout
/// under the name its server knows (MySQL `max_execution_time` in ms, MariaDB
/// `max_statement_time` in seconds).
pub(crate) fn pool(
    connect: MySqlConnectOptions,
    options: &StorageOptions,
) -> crate::pool::Pool<MySql> {
    crate::pool::build(connect, options, Some(set_statement_timeout))
}

fn set_statement_timeout<'c>(
    conn: &'c mut MySqlConnection,
    options: &'c StorageOptions,
) -> futures::future::BoxFuture<'c, Result<(), sqlx::Error>> {
    Box::pin(async move {
        let Some(timeout) = options.statement_timeout else {
            return Ok(());
        };
        // MySQL's name first; MariaDB rejects it and has its own (in seconds).
        let mysql = format!("SET SESSION max_execution_time = {}", timeout.as_millis());
        let mariadb = format!("SET SESSION max_statement_time = {}", timeout.as_secs_f64());
        if sqlx::Executor::execute(&mut *conn, mysql.as_str())
            .await
            .is_err()
        {
            sqlx::Executor::execute(&mut *conn, mariadb.as_str()).await?;
        }
        Ok(())
    })
}

/// `MariaDB 10.11.19` or `MySQL 8.0.36`.
pub(crate) async fn version(conn: &mut MySqlConnection) -> Result<String, Failure> {
    let rows = fetch(&mut *conn, "SELECT VERSION() AS v", &[]).await?;
    let full = rows.first().map(|r| r.text("v")).unwrap_or_default();
    let number = full.split('-').next().unwrap_or("").to_owned();
    Ok(if full.contains("MariaDB") {
        format!("MariaDB {number}")
    } else {
        format!("MySQL {number}")
    })
}

/// `table_schema IN (?, ?)` for the named databases, or the connection's own database.
fn schema_filter(column: &str, schemas: &[String]) -> (String, Vec<Value>) {
    if schemas.is_empty() {
        (format!("{column} = DATABASE()"), Vec::new())
    } else {
        let marks = vec!["?"; schemas.len()].join(", ");
        (
            format!("{column} IN ({marks})"),
            schemas.iter().map(|s| Value::Text(s.clone())).collect(),
        )
    }
}

async fn column_rows(conn: &mut MySqlConnection, schemas: &[String]) -> Result<Vec<Row>, Failure> {
    let (filter, params) = schema_filter("c.table_schema", schemas);
    let sql = format!(
        "SELECT c.table_schema AS schema_name, c.table_name AS table_name,
                c.column_name AS column_name, c.column_type AS column_type,
                c.data_type AS data_type, c.is_nullable AS is_nullable,
                c.column_default AS column_default, c.extra AS extra,
                c.column_comment AS column_comment, c.generation_expression AS generation_expression
         FROM information_schema.columns c
         WHERE {filter} AND c.table_name NOT LIKE '\\_magmobo\\_%'
         ORDER BY c.table_schema, c.table_name, c.ordinal_position"
    );
    fetch(&mut *conn, &sql, &params).await
}

async fn key_rows(conn: &mut MySqlConnection, schemas: &[String]) -> Result<Vec<Row>, Failure> {
    let (filter, params) = schema_filter("k.table_schema", schemas);
    let sql = format!(
        "SELECT k.table_schema AS schema_name, k.table_name AS table_name,
                k.constraint_name AS constraint_name, tc.constraint_type AS constraint_type,
                k.column_name AS column_name, k.ordinal_position AS ordinal_position,
                k.referenced_table_schema AS foreign_schema,
                k.referenced_table_name AS foreign_table,
                k.referenced_column_name AS foreign_column
         FROM information_schema.key_column_usage k
         JOIN information_schema.table_constraints tc
           ON tc.constraint_schema = k.constraint_schema AND tc.table_schema = k.table_schema
          AND tc.table_name = k.table_name AND tc.constraint_name = k.constraint_name
         WHERE {filter} AND k.table_name NOT LIKE '\\_magmobo\\_%'
         ORDER BY k.table_schema, k.table_name, k.constraint_name, k.ordinal_position"
    );
    fetch(&mut *conn, &sql, &params).await
}

async fn table_rows(conn: &mut MySqlConnection, schemas: &[String]) -> Result<Vec<Row>, Failure> {
    let (filter, params) = schema_filter("t.table_schema", schemas);
    let sql = format!(
        "SELECT t.table_schema AS schema_name, t.table_name AS table_name,
                t.table_type AS table_type, t.table_comment AS table_comment,
                v.is_updatable AS is_updatable
         FROM information_schema.tables t
         LEFT JOIN information_schema.views v
           ON v.table_schema = t.table_schema AND v.table_name = t.table_name
         WHERE {filter} AND t.table_name NOT LIKE '\\_magmobo\\_%'
         ORDER BY t.table_schema, t.table_name"
    );
    fetch(&mut *conn, &sql, &params).await
}

/// A hash over the column and key rows introspection reads.
pub(crate) async fn fingerprint(
    conn: &mut MySqlConnection,
    schemas: &[String],
) -> Result<String, Failure> {
    let mut rows = table_rows(&mut *conn, schemas).await?;
    rows.extend(column_rows(&mut *conn, schemas).await?);
    rows.extend(key_rows(&mut *conn, schemas).await?);
    Ok(fingerprint_rows(&rows))
}

/// The values of `enum('a','b''c')`.
pub(crate) fn enum_values(column_type: &str) -> Vec<String> {
    let Some(inner) = column_type
        .strip_prefix("enum(")
        .and_then(|s| s.strip_suffix(')'))
    else {
        return Vec::new();
    };
    let mut values = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut value = String::new();
        while let Some(d) = chars.next() {
            match d {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    value.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(e) = chars.next() {
                        value.push(e);
                    }
                }
                _ => value.push(d),
            }
        }
        values.push(value);
    }
    values
}

fn kind_of(data_type: &str, column_type: &str) -> ColumnKind {
    match data_type {
        "tinyint" if column_type.starts_with("tinyint(1)") => ColumnKind::Boolean,
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "bit" => {
            ColumnKind::Integer
        }
        "decimal" | "numeric" | "float" | "double" | "real" => ColumnKind::Number,
        "char" | "varchar" | "text" | "tinytext" | "mediumtext" | "longtext" | "enum" | "set" => {
            ColumnKind::Text
        }
        "json" => ColumnKind::Json,
        "date" | "datetime" | "timestamp" | "time" | "year" => ColumnKind::Temporal,
        "binary" | "varbinary" | "blob" | "tinyblob" | "mediumblob" | "longblob" => {
            ColumnKind::Binary
        }
        "uuid" => ColumnKind::Uuid,
        _ => ColumnKind::Other,
    }
}

/// Reads information_schema into the dialect-neutral model.
pub(crate) async fn introspect(
    conn: &mut MySqlConnection,
    schemas: &[String],
) -> Result<Schema, Failure> {
    let fingerprint = fingerprint(&mut *conn, schemas).await?;
    let tables_found = table_rows(&mut *conn, schemas).await?;
    let columns = column_rows(&mut *conn, schemas).await?;
    let keys = key_rows(&mut *conn, schemas).await?;
    // MariaDB only (MySQL's CHECK_CONSTRAINTS has no TABLE_NAME): JSON columns are LONGTEXT
    // with a `json_valid(col)` check.
    let (filter, params) = schema_filter("constraint_schema", schemas);
    let checks = fetch(
        &mut *conn,
        &format!(
            "SELECT constraint_schema AS schema_name, table_name AS table_name, check_clause AS check_clause
             FROM information_schema.check_constraints WHERE {filter}"
        ),
        &params,
    )
    .await
    .unwrap_or_default();

    let mut tables: BTreeMap<(String, String), Table> = BTreeMap::new();
    for r in &tables_found {
        let key = (r.text("schema_name"), r.text("table_name"));
        let view = r.text("table_type").contains("VIEW");
        let comment = r
            .opt_text("table_comment")
            .filter(|c| !(c.is_empty() || (view && c == "VIEW")));
        tables.insert(
            key.clone(),
            Table {
                schema: key.0,
                name: key.1,
                kind: if view {
                    TableKind::View
                } else {
                    TableKind::Table
                },
                columns: Vec::new(),
                primary_key: Vec::new(),
                unique: Vec::new(),
                foreign_keys: Vec::new(),
                insertable: !view || r.text("is_updatable").eq_ignore_ascii_case("YES"),
                comment,
            },
        );
    }
    for r in &columns {
        let key = (r.text("schema_name"), r.text("table_name"));
        let Some(table) = tables.get_mut(&key) else {
            continue;
        };
        let name = r.text("column_name");
        let column_type = r.text("column_type");
        let data_type = r.text("data_type").to_ascii_lowercase();
        let extra = r.text("extra").to_ascii_uppercase();
        let generated = extra.contains("VIRTUAL GENERATED")
            || extra.contains("STORED GENERATED")
            || extra.contains("PERSISTENT GENERATED")
            || extra == "VIRTUAL"
            || extra == "PERSISTENT";
        let json_check = format!("json_valid(`{name}`)");
        let mut kind = kind_of(&data_type, &column_type);
        if kind == ColumnKind::Text
            && checks.iter().any(|c| {
                c.text("schema_name") == key.0
                    && c.text("table_name") == key.1
                    && c.text("check_clause") == json_check
            })
        {
            kind = ColumnKind::Json;
        }
        let default = if generated {
            r.opt_text("generation_expression")
                .filter(|e| !e.is_empty())
        } else if extra.contains("AUTO_INCREMENT") {
            Some("AUTO_INCREMENT".to_owned())
        } else {
            // MariaDB reports "no default" on a nullable column as the text NULL.
            r.opt_text("column_default").filter(|d| d != "NULL")
        };
        table.columns.push(Column {
            enum_values: if data_type == "enum" {
                enum_values(&column_type)
            } else {
                Vec::new()
            },
            name,
            data_type: column_type,
            kind,
            nullable: r.text("is_nullable").eq_ignore_ascii_case("YES"),
            default,
            generated,
            comment: r.opt_text("column_comment").filter(|c| !c.is_empty()),
        });
    }
    crate::common::fold_keys(&mut tables, &keys, |r| {
        match r.text("constraint_type").as_str() {
            "PRIMARY KEY" => Some(KeyKind::Primary),
            "UNIQUE" => Some(KeyKind::Unique),
            "FOREIGN KEY" => Some(KeyKind::Foreign),
            _ => None,
        }
    });
    Ok(Schema {
        tables: tables.into_values().collect(),
        functions: Vec::new(),
        fingerprint,
    })
}

crate::common::migrate_fn!(
    MySqlConnection,
    magmobo_core::roles::storage::Dialect::MySql,
    MIGRATIONS
);

/// Statements for the migrations bookkeeping.
pub(crate) const MIGRATIONS: crate::common::MigrationSql = crate::common::MigrationSql {
    lock: Some("SELECT GET_LOCK(CONCAT(DATABASE(), '._magmobo_migrations'), 60) AS locked"),
    unlock: Some("SELECT RELEASE_LOCK(CONCAT(DATABASE(), '._magmobo_migrations')) AS unlocked"),
    create: "CREATE TABLE IF NOT EXISTS _magmobo_migrations (
        owner VARCHAR(191) NOT NULL,
        version INT NOT NULL,
        name VARCHAR(255) NOT NULL,
        applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        PRIMARY KEY (owner, version))",
    applied: "SELECT version FROM _magmobo_migrations WHERE owner = ?",
    record: "INSERT INTO _magmobo_migrations (owner, version, name) VALUES (?, ?, ?)",
};

/// Decodes `raw` as `T` without sqlx's type check: the caller already matched the type.
fn dec<'r, T: Decode<'r, MySql>>(raw: sqlx::mysql::MySqlValueRef<'r>) -> Result<T, String> {
    T::decode(raw).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_values_are_unquoted() {
        let cases: &[(&str, &[&str])] = &[
            ("enum('new','paid')", &["new", "paid"]),
            ("enum('it''s','a,b')", &["it's", "a,b"]),
            ("varchar(20)", &[]),
        ];
        for (column_type, expected) in cases {
            assert_eq!(enum_values(column_type), *expected, "{column_type}");
        }
    }
}
